"""Git access for gitml: refs with compare-and-swap, trees, commits, notes.

This is one of the two modules that import pygit2 (with ``snapshot``). Object
ids cross this boundary as 40-char hex strings so the domain layers never see
pygit2 types.
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from gitml.errors import GitmlError
from gitml.store import discovery, names, notes, packs

log = logging.getLogger("gitml")


class _LazyModule:
    """A module imported on first use. pygit2 takes ~100 ms to import, and
    registry reads with a warm cache never need it (refs are read as files)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        module = importlib.import_module(self._name)
        globals()[self._name] = module  # later lookups go straight to the module
        return getattr(module, attr)


if TYPE_CHECKING:
    import pygit2
else:
    pygit2 = _LazyModule("pygit2")

# git's own constants (object types as libgit2 numbers them, tree entry modes)
_COMMIT, _TREE, _BLOB, _TAG = 1, 2, 3, 4
BLOB_MODE = 0o100644
TREE_MODE = 0o040000
GITLINK_MODE = 0o160000  # a tree entry recording a commit (a submodule's, or a ledger entry's)
_OBJECT_TYPE_NAMES = {_COMMIT: "commit", _TREE: "tree", _BLOB: "blob", _TAG: "tag"}
_HEX = frozenset("0123456789abcdef")
_OCTAL = frozenset(b"01234567")
CAS_RETRIES = 200
#: A tree update with at least this many changed files writes its objects as one pack.
PACK_THRESHOLD = 256
#: A ref's ``.lock`` file that no live gitml process holds (gitml flocks the
#: locks it takes) and that is at least this old was left by a killed process:
#: git and libgit2 hold ref locks for milliseconds.
STALE_LOCK_SECONDS = 2.0
#: Seconds ``create_refs`` waits for a ref lock another writer holds before giving up.
LOCK_WAIT = 1.0
_LOCK_RETRIES = 50  # lock failures one create_refs call retries (each holder that let go costs one)
_FILE_REFS_ATTEMPTS = 5
#: libgit2's object cache (small trees and commits read), per process; libgit2's default is 256 MB.
LIBGIT2_CACHE_BYTES = 4 << 20
#: Packs a GitRepo writes before it has libgit2 let go of the packs it opened (it never does by itself).
RELEASE_AFTER_PACKS = 40

_FALLBACK_SIGNATURE = ("gitml", "gitml@localhost")
# what would break a commit header written by hand: such a signature goes through libgit2
_UNSAFE_IN_SIGNATURE = re.compile(r"[<>\x00\n]")


class Gitlink(NamedTuple):
    """A tree entry recording commit ``oid`` (mode 160000), for ``GitRepo.update_tree``."""

    oid: str


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
    #
    # libgit2 keeps every small tree and commit it reads in a process-wide cache of up to
    # 256 MB by default. A long run's flushes read a few new trees each (10-40 KB), so its
    # process grew by that much per flush until the cap: LIBGIT2_CACHE_BYTES bounds it.
    #
    # libgit2 also hashes every object it reads again to check its id (SHA-1DC: 40% of
    # reading a 37 KB metric chunk). git's own readers (cat-file, diff, checkout) do not:
    # git computes an object's id from its content when the object arrives (index-pack and
    # unpack-objects on fetch, hash-object on write), and `git fsck` checks the store.
    global _tuned
    if not _tuned:
        pygit2.option(pygit2.enums.Option.ENABLE_STRICT_OBJECT_CREATION, False)
        pygit2.option(pygit2.enums.Option.ENABLE_STRICT_HASH_VERIFICATION, False)
        pygit2.settings.cache_max_size(LIBGIT2_CACHE_BYTES)
        _tuned = True


def _name(text: str) -> str:
    """``text`` as one shared string object, for a name or path handed to pygit2.

    pygit2 1.21 never releases the reference it takes to a str it converts
    to a C path (``pgit_borrow_fsdefault``), so every fresh string passed to
    ``Tree[...]``, ``TreeBuilder.get`` or ``references.get`` stays in memory
    for good: a long run's flushes grew the process by ~0.7 KB each. An
    interned name is leaked once, however often it is used.
    """
    return sys.intern(text)


#: gitml's own refs, the ones ``GitRepo._cas_files`` writes: plain components, no ``..``, no ``.lock``.
_OWN_REF = re.compile(r"refs/gitml(?:-local)?(?:/(?!\.)(?![^/]*\.\.)(?![^/]*\.lock(?:/|$))[A-Za-z0-9_.-]*[A-Za-z0-9_-])+")
_NOT_PLAIN = object()


def _create_lock(path: str) -> int:
    """Create a ref's lock file exclusively (its directory too); return its fd."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o666)


def _backoff() -> None:
    # Lost a race for a ref: wait a little (randomised, so two writers do not
    # keep colliding in step) before the caller re-reads and retries.
    time.sleep(random.uniform(0.0005, 0.005))


def _file_id(path: Path) -> tuple[int, int, int] | None:
    """(mtime_ns, size, inode) of a file, or None if it does not exist: changes when it is rewritten."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def is_blob_mode(mode: int) -> bool:
    """A tree entry mode of a blob: a file (executable or not) or a symlink."""
    return mode & 0o170000 in (0o100000, 0o120000)


