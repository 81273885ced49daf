"""Finding a repository's git dir the way git does, without libgit2.

Kept free of pygit2 (standard library only) so that commands and hooks that
only need to know where the repository is stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path

from gitml.errors import NotARepository


def _is_git_dir(d: Path) -> bool:
    return (d / "HEAD").is_file() and (d / "objects").is_dir() and (d / "refs").is_dir() or (
        (d / "HEAD").is_file() and (d / "commondir").is_file())


def _ceilings() -> list[Path]:
    """GIT_CEILING_DIRECTORIES: absolute directories discovery must not climb into."""
    out = []
    for entry in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(os.pathsep):
        if entry and os.path.isabs(entry):
            out.append(Path(os.path.realpath(entry)))
    return out


def find_git_dir(start: Path) -> Path | None:
    """The git dir for ``start`` as git finds it: ``.git`` (a directory, or a
    file with ``gitdir:``) in it or a parent, or a git dir itself (bare).

    A ``.git`` file whose git dir is missing (a pruned worktree, a submodule
    not checked out) ends the search with None, as git fails there rather
    than use the repository above. Directories listed in
    ``GIT_CEILING_DIRECTORIES`` (and their parents) are not climbed into.
    """
    ceilings = [c for c in _ceilings() if c != start and c in start.parents]
    ceiling = max(ceilings, key=lambda c: len(c.parts), default=None)
    for d in (start, *start.parents):
        if ceiling is not None and d != start and (d == ceiling or d in ceiling.parents):
            return None
        dotgit = d / ".git"
        if dotgit.is_dir() and _is_git_dir(dotgit):
            return dotgit
        if dotgit.is_file():
            try:
                text = dotgit.read_text(errors="replace").strip()
            except OSError:
                return None
            if not text.startswith("gitdir:"):
                return None  # git: "invalid gitfile format"
            found = (d / text[len("gitdir:") :].strip()).resolve()
            return found if _is_git_dir(found) else None  # git: "not a git repository"
        if _is_git_dir(d):
            return d
    return None


def git_dir_for(path: str | os.PathLike[str] | None = None) -> Path:
    """The git dir of the repository containing ``path`` (default: the current directory).

    Raises:
        NotARepository: no git repository at or above ``path``.
    """
    start = os.fspath(path) if path is not None else os.getcwd()
    if not os.path.exists(start):
        raise NotARepository(f"Not a git repository: {start!r} does not exist")
    found = find_git_dir(Path(start).resolve())
    if found is None:
        raise NotARepository(
            f"Not a git repository (or any parent up to the root): {start!r}. "
            "Run 'git init' first or pass --repo."
        )
    return found


def common_dir(git_dir: Path) -> Path:
    """The git dir holding the refs and objects: a linked worktree's main git dir, else ``git_dir``."""
    common = git_dir / "commondir"
    return (git_dir / common.read_text().strip()).resolve() if common.is_file() else git_dir
