"""Commits and the runs started from them (``gitml log``), and the revisions a user can pick."""

from __future__ import annotations

from gitml.errors import GitmlError
from gitml.store.repo import CommitInfo, GitRepo
from gitml.tracking import runs as _runs
from gitml.tracking.entities import Run


class RevisionNotFound(GitmlError):
    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


def commit_log(repo: GitRepo, rev: str, max_count: int, runs_only: bool = False) -> list[tuple[CommitInfo, list[Run]]]:
    """Commits reachable from ``rev``, newest first, each with its runs.

    Raises:
        RevisionNotFound: ``rev`` names no commit.
    """
    start = repo.resolve_rev(rev)
    if start is None and rev == "HEAD" and repo.head()[0] is None:
        raise RevisionNotFound(f"The current branch of {repo.workdir or repo.git_dir} has no commits yet")
    if start is None:
        raise RevisionNotFound(f"Unknown revision {rev!r} in {repo.workdir or repo.git_dir}")
    commits = list(repo.walk(start, None if runs_only else max_count))
    by_commit = _runs.runs_of_commits(repo, [c.oid for c in commits])
    out = [(c, by_commit.get(c.oid, [])) for c in commits]
    if runs_only:
        out = [e for e in out if e[1]][:max_count]
    return out


def commit(repo: GitRepo, oid: str | None) -> CommitInfo | None:
    """The commit ``oid`` names, or None when this clone does not have it (a run from a teammate's unpushed commit)."""
    if not oid or not repo.has_object(oid):
        return None
    return repo.commit_info(oid)


def revisions(repo: GitRepo) -> tuple[str | None, list[str], list[str]]:
    """(current branch or None if detached, local branches, tags), names sorted."""
    heads = sorted(ref[len("refs/heads/"):] for ref, _ in repo.iter_refs("refs/heads/"))
    return repo.head()[1], heads, sorted(repo.tag_refs())
