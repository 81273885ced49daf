"""Source snapshots: the exact code a run was started from.

For a clean work tree the snapshot is HEAD. For a dirty one it is a commit
(parent HEAD) whose tree is the work tree, untracked-but-not-ignored files
included, much like ``git stash create -u``. The user's index, branches and
work tree are never touched: we read HEAD's tree into a private in-memory
index and write that.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from gitml.store.repo import GitRepo


def _changed_flags() -> int:
    """The file statuses that make a work tree dirty (pygit2 loads here, not at import: the
    post-commit hook builds a ``Snapshot`` without libgit2)."""
    from pygit2.enums import FileStatus

    return (
        FileStatus.WT_NEW
        | FileStatus.WT_MODIFIED
        | FileStatus.WT_DELETED
        | FileStatus.WT_TYPECHANGE
        | FileStatus.WT_RENAMED
        | FileStatus.INDEX_NEW
        | FileStatus.INDEX_MODIFIED
        | FileStatus.INDEX_DELETED
        | FileStatus.INDEX_RENAMED
        | FileStatus.INDEX_TYPECHANGE
        | FileStatus.CONFLICTED
    )


@dataclass(frozen=True)
class Snapshot:
    """Where a run's code came from."""

    commit: str | None  # the commit to use as the run commit's parent
    head: str | None  # HEAD when the run started (None: unborn branch / bare repo)
    branch: str | None
    dirty: bool
    skipped: list[str] = field(default_factory=list)  # files too large to snapshot


def take_snapshot(repo: GitRepo, max_file_size: int) -> Snapshot:
    """Snapshot the work tree of ``repo``; write a commit only if it is dirty.

    Files larger than ``max_file_size`` bytes are left out (their HEAD version,
    if any, stays) and listed in ``Snapshot.skipped``: large data belongs in
    the artifact store, not in git objects.
    """
    import pygit2

    head, branch = repo.head()
    if repo.workdir is None:
        return Snapshot(commit=head, head=head, branch=branch, dirty=False)
    raw = repo.raw
    changed_flags = _changed_flags()
    with repo.lock:
        status = raw.status(untracked_files="all", ignored=False)
        changed = sorted(p for p, flags in status.items() if flags & changed_flags)
        if not changed:
            return Snapshot(commit=head, head=head, branch=branch, dirty=False)
        index = pygit2.Index()
        if head is not None:
            index.read_tree(raw[head].peel(pygit2.Commit).tree)
        skipped: list[str] = []
        for path in changed:
            full = os.path.join(raw.workdir, path)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                if path in index:
                    index.remove(path)
                continue
            if stat.S_ISLNK(st.st_mode):
                oid = raw.create_blob(os.readlink(full).encode())
                mode = pygit2.GIT_FILEMODE_LINK
            elif stat.S_ISREG(st.st_mode):
                if st.st_size > max_file_size:
                    skipped.append(path)
                    continue
                oid = raw.create_blob_fromdisk(full)
                mode = (
                    pygit2.GIT_FILEMODE_BLOB_EXECUTABLE
                    if st.st_mode & stat.S_IXUSR
                    else pygit2.GIT_FILEMODE_BLOB
                )
            else:
                continue  # sockets, submodule dirs: not source
            index.add(pygit2.IndexEntry(path, oid, pygit2.enums.FileMode(mode)))
        tree = index.write_tree(raw)
        if head is not None and str(tree) == str(raw[head].peel(pygit2.Commit).tree_id):
            return Snapshot(commit=head, head=head, branch=branch, dirty=False, skipped=skipped)
    message = f"gitml snapshot of {branch or 'detached HEAD'} (uncommitted changes)\n"
    commit = repo.write_commit(str(tree), [head] if head else [], message)
    return Snapshot(commit=commit, head=head, branch=branch, dirty=True, skipped=skipped)
