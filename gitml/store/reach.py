"""Commits reachable from every ref, as git sees them, and what each records about artifacts.

``gitml gc`` must keep every artifact object that anything git keeps could
name. So the roots are git's own: every ref under ``refs/`` (runs, ledger
shards, registry tags, notes, branches, remote-tracking refs, anything a
person or a fetch put there), every reflog entry and the HEAD of every
worktree, exactly the set ``git rev-list --all --reflog`` starts from.
The walk itself is git's (``git rev-list``); this module then looks at the
root tree of each commit for an ``artifacts.json`` (what a run commit
carries), wherever the commit sits.

The walk is incremental: ``Reachable.update`` lists the roots again and
walks only what is new, so a collector can take a first full look without
holding its lock and a cheap second one under it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitml.errors import GitmlError

if TYPE_CHECKING:
    import pygit2

    from gitml.store.repo import GitRepo

#: The file of a run tree that names artifact objects (``gitml.tracking.schema.ARTIFACTS_FILE``).
MANIFEST = "artifacts.json"
#: The file that makes a tree a run's (``gitml.tracking.schema.RUN_FILE``).
RUN_FILE = "run.json"


class UnreadableHistory(GitmlError):
    """git could not walk the repository's history (a missing or corrupt object)."""


@dataclass(frozen=True)
class ManifestRef:
    """A reachable commit whose root tree has an ``artifacts.json`` entry."""

    commit: str
    #: The blob's oid; None if the entry is not a readable blob (``problem`` says why).
    blob: str | None
    #: Why the entry cannot be read, or None.
    problem: str | None
    #: The tree also has a ``run.json`` (the commit is shaped like a run).
    run_shaped: bool


def _git(repo: GitRepo, *args: str, input: bytes | None = None) -> bytes:
    out = subprocess.run(["git", "--git-dir", str(repo.git_dir), *args], capture_output=True, input=input,
                         check=False)
    if out.returncode != 0:
        detail = out.stderr.decode(errors="replace").strip().splitlines()
        raise UnreadableHistory(f"'git {args[0]}' failed in {repo.git_dir}: {detail[-1] if detail else out.returncode}")
    return out.stdout


class Reachable:
    """The commits reachable from every ref, reflog entry and worktree HEAD, walked incrementally."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        #: Root commits already walked from.
        self.tips: set[str] = set()
        #: Every commit walked so far.
        self.commits: set[str] = set()
        self.listings = 0

    def roots(self) -> set[str]:
        """The commits the refs, reflogs and worktree HEADs name now (tags peeled; trees and blobs left out)."""
        self.listings += 1
        return set(_git(self.repo, "rev-list", "--all", "--reflog", "--no-walk").decode().split())

    def trees(self) -> set[str]:
        """Trees refs name directly, or through tags (a ref someone pointed at a run's tree)."""
        out = _git(self.repo, "for-each-ref", "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype)")
        found = set()
        for line in out.decode().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[-1] == "tree":
                found.add(parts[-2])
        return found

    def update(self) -> list[str]:
        """List the roots once more; return the commits reachable from new ones not seen before.

        Raises:
            UnreadableHistory: git cannot walk some of it (a missing or corrupt object).
        """
        fresh = self.roots() - self.tips
        if not fresh:
            return []
        lines = [*sorted(fresh), *(f"^{t}" for t in sorted(self.tips))]
        out = _git(self.repo, "rev-list", "--stdin", input=("\n".join(lines) + "\n").encode())
        self.tips |= fresh
        new = [c for c in out.decode().split() if c not in self.commits]
        self.commits.update(new)
        return new


def manifests(repo: GitRepo, commits: list[str]) -> tuple[list[ManifestRef], list[str]]:
    """The manifests ``commits`` (or trees) carry, and those that could not be read at all.

    A commit with no ``artifacts.json`` at the top of its tree carries none
    (source commits, ledger and notes commits).
    """
    import pygit2

    found: list[ManifestRef] = []
    unreadable: list[str] = []
    with repo.lock:
        raw = repo.raw
        for oid in commits:
            try:
                tree = raw[oid].peel(pygit2.Tree)
            except (KeyError, ValueError, pygit2.GitError):
                unreadable.append(oid)
                continue
            entry = _entry(tree, MANIFEST)
            if entry is None:
                continue
            run_shaped = _entry(tree, RUN_FILE) is not None
            if entry.filemode not in (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
                found.append(ManifestRef(oid, None, f"{MANIFEST} is not a file (mode {int(entry.filemode):o})", run_shaped))
            elif str(entry.id) not in raw:
                found.append(ManifestRef(oid, None, f"{MANIFEST} (blob {str(entry.id)[:12]}) is missing", run_shaped))
            else:
                found.append(ManifestRef(oid, str(entry.id), None, run_shaped))
    return found, unreadable


def _entry(tree: pygit2.Tree, name: str) -> pygit2.Object | None:
    try:
        return tree[name]
    except KeyError:
        return None
