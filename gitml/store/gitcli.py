"""The ``git`` binary, for what must be seen exactly as git sees it (behind the store layer).

Hook decisions use git's own rules (pathspecs, config booleans, the
effective hooks directory with ``core.hooksPath``), the same ones the hook
scripts use in the shell, so the two never disagree. Housekeeping (packing
what gitml writes loose) is git's own too. Nothing here imports pygit2,
which keeps a commit with nothing to log cheap.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitml.errors import GitmlError, NotARepository


class GitCommandError(GitmlError):
    """A git command the hooks need failed."""


def error_line(output: str) -> str:
    """What went wrong, in one line, from a failed git command's stderr.

    git explains a failure over several lines (``fatal: 'x' does not appear
    to be a git repository``, ``fatal: Could not read from remote
    repository.``, a blank line, advice): the first ``fatal:`` line, else the
    first ``error:`` line, says what happened. Its prefix is dropped.
    """
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for prefix in ("fatal: ", "error: "):
        for ln in lines:
            if ln.startswith(prefix):
                return ln[len(prefix):]
    said = [ln for ln in lines if not ln.startswith(("hint: ", "warning: "))]
    return (said or lines or [""])[0]


def git(git_dir: str | Path, *args: str, ok: tuple[int, ...] = (0,),
        input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``git args`` on the repository at ``git_dir``; raise GitCommandError unless its exit status is in ``ok``.

    The git dir is passed explicitly: inside a hook, git may export a
    relative ``GIT_DIR`` that means nothing from another directory.
    ``input`` is fed to the command's stdin.
    """
    out = subprocess.run(["git", "--git-dir", str(git_dir), *args], cwd=git_dir, capture_output=True,
                         check=False, input=input)
    if out.returncode not in ok:
        detail = error_line(out.stderr.decode(errors="replace")) or f"exit status {out.returncode}"
        raise GitCommandError(f"'git {args[0]}' failed in {git_dir}: {detail}")
    return out


def hooks_dir(path: str | Path) -> Path:
    """The hooks directory git uses for the repository at ``path`` (``core.hooksPath`` included).

    Raises:
        NotARepository: ``path`` is not in a git repository.
    """
    out = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-path", "hooks"], cwd=path,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise NotARepository(f"Not a git repository: {str(path)!r} ({out.stderr.strip()})")
    return Path(out.stdout.strip())


def config(git_dir: str | Path, prefix: str) -> dict[str, str | None]:
    """Git config entries under ``prefix`` (all levels; the last value of a key wins).

    Keys are lowercased as git reports them; a key set without a value (a
    bare ``always`` line, which git reads as true) maps to None.
    """
    out = git(git_dir, "config", "-z", "--get-regexp", "^" + prefix.replace(".", r"\."), ok=(0, 1))
    found: dict[str, str | None] = {}
    for entry in out.stdout.decode(errors="replace").split("\0"):
        if entry:
            key, sep, value = entry.partition("\n")
            found[key] = value if sep else None
    return found


# -- housekeeping -------------------------------------------------------------------------------


def count_objects(git_dir: str | Path) -> dict[str, int]:
    """``git count-objects -v`` as numbers: ``count`` (loose objects), ``size`` (KiB), ``in-pack``,
    ``packs``, ``size-pack`` (KiB), ``prune-packable``, ``garbage``."""
    out = git(git_dir, "count-objects", "-v").stdout.decode()
    found = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if value.strip().isdigit():
            found[key.strip()] = int(value)
    return found


def loose_refs(common_dir: str | Path) -> int:
    """How many refs are loose files under the common git dir (``git pack-refs --all`` packs them)."""
    refs = Path(common_dir) / "refs"
    return sum(len([f for f in files if not f.endswith(".lock")]) for _, _, files in os.walk(refs))


def pack(git_dir: str | Path) -> None:
    """Pack what gitml leaves loose, with git's own tools, deleting nothing git still needs.

    - ``git pack-refs --all``: run, ledger and tag refs into packed-refs;
    - ``git repack -d``: loose objects reachable from any ref into one new
      pack, then the loose copies of what is now packed (``prune-packed``);
      an unreachable object is not touched;
    - ``git gc --auto``: git's own thresholds decide whether packs are
      consolidated and unreachable objects older than ``gc.pruneExpire``
      (two weeks by default) pruned, as after any ``git commit``. gitml
      writes through libgit2, which never runs it.
    """
    git(git_dir, "pack-refs", "--all")
    git(git_dir, "repack", "-d", "-q")
    # in the foreground: the command's caller waits for the work it asked for
    git(git_dir, "-c", "gc.autoDetach=false", "gc", "--auto", "--quiet")
