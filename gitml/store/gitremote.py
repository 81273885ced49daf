"""Talking to git remotes through the ``git`` binary.

libgit2 does not use the user's credential helpers, SSH config or proxy
settings the way git does, so fetch and push go through ``git`` itself
(DESIGN.md section 3 allows this, behind the store layer).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gitml.errors import GitmlError
from gitml.store.gitcli import error_line
from gitml.store.repo import GitRepo

if TYPE_CHECKING:
    from gitml.store.content import Progress

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


# One step of git's progress meter: "Receiving objects:  45% (450/1000), 1.2 MiB | ...".
_METER = re.compile(r"^(?:remote: )?([A-Z][A-Za-z ]*?):\s+\d+% \((\d+)/(\d+)\)")


def _run_with_progress(cmd: list[str], progress: Progress) -> subprocess.CompletedProcess[str]:
    """Run git with ``--progress`` already in ``cmd``: its meter lines (one per carriage return) go to
    ``progress`` as (phase, done, total), phase git's own label lower-cased ("receiving objects");
    the rest of stderr is kept for the error message."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    stdout: list[bytes] = []
    reader = threading.Thread(target=lambda: stdout.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    said, pending = [], b""
    while chunk := os.read(proc.stderr.fileno(), 65536):
        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            meter = _METER.match(line)
            if meter:
                progress(meter.group(1).lower(), int(meter.group(2)), int(meter.group(3)))
            elif line.strip():
                said.append(line)
    said.append(pending.decode("utf-8", "replace"))
    reader.join()
    code = proc.wait()
    return subprocess.CompletedProcess(cmd, code, b"".join(stdout).decode("utf-8", "replace"), "\n".join(said))


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


def fetch(repo: GitRepo, remote: str, refspecs: list[str], progress: Progress | None = None) -> None:
    """``git fetch`` the refspecs (no tags, no updates of the user's remote-tracking refs).

    With ``progress``, git's own meter (counting, receiving, resolving) is passed on to it.
    """
    if not refspecs:
        return
    if progress is None:
        _git(repo, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, *refspecs,
             doing=f"Cannot fetch from git remote {remote!r}")
        return
    cmd = ["git", "--git-dir", str(repo.git_dir), "fetch", "--progress", "--no-tags", "--no-write-fetch-head",
           remote, *refspecs]
    out = _run_with_progress(cmd, progress)
    if out.returncode != 0:
        why = error_line(out.stderr) or f"exit status {out.returncode}"
        raise RemoteError(f"Cannot fetch from git remote {remote!r}: {why}")


def delete_refs(repo: GitRepo, refs: Iterable[str]) -> None:
    lines = "".join(f"delete {r}\n" for r in refs)
    if lines:
        _git(repo, "update-ref", "--stdin", input=lines)


def push(repo: GitRepo, remote: str, updates: list[tuple[str, str, str | None]],
         progress: Progress | None = None) -> dict[str, str]:
    """Push (ref, new oid, expected remote oid or None for 'must not exist').

    Every update is leased (``--force-with-lease``): a ref the remote moved
    since we looked is rejected, never overwritten. Returns ref -> "ok" or
    the rejection reason. With ``progress``, git's meter (writing objects) is passed on to it.
    """
    results: dict[str, str] = {}
    for i in range(0, len(updates), PUSH_BATCH):
        batch = updates[i : i + PUSH_BATCH]
        args = ["push", "--porcelain", "--no-verify", *(["--progress"] if progress else []), remote]
        args += [f"--force-with-lease={ref}:{old or ''}" for ref, _, old in batch]
        args += [f"{new}:{ref}" for ref, new, _ in batch]
        cmd = ["git", "--git-dir", str(repo.git_dir), *args]
        out = _run_with_progress(cmd, progress) if progress else subprocess.run(cmd, capture_output=True, text=True)
        for line in out.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[0] in ("=", " ", "+", "*", "!", "-"):
                ref = parts[1].split(":")[-1]
                results[ref] = "ok" if parts[0] != "!" else parts[2]
        if out.returncode != 0 and not any(r in results for r, _, _ in batch):
            why = error_line(out.stderr) or f"exit status {out.returncode}"
            raise RemoteError(f"git push to {remote!r} failed: {why}")
    return results
