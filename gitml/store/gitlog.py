"""``git log --graph`` lines, drawn by git itself (libgit2 has no graph drawing)."""

from __future__ import annotations

from gitml.store.gitcli import GitCommandError, git
from gitml.store.repo import GitRepo

_SEP = "\x1f"


def graph(repo: GitRepo, rev: str, max_count: int) -> list[tuple[str, str | None, str]]:
    """(graph prefix, commit oid or None for a connector line, subject), newest first.

    Raises:
        ValueError: git refused the revision (the message is git's).
    """
    try:
        out = git(repo.git_dir, "log", "--graph", f"--max-count={max_count}", f"--format={_SEP}%H{_SEP}%s", rev, "--")
    except GitCommandError as e:
        raise ValueError(e.message) from None
    lines: list[tuple[str, str | None, str]] = []
    for line in out.stdout.decode(errors="replace").splitlines():
        prefix, sep, rest = line.partition(_SEP)
        if sep:
            oid, _, subject = rest.partition(_SEP)
            lines.append((prefix, oid, subject))
        else:
            lines.append((line, None, ""))
    return lines