def parse_tree(data: bytes, oid_bytes: int) -> dict[bytes, tuple[int, str]]:
    """A tree object's content as name -> (mode, hex oid) (``oid_bytes``: 20 for SHA-1, 32 for SHA-256).

    Raises:
        ValueError: the content is not a well-formed tree.
    """
    entries = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        end = nul + 1 + oid_bytes
        mode, name = data[pos:space], data[space + 1 : nul]
        if end > len(data) or not name or not 1 <= len(mode) <= 6 or not _OCTAL.issuperset(mode):
            raise ValueError("malformed tree entry")
        entries[name] = (int(mode, 8), data[nul + 1 : end].hex())
        pos = end
    return entries


class RefUpdateFailed(GitmlError):
    """A ref could not be written for a reason other than another writer winning the race."""

    http_status = 500
    error_code = "INTERNAL_ERROR"


class GitRepo:
    """A git repository opened for gitml's reads and compare-and-swap writes."""

    def __init__(self, git_dir: str | os.PathLike[str]) -> None:
        self._opened: pygit2.Repository | None = None
        self._signature: pygit2.Signature | None = None
        self.git_dir = Path(git_dir).resolve()
        self.state_dir = self.git_dir / names.STATE_DIR
        self.common_dir = discovery.common_dir(self.git_dir)  # a linked worktree shares the main repo's refs
        # pygit2 objects are not safe to share between threads mid-call.
        self.lock = threading.RLock()
        self._batch = threading.local()  # objects of this thread's open batch (see ``batch``)
        self._packs_written = 0
        self._packed_cache: tuple[tuple[int, int, int] | None, dict[str, str]] | None = None
        self._packed_sorted: list[str] | None = None
        self._stored: frozenset[bytes] = frozenset()  # the ids of the last pack this process wrote
        self._file_cas_cache: tuple[tuple[tuple[int, int, int] | None, ...], bool] | None = None
        self._config_paths: list[Path] | None = None

    @property
    def _repo(self) -> pygit2.Repository:
        """libgit2's view of the repository, opened on first use."""
        if self._opened is None:
            with self.lock:
                if self._opened is None:
                    _tune_libgit2()
                    self._opened = pygit2.Repository(str(self.git_dir))
        return self._opened

    @property
    def workdir(self) -> Path | None:
        """The work tree (None for a bare repository)."""
        if not hasattr(self, "_workdir"):
            wd = self._repo.workdir
            self._workdir = Path(wd).resolve() if wd else None
        return self._workdir

    # -- opening ---------------------------------------------------------

    @classmethod
    def discover(cls, path: str | os.PathLike[str] | None = None) -> GitRepo:
        """Open the repository containing ``path`` (default: the current directory).

        Raises:
            NotARepository: no git repository at or above ``path``.
        """
        return cls(discovery.git_dir_for(path))

    @property
    def raw(self) -> pygit2.Repository:
        """The pygit2 repository, for other modules of the store layer only."""
        return self._repo

    def signature(self) -> pygit2.Signature:
        # The name and email come from config once per process; the time must
        # be now for every commit.
        if self._signature is None:
            try:
                sig = self._repo.default_signature
                name, email = sig.name, sig.email
            except (KeyError, pygit2.GitError):
                name, email = _FALLBACK_SIGNATURE
            # as git does for commits and tags: the environment overrides the config
            self._signature = pygit2.Signature(os.environ.get("GIT_COMMITTER_NAME") or name,
                                               os.environ.get("GIT_COMMITTER_EMAIL") or email)
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
            return [(e.name, e.value or "") for e in self._repo.config if e.name.startswith(prefix)]

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
            ref = self._repo.references.get(_name(name))
            if ref is None:
                return None
            return str(ref.resolve().target)

    def iter_refs(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(name, oid) of every ref whose name starts with ``prefix``.

        A directory prefix (``refs/gitml/experiments/``) is read from the ref
        files, so listing 5 experiments does not walk 10k run refs.
        """
        if prefix.endswith("/"):
            found_files = self.file_refs(prefix)
            if found_files is not None:
                return iter(sorted(found_files.items()))
        with self.lock:
            found = [
                (ref.name, str(ref.target))
                for ref in self._repo.references.iterator()
                if ref.name.startswith(prefix)
            ]
        return iter(found)

    def cas_ref(self, name: str, new: str | None, old: str | None, also: Mapping[str, str] | None = None) -> bool:
        """Set ref ``name`` to ``new`` only if it still points at ``old``.

        ``old=None`` means the ref must not exist yet; ``new=None`` deletes it.
        ``also`` are more refs set in the same transaction, whatever they
        pointed at (one transaction costs less than two).
        The ref's lock is taken first and the old value checked under it
        (libgit2's plain create checks existence before locking, so two
        processes could both "create" a ref). Returns False when another
        writer got there first: the caller re-reads and retries.
        """
        if new is not None:
            done = self._cas_files(name, new, old, also)
            if done is not None:
                return done
        held: list[int] = []
        name = _name(name)
        with self.lock:
            repo = self._repo
            try:
                with repo.transaction() as tx:
                    tx.lock_ref(name)
                    for other in also or ():
                        tx.lock_ref(other)
                    held = self._own_locks([name, *(also or ())])
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
                    for other, target in (also or {}).items():
                        tx.set_target(other, target, message=f"gitml: update {other}")
                return True
            except _LostRace:
                pass
            except (pygit2.GitError, ValueError, OSError, KeyError):
                # Another process holds the ref's .lock file right now, or a
                # killed one left it: wait for a stale lock to be clearly stale.
                self._clear_stale_locks([name, *(also or ())], wait=True)
            finally:
                for fd in held:
                    os.close(fd)
        _backoff()
        return False

    def _cas_files(self, name: str, new: str, old: str | None, also: Mapping[str, str] | None) -> bool | None:
        """``cas_ref``'s update of gitml's own loose refs, written as git writes them, without libgit2.

        git's protocol: each ref's ``<ref>.lock`` is created exclusively
        (which also keeps out git, libgit2 and ``git pack-refs``), the old
        value is checked under the locks (loose file, else packed-refs), the
        new values are written into the locks and renamed over the refs.
        The locks are flocked from creation, so ``_clear_stale_locks`` of
        another process never takes them for a killed writer's; a lock found
        taken is judged only after this writer has let go of its own.
        libgit2's transaction did the same in ~45 system calls and ~0.35 ms
        for the two refs of a ledger fold; this is ~20 and ~0.1 ms.

        As ``git update-ref``, it refuses (``RefUpdateFailed``) to create a
        ref where a ref is in the way of its path or one lies below it.
        Returns None, and touches nothing, where it would not write what git
        writes: a ref outside ``refs/gitml*``, a target that is not an
        existing object, a reflog to append to (``logs/<ref>`` exists, or
        ``core.logAllRefUpdates=always``), ``core.sharedRepository`` or
        ``core.fsync`` settings, a symbolic ref or a directory at its path,
        reftable or SHA-256 repositories. ``cas_ref`` asks libgit2 (or git)
        then.
        """
        refs = {name: new, **(also or {})}
        if not all(_OWN_REF.fullmatch(ref) for ref in refs) or not self._files_cas_ok():
            return None
        if not all(self._existing(t) for t in set(refs.values())):
            return None
        common = str(self.common_dir)
        if any(os.path.lexists(os.path.join(common, "logs", ref)) for ref in refs):
            return None
        locks: list[tuple[str, str, int]] = []  # (lock path, ref path, fd) of the locks taken so far
        renamed, busy = 0, None
        try:
            for ref in refs:
                path = os.path.join(common, ref)
                lock = path + ".lock"
                try:
                    fd = _create_lock(lock)
                except FileExistsError:
                    busy = ref  # another writer holds it now, or a killed one left it: judged below
                    break
                except NotADirectoryError:
                    raise RefUpdateFailed(f"Could not update {ref} in {self.git_dir}: "
                                          f"a ref is in the way of its path") from None
                except OSError:
                    return None  # a directory where the lock goes...: libgit2 says what is wrong
                locks.append((lock, path, fd))
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    pass  # a stale-lock check holds it this instant: it finds the lock young and leaves it
            if busy is None:
                current = {ref: self._loose_or_packed(path) for ref, (_, path, _) in zip(refs, locks)}
                if any(value is _NOT_PLAIN for value in current.values()):
                    return None
                if current[name] == old:  # else another writer moved it: lost, below
                    for ref in (r for r, value in current.items() if value is None):
                        self._refuse_packed_conflict(ref)
                    for (_, _, fd), target in zip(locks, refs.values()):
                        data = f"{target}\n".encode()
                        if os.write(fd, data) != len(data):
                            raise OSError(f"short write to a lock of {name}")
                    for lock, path, _ in locks:
                        os.rename(lock, path)
                        renamed += 1
                    return True
        except OSError as e:
            raise RefUpdateFailed(f"Could not update {name} in {self.git_dir}: {e}") from e
        finally:
            for i, (lock, _, fd) in enumerate(locks):
                os.close(fd)
                if i >= renamed:
                    try:
                        os.unlink(lock)
                    except FileNotFoundError:
                        pass
        # Lost: another writer moved the ref, or holds a lock (or a killed one left it), judged
        # only now that this writer's locks are let go of: a wait must not hold them.
        if busy is not None:
            self._clear_stale_locks([busy], wait=True)
        _backoff()
        return False

    def _existing(self, oid: str) -> bool:
        """``oid`` is a well-formed SHA-1 of an object here (of the pack just written: no lookup)."""
        if len(oid) != 40 or not _HEX.issuperset(oid):
            return False
        return bytes.fromhex(oid) in self._stored or self.has_object(oid)

    def _refuse_packed_conflict(self, ref: str) -> None:
        """Raise if creating ``ref`` would put it beside a packed ref above or below its path (a loose
        one in the way fails the lock itself), as git refuses: "'refs/a' exists; cannot create 'refs/a/b'"."""
        packed, names = self._packed(), self._packed_names()
        parts = ref.split("/")
        above = next((a for a in ("/".join(parts[:i]) for i in range(2, len(parts))) if a in packed), None)
        i = bisect.bisect_left(names, ref + "/")
        below = names[i] if i < len(names) and names[i].startswith(ref + "/") else None
        other = above or below
        if other is not None:
            raise RefUpdateFailed(f"Could not update {ref} in {self.git_dir}: '{other}' exists; "
                                  f"cannot create '{ref}'")

    def _files_cas_ok(self) -> bool:
        """Refs are loose files and packed-refs here (no reftable), SHA-1, and no setting asks more of a
        ref write than the lock protocol: no reflog for every ref, no shared-repository modes, no
        ``core.fsync``. Read again when any config file git reads (worktree, repository, global,
        system; not their includes) changes."""
        stamp = tuple(_file_id(path) for path in self._config_files())
        if self._file_cas_cache is None or self._file_cas_cache[0] != stamp:
            shared = (self.config_value("core.sharedrepository") or "false").lower()
            ok = (self._sha1() and not (self.common_dir / "reftable").exists()
                  and (self.config_value("core.logallrefupdates") or "").lower() != "always"
                  and shared in ("false", "umask", "0", "no", "off")
                  and self.config_value("core.fsync") is None
                  and (self.config_value("core.fsyncreffiles") or "false").lower() in ("false", "0", "no", "off"))
            self._file_cas_cache = (stamp, ok)
        return self._file_cas_cache[1]

    def _config_files(self) -> list[Path]:
        """The config files git reads here, found once per repository object (a CAS stats them)."""
        if self._config_paths is None:
            home = Path(os.environ.get("HOME") or "~").expanduser()
            xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
            self._config_paths = [
                self.common_dir / "config", self.git_dir / "config.worktree",
                Path(os.environ.get("GIT_CONFIG_GLOBAL") or home / ".gitconfig"), xdg / "git" / "config",
                Path(os.environ.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig")]
        return self._config_paths

    def _loose_or_packed(self, path: str) -> str | None | object:
        """The oid of the ref at ``path`` (its loose file, else packed-refs), None if neither has it,
        ``_NOT_PLAIN`` if the loose file is not a plain ref (symbolic, a directory, garbage)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            ref = os.path.relpath(path, self.common_dir).replace(os.sep, "/")
            return self._packed().get(ref)
        except OSError:
            return _NOT_PLAIN
        try:
            text = os.read(fd, 256).decode("ascii", "replace").strip()
        except OSError:
            return _NOT_PLAIN
        finally:
            os.close(fd)
        return text if len(text) == 40 and _HEX.issuperset(text) else _NOT_PLAIN

    def _packed(self) -> dict[str, str]:
        """packed-refs as ref -> oid, parsed again only when the file changes."""
        path = self.common_dir / "packed-refs"
        stamp = _file_id(path)
        if self._packed_cache is not None and self._packed_cache[0] == stamp:
            return self._packed_cache[1]
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        out = {}
        for line in text.splitlines():
            if line and line[0] not in "#^":
                oid, _, ref = line.partition(" ")
                out[ref] = oid
        self._packed_cache = (stamp, out)
        self._packed_sorted = None
        return out

    def _packed_names(self) -> list[str]:
        """packed-refs' names, sorted (for prefix searches), with ``_packed``'s cache."""
        packed = self._packed()
        if self._packed_sorted is None:
            self._packed_sorted = sorted(packed)
        return self._packed_sorted

    def _lock_path(self, name: str) -> Path:
        return self.common_dir / f"{name}.lock"

    def _own_locks(self, refs: list[str]) -> list[int]:
        """flock the ``.lock`` files libgit2 just created for ``refs``: while this process lives they
        are known to be held (``_clear_stale_locks`` never removes them). Returns the fds to close."""
        fds = []
        for name in refs:
            try:
                fd = os.open(self._lock_path(name), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fds.append(fd)
            except OSError:
                os.close(fd)  # a stale-lock check has it this instant: our lock is young, so it stays
        return fds

    def _clear_stale_locks(self, refs: list[str], wait: bool = False) -> bool:
        """Remove the ``.lock`` files of ``refs`` that a killed process left; True if one was removed.

        A lock is stale when no live gitml process holds it (no flock) and
        it is at least STALE_LOCK_SECONDS old, so a lock another git process
        holds for its usual milliseconds is never touched. ``wait``: sleep
        until an unheld young lock is old enough to judge.
        """
        removed = False
        for name in refs:
            path = self._lock_path(name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # gone already
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live gitml process holds it
                st = os.fstat(fd)
                age = time.time() - st.st_mtime
                if age < STALE_LOCK_SECONDS:
                    if not wait:
                        continue
                    # Watch it until it is old enough to judge. A plain git process (the post-commit
                    # hook's `git update-ref`, the user's git) does not flock its lock, and lets go of
                    # it in milliseconds: stop waiting as soon as it does.
                    deadline, step = st.st_mtime + STALE_LOCK_SECONDS, 0.001
                    while time.time() < deadline and _file_id(path) == (st.st_mtime_ns, st.st_size, st.st_ino):
                        time.sleep(min(step, max(deadline - time.time(), 0.0)))
                        step = min(step * 2, 0.05)
                    if _file_id(path) != (st.st_mtime_ns, st.st_size, st.st_ino):
                        continue  # released (and maybe taken again) meanwhile: a live writer
                try:
                    if os.stat(path).st_ino != st.st_ino:
                        continue
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed = True
                log.warning("gitml: warning: removed stale lock %s (left by a killed process)", path)
            finally:
                os.close(fd)
        return removed

    def pack_refs(self) -> None:
        """Pack loose refs into packed-refs (what `git pack-refs --all` does)."""
        with self.lock:
            self._repo.compress_references()

    # -- objects ---------------------------------------------------------

    def has_object(self, oid: str) -> bool:
        with self.lock:
            return oid in self._repo

    def is_commit(self, oid: str) -> bool:
        """True if ``oid`` is a commit in this repository."""
        with self.lock:
            try:
                obj = self._repo.get(oid)
            except (ValueError, TypeError):
                return False
            return obj is not None and obj.type == _COMMIT

    def is_tree(self, oid: str) -> bool:
        """True if ``oid`` is a tree in this repository."""
        with self.lock:
            try:
                obj = self._repo.get(oid)
            except (ValueError, TypeError):
                return False
            return obj is not None and obj.type == _TREE

    def write_blob(self, data: bytes) -> str:
        with self.lock:
            pending = self._pending()
            if pending is not None:
                oid = packs.object_id(_BLOB, data)
                pending[oid] = (_BLOB, data)
                return oid.hex()
            return str(self._repo.create_blob(data))

    def blob_id(self, data: bytes) -> str:
        """The id ``data`` has (or would have) as a blob in this repository; nothing is written
        (and libgit2 is not loaded: registry reads stay light)."""
        digest = hashlib.sha1 if self._sha1() else hashlib.sha256
        return digest(b"blob %d\0" % len(data) + data).hexdigest()

    def _tree(self, oid: str | pygit2.Oid) -> pygit2.Tree:
        return cast("pygit2.Tree", self._repo[oid])

    def _blob_data(self, oid: str | pygit2.Oid) -> bytes:
        # One odb read. ``repo[oid].data`` inflates the object twice (once to look it up,
        # once for its content): half the time of reading a metric chunk.
        kind, data = self._repo.odb.read(oid)
        if kind != _BLOB:
            raise KeyError(f"{oid} is not a blob")
        return data

    def read_blob(self, oid: str) -> bytes:
        with self.lock:
            return self._blob_data(oid)

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

    def read_commit_files(self, commit: str, files: tuple[str, ...]) -> tuple[str, str, dict[str, bytes]] | None:
        """(message, tree oid, {name: content}) of top-level ``files`` of a commit, in one pass.

        None if ``commit`` is missing or is not a commit (a ref someone
        pointed at a blob, say). Entries that are not blobs are left out.
        """
        with self.lock:
            repo = self._repo
            try:
                c = repo[commit]
            except (KeyError, ValueError):
                return None
            if c.type != _COMMIT:
                return None
            commit_obj = cast("pygit2.Commit", c)
            tree = commit_obj.tree
            out = {}
            for name in files:
                try:
                    entry = tree[name]
                except KeyError:
                    continue
                if entry.type == _BLOB:
                    out[name] = self._blob_data(entry.id)
            return commit_obj.message, str(commit_obj.tree_id), out

    def read_path(self, tree: str, path: str) -> bytes | None:
        """The content of the blob at ``path`` inside tree ``tree``, or None."""
        entry = self.tree_entry(tree, path)
        if entry is None or not is_blob_mode(entry[0]):
            return None
        with self.lock:
            try:
                return self._blob_data(entry[1])
            except KeyError:
                return None  # a hostile tree: a file entry naming a tree

    def list_dir(self, tree: str, path: str = "") -> list[tuple[str, str, bool]]:
        """(name, oid, is_tree) of the entries of the subtree at ``path``."""
        with self.lock:
            obj = self._tree(tree)
            if path:
                try:
                    entry = obj[_name(path)]
                except KeyError:
                    return []
                if entry.type != _TREE:
                    return []
                obj = self._tree(entry.id)
            return [(e.name or "", str(e.id), e.type == _TREE) for e in obj]

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
                entry = self._tree(tree)[_name(path)]
            except KeyError:
                return None
            return str(entry.id) if entry.type == _TREE else None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Store the objects this thread writes inside the block as one pack, when it ends.

        Trees, blobs and commits made by ``update_tree``, ``write_blob`` and
        ``write_commit`` are built in memory (their ids computed here) and
        written together: a run commit is a dozen objects, and one pack costs
        less than a dozen loose files (see ``packs``). Their ids may be used
        inside the block, but nothing may point a ref at them before it ends.
        Nested blocks join the outermost. A block left by an exception
        writes nothing. Repositories with SHA-256 object ids write loose
        objects as before.
        """
        if getattr(self._batch, "objects", None) is not None or not self._sha1():
            yield
            return
        self._batch.objects = {}
        try:
            yield
            objects = self._batch.objects
        finally:
            self._batch.objects = None
        if objects:
            self._store(objects)

    def _pending(self) -> dict[bytes, tuple[int, bytes]] | None:
        return cast("dict[bytes, tuple[int, bytes]] | None", getattr(self._batch, "objects", None))

    def _store(self, objects: dict[bytes, tuple[int, bytes]]) -> None:
        with self.lock:
            packs.write_pack(self.common_dir / "objects", objects)
            self._stored = frozenset(objects)  # the ref written next names one of these: known to exist
            packs.repack_if_many(self.common_dir)
            self._packs_written += 1
            if self._packs_written % RELEASE_AFTER_PACKS == 0 and self._opened is not None:
                # libgit2 keeps every pack it has opened, even once a repack has deleted it: a
                # long run's flushes (a pack each) piled up an open file, two maps (~60 KB) and
                # a place in every lookup's search per flush. free() lets go of the object
                # database; the next lookup opens the packs on disk.
                self._opened.free()

    def update_tree(self, base: str | None, changes: Mapping[str, bytes | Gitlink | None]) -> str:
        """Write a tree equal to ``base`` with ``changes`` applied; return its oid.

        ``changes`` maps slash-separated paths to new content (bytes), to a
        ``Gitlink`` (an entry recording a commit), or to None to delete. Only
        the subtrees on changed paths are rewritten; empty subtrees are
        dropped, as git does. Inside ``batch()`` the objects join the batch;
        many changes at once (a run with thousands of metric keys) are one
        pack of their own.
        """
        with self.lock:
            pending = self._pending()
            if pending is not None:
                return self._build_tree(base, changes, pending)
            if len(changes) >= PACK_THRESHOLD and self._sha1():
                with self.batch():
                    return self._build_tree(base, changes, self._batch.objects)
            base_tree = self._tree(base) if base else None
            return str(self._update(base_tree, changes))

    def _sha1(self) -> bool:
        """True if object ids are SHA-1 (read without libgit2: registry reads and the hook's writes
        stay light)."""
        if not hasattr(self, "_is_sha1"):
            # extensions.objectformat lives in the repository's own config file only
            try:
                text = (self.common_dir / "config").read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            self._is_sha1 = not re.search(r"^\s*objectformat\s*=\s*sha256\s*$", text, re.MULTILINE | re.IGNORECASE)
        return self._is_sha1

    def _tree_entries(self, oid: str, pending: dict[bytes, tuple[int, bytes]]) -> dict[bytes, tuple[int, str]]:
        """name -> (mode, oid) of a tree, from the batch or the repository."""
        raw = pending.get(bytes.fromhex(oid))
        if raw is None:
            return self.tree_entries(oid)
        return parse_tree(raw[1], 20)

    def tree_entries(self, tree: str) -> dict[bytes, tuple[int, str]]:
        """name -> (mode, oid) of the entries of tree ``tree``.

        Raises:
            KeyError: there is no such tree.
        """
        with self.lock:
            return {e.raw_name or b"": (e.filemode, str(e.id)) for e in self._tree(tree)}

    def tree_entry(self, tree: str, path: str) -> tuple[int, str] | None:
        """(mode, oid) of the entry at slash-separated ``path`` in tree ``tree``, or None."""
        with self.lock:
            try:
                entry = self._repo[tree].peel(pygit2.Tree)[_name(path)]
            except (KeyError, ValueError, TypeError, pygit2.GitError):
                return None  # no such tree or entry (or a hostile tree entry naming a blob)
            return entry.filemode, str(entry.id)

    def tree_of(self, commit: str) -> str | None:
        """The tree of commit ``commit`` (tags peeled), or None if there is no such commit."""
        with self.lock:
            try:
                return str(self._repo[commit].peel(pygit2.Tree).id)
            except (KeyError, ValueError, pygit2.GitError):
                return None

    def _build_tree(self, base: str | None, changes: Mapping[str, bytes | Gitlink | None],
                    pending: dict[bytes, tuple[int, bytes]]) -> str:
        """``update_tree`` building the new blobs and trees in memory, into ``pending``."""

        def add(kind: int, data: bytes, existing: tuple[int, str] | None = None) -> str:
            oid = packs.object_id(kind, data).hex()
            if existing is None or existing[1] != oid:  # an unchanged file or subtree is stored already
                pending[bytes.fromhex(oid)] = (kind, data)
            return oid

        def build(tree: str | None, todo: Mapping[str, bytes | Gitlink | None]) -> str | None:
            # ``tree``'s entries with ``todo`` applied; None if that leaves it empty
            entries = self._tree_entries(tree, pending) if tree is not None else {}
            nested: dict[bytes, dict[str, bytes | Gitlink | None]] = {}
            for path, data in todo.items():
                head, _, rest = path.partition("/")
                name = head.encode()
                if rest:
                    nested.setdefault(name, {})[rest] = data
                elif data is None:
                    entries.pop(name, None)
                elif isinstance(data, Gitlink):
                    entries[name] = (GITLINK_MODE, data.oid)
                else:
                    entries[name] = (BLOB_MODE, add(_BLOB, data, entries.get(name)))
            for name, sub in nested.items():
                existing = entries.get(name)
                oid = build(existing[1] if existing is not None and existing[0] == TREE_MODE else None, sub)
                if oid is None:
                    entries.pop(name, None)
                else:
                    entries[name] = (TREE_MODE, oid)
            if not entries and tree is not None and todo:
                return None
            # git's order: names compared as bytes, a tree's name as if it ended in '/'
            order = sorted(entries, key=lambda n: n + b"/" if entries[n][0] == TREE_MODE else n)
            return add(_TREE, b"".join(b"%o %s\0" % (entries[n][0], n) + bytes.fromhex(entries[n][1])
                                       for n in order), (TREE_MODE, tree) if tree is not None else None)

        root = build(base, changes)
        return root if root is not None else add(_TREE, b"")

    def _update(self, tree: pygit2.Tree | None, changes: Mapping[str, bytes | Gitlink | None]) -> pygit2.Oid:
        repo = self._repo
        builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
        nested: dict[str, dict[str, bytes | Gitlink | None]] = {}
        for path, data in changes.items():
            head, _, rest = path.partition("/")
            head = _name(head)
            if rest:
                nested.setdefault(head, {})[rest] = data
            elif data is None:
                if builder.get(head) is not None:
                    builder.remove(head)
            elif isinstance(data, Gitlink):
                builder.insert(head, pygit2.Oid(hex=data.oid), GITLINK_MODE)
            else:
                builder.insert(head, repo.create_blob(data), BLOB_MODE)
        for head, sub in nested.items():
            existing = builder.get(head)
            subtree = None
            if existing is not None and existing.type == _TREE:
                subtree = self._tree(existing.id)
            oid = self._update(subtree, sub)
            if len(self._tree(oid)) == 0:
                if existing is not None:
                    builder.remove(head)
            else:
                builder.insert(head, oid, TREE_MODE)
        return builder.write()

    def write_commit(self, tree: str, parents: list[str], message: str) -> str:
        """Write a commit object (no ref is moved) and return its oid."""
        with self.lock:
            sig = self.signature()
            pending = self._pending()
            if pending is not None and not _UNSAFE_IN_SIGNATURE.search(sig.name + sig.email):
                offset = sig.offset
                zone = "%s%02d%02d" % ("-" if offset < 0 else "+", abs(offset) // 60, abs(offset) % 60)
                who = f"{sig.name} <{sig.email}> {sig.time} {zone}"
                header = "".join([f"tree {tree}\n", *(f"parent {p}\n" for p in parents),
                                  f"author {who}\n", f"committer {who}\n\n"])
                data = header.encode() + message.encode()
                oid = packs.object_id(_COMMIT, data)
                pending[oid] = (_COMMIT, data)
                return oid.hex()
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
                return None, branch if isinstance(branch, str) else None
            return str(repo.head.target), branch if isinstance(branch, str) else None

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
        found = self.file_refs("refs/tags/")
        if found is not None:
            return {name[10:]: oid for name, oid in found.items()}
        with self.lock:
            return {
                ref.name[10:]: str(ref.target)
                for ref in self._repo.references.iterator(pygit2.enums.ReferenceFilter.TAGS)
                if ref.type == pygit2.enums.ReferenceType.DIRECT
            }

    def file_refs(self, prefix: str) -> dict[str, str] | None:
        """Refs under ``prefix`` read straight from the loose ref files and packed-refs.

        No libgit2 needed (what a warm registry read uses). Returns None for
        a ref storage this does not read (reftable): ask libgit2 instead.

        Loose refs are read first, then packed-refs, as git does: ``git
        pack-refs --prune`` writes packed-refs before it deletes the loose
        files, so a ref moving from one to the other is seen in at least one
        of the two reads (a loose ref wins over its packed value). If
        packed-refs changed while the loose refs were read, both are read
        again.
        """
        common = self.common_dir
        if (common / "reftable").exists():
            return None
        packed_path = common / "packed-refs"
        for _ in range(_FILE_REFS_ATTEMPTS):
            before = _file_id(packed_path)
            loose = self._loose_refs(common, prefix)
            try:
                packed = packed_path.read_text(errors="replace")
            except FileNotFoundError:
                packed = ""
            if _file_id(packed_path) == before:
                break
        refs: dict[str, str] = {}
        for line in packed.splitlines():
            if line and line[0] not in "#^":
                oid, _, name = line.partition(" ")
                if name.startswith(prefix):
                    refs[name] = oid
        refs.update(loose)
        return refs

    @staticmethod
    def _loose_refs(common: Path, prefix: str) -> dict[str, str]:
        refs = {}
        for root, _, files in os.walk(common / prefix):
            for f in files:
                if f.endswith(".lock"):
                    continue
                path = os.path.join(root, f)
                try:
                    with open(path, encoding="ascii", errors="replace") as fh:
                        oid = fh.read().strip()
                except OSError:
                    continue  # deleted under us (packed since: read from packed-refs after this)
                if len(oid) in (40, 64) and set(oid) <= _HEX:
                    refs[os.path.relpath(path, common).replace(os.sep, "/")] = oid
        return refs

    def read_tag(self, oid: str) -> TagInfo | None:
        """The annotated tag object ``oid``, or None if it is not a tag object (a lightweight tag)."""
        with self.lock:
            obj = self._repo.get(oid)
            if obj is None or obj.type != _TAG:
                return None
            tag = cast("pygit2.Tag", obj)
            tagger = tag.tagger
            return TagInfo(
                oid=oid, name=tag.name or "", target=str(tag.target),
                tagger=tagger.name if tagger else "", email=tagger.email if tagger else "",
                time=tagger.time if tagger else 0, offset=tagger.offset if tagger else 0,
                message=tag.message or "",
            )

    def write_tag(self, name: str, target: str, message: str, when: int | None = None,
                  signature: tuple[str, str, int, int] | None = None) -> str:
        """Write an annotated tag object (no ref yet).

        Tagged by the current user now, or at ``when`` (epoch seconds); or by
        ``signature`` = (name, email, epoch seconds, minutes east of UTC),
        as when a tag is rewritten under another name.
        """
        if signature is not None:
            sig = pygit2.Signature(signature[0], signature[1], int(signature[2]), int(signature[3]))
        else:
            sig = self.signature()
            if when is not None:
                sig = pygit2.Signature(sig.name, sig.email, when, sig.offset)
        with self.lock:
            return self._tag_object(name, target, self._repo[target].type, sig, message)

    def _tag_object(self, name: str, target: str, kind: int, sig: pygit2.Signature, message: str) -> str:
        sign = "+" if sig.offset >= 0 else "-"
        hours, minutes = divmod(abs(sig.offset), 60)
        type_name = _OBJECT_TYPE_NAMES[int(kind)]
        if not message.endswith("\n"):
            message += "\n"
        raw = (f"object {target}\ntype {type_name}\ntag {name}\n"
               f"tagger {sig.name} <{sig.email}> {sig.time} {sign}{hours:02d}{minutes:02d}\n\n{message}")
        return str(self._repo.odb.write(_TAG, raw.encode()))

    def create_refs(self, refs: dict[str, str]) -> bool:
        """Create every ref in ``refs`` (name -> oid) at once, or none of them.

        All the refs' locks are taken first; if any of them exists already
        (another writer got there first) nothing is written and False is
        returned, so the caller can re-read and retry. A lock held by another
        writer is waited for (up to ``LOCK_WAIT`` seconds).

        Raises:
            RefUpdateFailed: a ref could not be locked or written for another
            reason: a stale ``.lock`` file (named in the message), a ref in
            the way of the name (``refs/tags/a`` blocks ``refs/tags/a/b``)...
        """
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.001
        failures = 0
        while True:
            held: list[int] = []
            with self.lock:
                repo = self._repo
                try:
                    with repo.transaction() as tx:
                        for name in refs:
                            tx.lock_ref(name)
                        held = self._own_locks(list(refs))
                        if any(repo.references.get(name) is not None for name in refs):
                            raise _LostRace
                        for name, oid in refs.items():
                            tx.set_target(name, oid, message=f"gitml: create {name}")
                    return True
                except _LostRace:
                    break
                except (pygit2.GitError, ValueError, OSError, KeyError) as e:
                    error = e
                finally:
                    for fd in held:
                        os.close(fd)
            # Not a lost race: a lock held by another writer (wait for it), a
            # lock a killed process left (removed once clearly stale), or
            # something that will not go away by itself (say so).
            failures += 1
            locked = "failed to lock" in str(error)
            if locked and failures <= _LOCK_RETRIES and (
                    self._clear_stale_locks(list(refs), wait=True)
                    or not any(self._lock_path(name).exists() for name in refs)):
                # A stale lock removed, or the holder let go while it was being judged
                # (which can take STALE_LOCK_SECONDS, longer than LOCK_WAIT): try again now.
                deadline = time.monotonic() + LOCK_WAIT
                continue
            if (not locked and failures >= 3) or time.monotonic() >= deadline:
                raise RefUpdateFailed(self._ref_failure(list(refs), error))
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        _backoff()
        return False

    def _ref_failure(self, names_: list[str], error: BaseException) -> str:
        locks = [p for p in (self.common_dir / f"{n}.lock" for n in names_) if p.exists()]
        if locks:
            return (f"Cannot write {', '.join(names_)}: {locks[0]} exists (held for over {LOCK_WAIT:g} s). "
                    "Another git process may be writing it; if none is running, the lock file is stale "
                    "(left by a killed process): delete it and try again")
        return f"Cannot write {', '.join(names_)}: {error}"

    # -- history (continued) -------------------------------------------

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True if commit ``ancestor`` is reachable from ``descendant`` (or equal)."""
        with self.lock:
            if ancestor == descendant:
                return True
            try:
                return self._repo.descendant_of(descendant, ancestor)
            except (KeyError, ValueError, pygit2.GitError):
                return False

    # -- notes (gitml.store.notes does the work) --------------------------

    def read_note(self, notes_ref: str, target: str) -> str | None:
        """The note attached to ``target`` in ``notes_ref``, or None."""
        return notes.read_note(self, notes_ref, target)

    def update_notes(
        self, notes_ref: str, edits: Mapping[str, Callable[[str | None], str | None]], message: str
    ) -> None:
        """Rewrite the notes on several objects in one notes commit, compare-and-swap (``notes.update_notes``).

        Raises:
            ConcurrentUpdate: the notes ref kept moving for CAS_RETRIES attempts.
        """
        notes.update_notes(self, notes_ref, edits, message, CAS_RETRIES)

    def note_path(self, tree: str | None, target: str) -> str:
        """Where the note on ``target`` goes in notes tree ``tree`` (flat or fanned out)."""
        return notes.note_path(self, tree, target)

    def notes_in_tree(self, tree: str) -> list[tuple[str, str]]:
        """(annotated oid, text) of every note in a notes tree (flat or fanned out)."""
        return notes.notes_in_tree(self, tree)

    def note_targets(self, notes_ref: str) -> Iterator[tuple[str, str]]:
        """(annotated object id, note text) for every note in ``notes_ref``."""
        return notes.note_targets(self, notes_ref)
