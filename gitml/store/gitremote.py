"""Talking to git remotes through the ``git`` binary.

libgit2 does not use the user's credential helpers, SSH config or proxy
settings the way git does, so fetch and push go through ``git`` itself
(DESIGN.md section 3 allows this, behind the store layer).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from gitml.errors import GitmlError
from gitml.store.gitcli import error_line
from gitml.store.repo import GitRepo

PUSH_BATCH = 500  # refs per `git push`, to stay far below the argument-length limit


class RemoteError(GitmlError):
    """A git remote could not be reached or refused an update."""

    exit_code = 1
    http_status = 502
    error_code = "TEMPORARILY_UNAVAILABLE"


def _git(repo: GitRepo, *args: str, input: str | None = None, doing: str | None = None) -> str:
    """git's stdout; its failure as a one-line RemoteError saying what we were ``doing``."""
    cmd = ["git", "--git-dir", str(repo.git_dir), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if out.returncode != 0:
        what = doing or f"'git {' '.join(args[:3])} ...' failed"
        why = error_line(out.stderr) or error_line(out.stdout) or f"exit status {out.returncode}"
        raise RemoteError(f"{what}: {why}")
    return out.stdout


def remote_names(repo: GitRepo) -> list[str]:
    return _git(repo, "remote").split()


def ls_remote(repo: GitRepo, remote: str, patterns: Iterable[str]) -> dict[str, str]:
    """ref -> oid on ``remote`` for refs matching ``patterns`` (git wildcards)."""
    out = _git(repo, "ls-remote", remote, *patterns, doing=f"Cannot read git remote {remote!r}")
    refs = {}
    for line in out.splitlines():
        oid, _, ref = line.partition("\t")
        if ref and not ref.endswith("^{}"):
            refs[ref] = oid
    return refs


def fetch(repo: GitRepo, remote: str, refspecs: list[str]) -> None:
    """``git fetch`` the refspecs (no tags, no updates of the user's remote-tracking refs)."""
    if refspecs:
        _git(repo, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, *refspecs,
             doing=f"Cannot fetch from git remote {remote!r}")


def delete_refs(repo: GitRepo, refs: Iterable[str]) -> None:
    lines = "".join(f"delete {r}\n" for r in refs)
    if lines:
        _git(repo, "update-ref", "--stdin", input=lines)


def push(repo: GitRepo, remote: str, updates: list[tuple[str, str, str | None]]) -> dict[str, str]:
    """Push (ref, new oid, expected remote oid or None for 'must not exist').

    Every update is leased (``--force-with-lease``): a ref the remote moved
    since we looked is rejected, never overwritten. Returns ref -> "ok" or
    the rejection reason.
    """
    results: dict[str, str] = {}
    for i in range(0, len(updates), PUSH_BATCH):
        batch = updates[i : i + PUSH_BATCH]
        args = ["push", "--porcelain", "--no-verify", remote]
        args += [f"--force-with-lease={ref}:{old or ''}" for ref, _, old in batch]
        args += [f"{new}:{ref}" for ref, new, _ in batch]
        cmd = ["git", "--git-dir", str(repo.git_dir), *args]
        out = subprocess.run(cmd, capture_output=True, text=True)
        for line in out.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0] in ("=", " ", "+", "*", "!", "-"):
                ref = parts[1].split(":")[-1]
                results[ref] = "ok" if parts[0] != "!" else parts[2]
        if out.returncode != 0 and not any(r in results for r, _, _ in batch):
            why = error_line(out.stderr) or f"exit status {out.returncode}"
            raise RemoteError(f"git push to {remote!r} failed: {why}")
    return results
