"""Checking out a commit somewhere that is not the user's work tree, through the ``git`` binary.

``gitml run`` executes a project at one commit. For the repository gitml
tracks into, that is a detached linked worktree (``git worktree add``) in a
temporary directory, removed afterwards. A project from elsewhere (a git URL,
another local repository) is cloned with its full history, checked out at
the commit, and the commit is fetched into the tracking repository so the
run commit can have it as its parent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

from gitml.errors import GitmlError
from gitml.store.gitcli import error_line
from gitml.store.repo import GitRepo


class CheckoutError(GitmlError):
    """A project revision could not be found or checked out."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


def _git(*args: str, cwd: str | os.PathLike[str] | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if out.returncode != 0:
        raise CheckoutError(f"'git {' '.join(args[:2])}' failed: {error_line(out.stderr) or error_line(out.stdout)}")
    return out.stdout


def resolve(repo: GitRepo, rev: str) -> str:
    """The commit ``rev`` (a commit, tag or branch) names in ``repo``.

    Raises:
        CheckoutError: no such revision.
    """
    commit = repo.resolve_rev(rev)
    if commit is None:
        raise CheckoutError(f"Unknown revision {rev!r} in {repo.workdir or repo.git_dir}: give a commit, tag or branch")
    return commit


def add_worktree(repo: GitRepo, commit: str, parent: Path) -> Path:
    """A detached worktree of ``repo`` at ``commit`` under ``parent``; remove it with ``remove_worktree``."""
    path = parent / f"worktree-{uuid.uuid4().hex[:8]}"
    _git("--git-dir", str(repo.git_dir), "worktree", "add", "--detach", "--quiet", str(path), commit)
    return path


def remove_worktree(repo: GitRepo, path: Path) -> None:
    """Remove a worktree ``add_worktree`` made (its files and git's record of it)."""
    try:
        _git("--git-dir", str(repo.git_dir), "worktree", "remove", "--force", str(path))
    except CheckoutError:
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "--git-dir", str(repo.git_dir), "worktree", "prune"], capture_output=True)


def clone_at(url: str, rev: str | None, parent: Path) -> tuple[Path, str]:
    """Clone ``url`` (all history) under ``parent`` and check out ``rev`` (default: its HEAD).

    Returns the clone's path and the commit checked out.

    Raises:
        CheckoutError: the URL cannot be cloned, or has no such revision.
    """
    path = parent / "project"
    _git("clone", "--quiet", "--no-checkout", url, str(path))
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{rev or 'HEAD'}^{{commit}}", cwd=path).strip()
    except CheckoutError:
        raise CheckoutError(f"{url} has no revision {rev!r}: give a commit, tag or branch") from None
    _git("checkout", "--quiet", "--detach", commit, cwd=path)
    return path, commit


def import_commit(repo: GitRepo, source: Path, commit: str) -> str:
    """Fetch ``commit`` (and its history) from the repository at ``source`` into ``repo``.

    Returns a temporary ref holding it; delete it with ``drop_ref`` once a
    run commit points at the commit.
    """
    ref = f"refs/gitml-incoming/project-{uuid.uuid4().hex[:12]}"
    _git("update-ref", "refs/gitml-project", commit, cwd=source)
    _git("--git-dir", str(repo.git_dir), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(source),
         f"+refs/gitml-project:{ref}")
    return ref


def drop_ref(repo: GitRepo, ref: str) -> None:
    subprocess.run(["git", "--git-dir", str(repo.git_dir), "update-ref", "-d", ref], capture_output=True)
