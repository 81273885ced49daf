"""Git access for gitml: refs with compare-and-swap, trees, commits, notes.

This is one of the two modules that import pygit2 (with ``snapshot``). Object
ids cross this boundary as 40-char hex strings so the domain layers never see
pygit2 types.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import ObjectType

from gitml.errors import ConcurrentUpdate, NotARepository
from gitml.store import names

BLOB_MODE = pygit2.GIT_FILEMODE_BLOB
TREE_MODE = pygit2.GIT_FILEMODE_TREE
CAS_RETRIES = 200

_FALLBACK_SIGNATURE = ("gitml", "gitml@localhost")


@dataclass(frozen=True)
class TagInfo:
    """An annotated tag object: where it points, who wrote it and when, its message."""

    oid: str
    name: str
    target: str
    tagger: str
    email: str
    time: int
    offset: int  # minutes east of UTC
    message: str


@dataclass(frozen=True)
class CommitInfo:
    """What gitml reads of a commit."""

    oid: str
    tree: str
    parents: tuple[str, ...]
    message: str
    author_name: str
    author_email: str
    time: int  # seconds since epoch (committer time)


def _commit_info(c: pygit2.Commit) -> CommitInfo:
    return CommitInfo(
        oid=str(c.id),
        tree=str(c.tree_id),
        parents=tuple(str(p) for p in c.parent_ids),
        message=c.message,
        author_name=c.author.name,
        author_email=c.author.email,
        time=c.commit_time,
    )


class _LostRace(Exception):
    """The ref moved since the caller read it (aborts the transaction)."""


_tuned = False


def _tune_libgit2() -> None:
    # Every tree and commit gitml writes refers to objects it has just written
    # itself, so libgit2's check that each referenced object exists (one odb
    # lookup per entry) buys nothing and costs a third of a run's write time.
    global _tuned
    if not _tuned:
        pygit2.option(pygit2.enums.Option.ENABLE_STRICT_OBJECT_CREATION, False)
        _tuned = True


def _backoff() -> None:
    # Lost a race for a ref: wait a little (randomised, so two writers do not
    # keep colliding in step) before the caller re-reads and retries.
    time.sleep(random.uniform(0.0005, 0.005))


class GitRepo:
    """A git repository opened for gitml's reads and compare-and-swap writes."""

    def __init__(self, repo: pygit2.Repository) -> None:
        _tune_libgit2()
        self._repo = repo
        self._signature: pygit2.Signature | None = None
        self.git_dir = Path(repo.path).resolve()
        self.workdir = Path(repo.workdir).resolve() if repo.workdir else None
        self.state_dir = self.git_dir / names.STATE_DIR
        # pygit2 objects are not safe to share between threads mid-call.
        self.lock = threading.RLock()

    # -- opening ---------------------------------------------------------

    @classmethod
    def discover(cls, path: str | os.PathLike[str] | None = None) -> GitRepo:
        """Open the repository containing ``path`` (default: the current directory).

        Raises:
            NotARepository: no git repository at or above ``path``.
        """
        start = os.fspath(path) if path is not None else os.getcwd()
        if not os.path.exists(start):
            raise NotARepository(f"Not a git repository: {start!r} does not exist")
        found = pygit2.discover_repository(start)
        if found is None:
            raise NotARepository(
                f"Not a git repository (or any parent up to the root): {start!r}. "
                "Run 'git init' first or pass --repo."
            )
        return cls(pygit2.Repository(found))

    @property
    def raw(self) -> pygit2.Repository:
        """The pygit2 repository, for other modules of the store layer only."""
        return self._repo

    def signature(self) -> pygit2.Signature:
        # The name and email come from config once per process; the time must
        # be now for every commit.
        if self._signature is None:
            try:
                self._signature = self._repo.default_signature
            except (KeyError, pygit2.GitError):
                self._signature = pygit2.Signature(*_FALLBACK_SIGNATURE)
        sig = self._signature
        return pygit2.Signature(sig.name, sig.email)

    def config_value(self, key: str) -> str | None:
        """A value from the repository's git config (all levels), or None."""
        with self.lock:
            try:
                return self._repo.config[key]
            except KeyError:
                return None

    def config_items(self, prefix: str) -> list[tuple[str, str]]:
        """(key, value) of every git config entry whose key starts with ``prefix``."""
        with self.lock:
            return [(e.name, e.value) for e in self._repo.config if e.name.startswith(prefix)]

    def set_config(self, key: str, value: str) -> None:
        """Set a key in the repository's own config (.git/config)."""
        with self.lock:
            self._repo.config[key] = value

    def user_name(self) -> str | None:
        try:
            return self._repo.config["user.name"]
        except KeyError:
            return None

    # -- refs ------------------------------------------------------------

    def ref_target(self, name: str) -> str | None:
        """The oid a ref points at, or None if the ref does not exist."""
        with self.lock:
            ref = self._repo.references.get(name)
            if ref is None:
                return None
            return str(ref.resolve().target)

    def iter_refs(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(name, oid) of every ref whose name starts with ``prefix``."""
        with self.lock:
            found = [
                (ref.name, str(ref.target))
                for ref in self._repo.references.iterator()
                if ref.name.startswith(prefix)
            ]
        return iter(found)

    def cas_ref(self, name: str, new: str | None, old: str | None) -> bool:
        """Set ref ``name`` to ``new`` only if it still points at ``old``.

        ``old=None`` means the ref must not exist yet; ``new=None`` deletes it.
        The ref's lock is taken first and the old value checked under it
        (libgit2's plain create checks existence before locking, so two
        processes could both "create" a ref). Returns False when another
        writer got there first: the caller re-reads and retries.
        """
        with self.lock:
            repo = self._repo
            try:
                with repo.transaction() as tx:
                    tx.lock_ref(name)
                    ref = repo.references.get(name)
                    current = str(ref.target) if ref is not None else None
                    if current != old:
                        raise _LostRace
                    if new is None:
                        if old is None:
                            return True
                        tx.remove(name)
                    else:
                        tx.set_target(name, new, message=f"gitml: update {name}")
                return True
            except _LostRace:
                pass
            except (pygit2.GitError, ValueError, OSError, KeyError):
                pass  # another process holds the ref's .lock file right now
        _backoff()
        return False

    def pack_refs(self) -> None:
        """Pack loose refs into packed-refs (what `git pack-refs --all` does)."""
        with self.lock:
            self._repo.compress_references()

    # -- objects ---------------------------------------------------------

    def has_object(self, oid: str) -> bool:
        with self.lock:
            return oid in self._repo

    def write_blob(self, data: bytes) -> str:
        with self.lock:
            return str(self._repo.create_blob(data))

    def read_blob(self, oid: str) -> bytes:
        with self.lock:
            return self._repo[oid].data

    def commit_info(self, oid: str) -> CommitInfo:
        with self.lock:
            return _commit_info(self._repo[oid].peel(pygit2.Commit))

    def resolve_rev(self, rev: str) -> str | None:
        """The commit a revision (branch, tag, oid, HEAD~2...) names, or None."""
        with self.lock:
            try:
                return str(self._repo.revparse_single(rev).peel(pygit2.Commit).id)
            except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
                return None

    def read_commit_files(self, commit: str, files: tuple[str, ...]) -> tuple[str, str, dict[str, bytes]]:
        """(message, tree oid, {name: content}) of top-level ``files`` of a commit, in one pass."""
        with self.lock:
            repo = self._repo
            c = repo[commit]
            tree = c.tree
            out = {}
            for name in files:
                try:
                    entry = tree[name]
                except KeyError:
                    continue
                if entry.type == ObjectType.BLOB:
                    out[name] = repo[entry.id].data
            return c.message, str(c.tree_id), out

    def read_path(self, tree: str, path: str) -> bytes | None:
        """The content of the blob at ``path`` inside tree ``tree``, or None."""
        with self.lock:
            try:
                entry = self._repo[tree][path]
            except KeyError:
                return None
            if entry.type != ObjectType.BLOB:
                return None
            return self._repo[entry.id].data

    def list_dir(self, tree: str, path: str = "") -> list[tuple[str, str, bool]]:
        """(name, oid, is_tree) of the entries of the subtree at ``path``."""
        with self.lock:
            obj = self._repo[tree]
            if path:
                try:
                    entry = obj[path]
                except KeyError:
                    return []
                if entry.type != ObjectType.TREE:
                    return []
                obj = self._repo[entry.id]
            return [(e.name, str(e.id), e.type == ObjectType.TREE) for e in obj]

    def walk_blobs(self, tree: str, path: str = "") -> Iterator[tuple[str, str]]:
        """(relative path, blob oid) of every blob under ``path``, depth first."""
        stack = [("", tree if not path else self._subtree(tree, path))]
        while stack:
            prefix, oid = stack.pop()
            if oid is None:
                continue
            for name, child, is_tree in self.list_dir(oid):
                rel = f"{prefix}{name}"
                if is_tree:
                    stack.append((rel + "/", child))
                else:
                    yield rel, child

    def _subtree(self, tree: str, path: str) -> str | None:
        with self.lock:
            try:
                entry = self._repo[tree][path]
            except KeyError:
                return None
            return str(entry.id) if entry.type == ObjectType.TREE else None

    def update_tree(self, base: str | None, changes: dict[str, bytes | None]) -> str:
        """Write a tree equal to ``base`` with ``changes`` applied; return its oid.

        ``changes`` maps slash-separated paths to new content (bytes) or None
        to delete. Only the subtrees on changed paths are rewritten; empty
        subtrees are dropped, as git does.
        """
        with self.lock:
            base_tree = self._repo[base] if base else None
            return str(self._update(base_tree, changes))

    def _update(self, tree: pygit2.Tree | None, changes: dict[str, bytes | None]) -> pygit2.Oid:
        repo = self._repo
        builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
        nested: dict[str, dict[str, bytes | None]] = {}
        for path, data in changes.items():
            head, _, rest = path.partition("/")
            if rest:
                nested.setdefault(head, {})[rest] = data
            elif data is None:
                if builder.get(head) is not None:
                    builder.remove(head)
            else:
                builder.insert(head, repo.create_blob(data), BLOB_MODE)
        for head, sub in nested.items():
            existing = builder.get(head)
            subtree = None
            if existing is not None and existing.type == ObjectType.TREE:
                subtree = repo[existing.id]
            oid = self._update(subtree, sub)
            if len(repo[oid]) == 0:
                if existing is not None:
                    builder.remove(head)
            else:
                builder.insert(head, oid, TREE_MODE)
        return builder.write()

    def write_commit(self, tree: str, parents: list[str], message: str) -> str:
        """Write a commit object (no ref is moved) and return its oid."""
        with self.lock:
            sig = self.signature()
            return str(self._repo.create_commit(None, sig, sig, message, tree, parents))

    # -- history ---------------------------------------------------------

    def head(self) -> tuple[str | None, str | None]:
        """(HEAD commit or None if unborn, branch name or None if detached)."""
        with self.lock:
            repo = self._repo
            branch = None
            try:
                if not repo.head_is_detached:
                    branch = repo.references["HEAD"].target
                    if isinstance(branch, str) and branch.startswith("refs/heads/"):
                        branch = branch[len("refs/heads/") :]
            except (KeyError, pygit2.GitError):
                branch = None
            if repo.head_is_unborn:
                return None, branch
            return str(repo.head.target), branch

    def walk(self, start: str, limit: int | None = None) -> Iterator[CommitInfo]:
        """Commits reachable from ``start``, newest first (topological + time order)."""
        with self.lock:
            walker = self._repo.walk(start, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
            out = []
            for i, c in enumerate(walker):
                if limit is not None and i >= limit:
                    break
                out.append(_commit_info(c))
        return iter(out)

    # -- tags ------------------------------------------------------------

    def tag_refs(self) -> dict[str, str]:
        """Tag name (without ``refs/tags/``) -> the oid the ref points at."""
        with self.lock:
            return {
                ref.name[10:]: str(ref.target)
                for ref in self._repo.references.iterator(pygit2.enums.ReferenceFilter.TAGS)
                if ref.type == pygit2.enums.ReferenceType.DIRECT
            }

    def read_tag(self, oid: str) -> TagInfo | None:
        """The annotated tag object ``oid``, or None if it is not a tag object (a lightweight tag)."""
        with self.lock:
            obj = self._repo.get(oid)
            if obj is None or obj.type != ObjectType.TAG:
                return None
            tagger = obj.tagger
            return TagInfo(
                oid=oid, name=obj.name, target=str(obj.target),
                tagger=tagger.name if tagger else "", email=tagger.email if tagger else "",
                time=tagger.time if tagger else 0, offset=tagger.offset if tagger else 0,
                message=obj.message or "",
            )

    def write_tag(self, name: str, target: str, message: str, when: int | None = None) -> str:
        """Write an annotated tag object (no ref yet) tagged now, or at ``when`` (epoch seconds)."""
        sig = self.signature()
        if when is not None:
            sig = pygit2.Signature(sig.name, sig.email, when, sig.offset)
        with self.lock:
            return self._tag_object(name, target, self._repo[target].type, sig, message)

    def _tag_object(self, name: str, target: str, kind: int, sig: pygit2.Signature, message: str) -> str:
        sign = "+" if sig.offset >= 0 else "-"
        hours, minutes = divmod(abs(sig.offset), 60)
        type_name = {ObjectType.COMMIT: "commit", ObjectType.TREE: "tree", ObjectType.BLOB: "blob",
                     ObjectType.TAG: "tag"}[kind]
        if not message.endswith("\n"):
            message += "\n"
        raw = (f"object {target}\ntype {type_name}\ntag {name}\n"
               f"tagger {sig.name} <{sig.email}> {sig.time} {sign}{hours:02d}{minutes:02d}\n\n{message}")
        return str(self._repo.odb.write(ObjectType.TAG, raw.encode()))

    def create_refs(self, refs: dict[str, str]) -> bool:
        """Create every ref in ``refs`` (name -> oid) at once, or none of them.

        All the refs' locks are taken first; if any of them exists already
        (another writer got there first) nothing is written and False is
        returned, so the caller can re-read and retry.
        """
        with self.lock:
            repo = self._repo
            try:
                with repo.transaction() as tx:
                    for name in refs:
                        tx.lock_ref(name)
                    if any(repo.references.get(name) is not None for name in refs):
                        raise _LostRace
                    for name, oid in refs.items():
                        tx.set_target(name, oid, message=f"gitml: create {name}")
                return True
            except _LostRace:
                pass
            except (pygit2.GitError, ValueError, OSError, KeyError):
                pass  # another process holds one of the locks
        _backoff()
        return False

    # -- notes -----------------------------------------------------------

    def read_note(self, notes_ref: str, target: str) -> str | None:
        """The note attached to ``target`` in ``notes_ref``, or None."""
        with self.lock:
            try:
                return self._repo.lookup_note(target, notes_ref).message
            except KeyError:
                return None

    def update_notes(
        self, notes_ref: str, edits: dict[str, Callable[[str | None], str | None]], message: str
    ) -> None:
        """Rewrite the notes on several objects in one notes commit, compare-and-swap.

        ``edits`` maps a target oid to ``edit(old_text) -> new_text``; an edit
        may run several times (once per lost race), so it must be a pure
        function of the old text. Returning None removes the note.

        Raises:
            ConcurrentUpdate: the notes ref kept moving for CAS_RETRIES attempts.
        """
        for _ in range(CAS_RETRIES):
            old = self.ref_target(notes_ref)
            base_tree = self.commit_info(old).tree if old else None
            changes: dict[str, bytes | None] = {}
            for target, edit in edits.items():
                path = self._note_path(base_tree, target)
                raw = self.read_path(base_tree, path) if base_tree else None
                current = raw.decode("utf-8", "replace") if raw is not None else None
                text = edit(current)
                if text != current:
                    changes[path] = None if text is None else text.encode()
            if not changes:
                return
            tree = self.update_tree(base_tree, changes)
            commit = self.write_commit(tree, [old] if old else [], message)
            if self.cas_ref(notes_ref, commit, old):
                return
        raise ConcurrentUpdate(f"Gave up updating {notes_ref} after {CAS_RETRIES} attempts")

    def note_path(self, tree: str | None, target: str) -> str:
        """Where the note on ``target`` goes in notes tree ``tree`` (flat or fanned out)."""
        return self._note_path(tree, target)

    def notes_in_tree(self, tree: str) -> list[tuple[str, str]]:
        """(annotated oid, text) of every note in a notes tree (flat or fanned out)."""
        out = []
        for path, blob in self.walk_blobs(tree):
            target = path.replace("/", "")
            if len(target) == 40:
                out.append((target, self.read_blob(blob).decode("utf-8", "replace")))
        return out

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True if commit ``ancestor`` is reachable from ``descendant`` (or equal)."""
        with self.lock:
            if ancestor == descendant:
                return True
            try:
                return self._repo.descendant_of(descendant, ancestor)
            except (KeyError, ValueError, pygit2.GitError):
                return False

    def _note_path(self, tree: str | None, target: str) -> str:
        # git switches to 2/38 fan-out directories once a notes tree grows;
        # write where a reader following the existing layout will look.
        if tree is not None:
            for name, _, is_tree in self.list_dir(tree):
                if is_tree and len(name) == 2:
                    return f"{target[:2]}/{target[2:]}"
        return target

    def note_targets(self, notes_ref: str) -> Iterator[tuple[str, str]]:
        """(annotated object id, note text) for every note in ``notes_ref``."""
        with self.lock:
            try:
                notes = list(self._repo.notes(notes_ref))
            except (KeyError, pygit2.GitError):
                return iter(())
            return iter([(str(n.annotated_id), n.message) for n in notes])
