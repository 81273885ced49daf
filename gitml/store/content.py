"""The content store: artifacts as content-addressed files in DVC's cache layout.

Objects live at ``<cache>/files/md5/<2 hex>/<30 hex>`` (DVC 3's layout); a
directory is additionally a ``<md5>.dir`` JSON object listing its files, so
``dvc`` can fetch or check out anything gitml stored by the hash gitml
recorded. Storage and hashing go through dvc-data: its hash cache (keyed
by inode, mtime and size) makes re-logging an unchanged file nearly free,
and cache files are made read-only as DVC does, so they can be reflinked
safely.

The cache is ``.git/gitml/cache``, also in a repository that uses DVC: DVC's
``dvc gc`` keeps only what the ``.dvc`` files and ``dvc.lock`` of the
revisions it walks name, and no gitml run is in one, so objects in DVC's
cache would be DVC's to delete. DVC's cache is read as a fallback (objects an
older gitml stored there, or content DVC fetched), and an object found only
there is copied into gitml's cache on first use (*adopted*).

Objects are deleted only by ``gitml gc`` (``gitml/tracking/gc.py``). Its
protocol with writers is the lock ``<cache>/gc.lock``: a writer holds it
shared from storing an object until the event naming it is in a live log
(``writing``), the collector holds it exclusively while it deletes
(``collecting``). An object that is stored again is *freshened* (its mtime
set to now), so ``gitml gc --keep-recent`` counts from its last use, as
git's prune does. This is the only module that imports dvc-data.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gitml.errors import GitmlError

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo

HASH = "md5"
_CHUNK = 4 * 1024 * 1024
_OID_RE = re.compile(r"[0-9a-f]{32}(\.dir)?")
# Objects whose whole content was hashed in this process: path -> (inode, size, mtime_ns) then.
_verified: dict[str, tuple[int, int, int]] = {}

#: A long operation's report to its caller: (phase, done, total). The CLI draws it as bars.
Progress = Callable[[str, int, int], None]


class ByteProgress:
    """Counts bytes read across the files of one operation and reports them as ``phase``.

    Reports at most about every 1% and at the end, so a directory of many
    small files does not redraw a bar per file.
    """

    def __init__(self, progress: Progress | None, phase: str, total: int) -> None:
        self.progress, self.phase, self.total = progress, phase, total
        self.done = 0
        self._step = max(total // 100, 1)
        self._next = 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress is not None and (self.done >= self._next or self.done >= self.total):
            self._next = self.done + self._step
            self.progress(self.phase, min(self.done, self.total), self.total)


class CorruptObject(GitmlError):
    """A cache object's content does not match its hash."""

    http_status = 500
    error_code = "DATA_LOSS"


class MissingObject(GitmlError):
    """A referenced object is not in the local cache (pull it first)."""

    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


@dataclass(frozen=True)
class Stored:
    """One stored file: its path relative to what was logged, hash and size."""

    relpath: str
    md5: str
    size: int


def _copy_hashing(src: str, dest: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Copy ``src`` to ``dest`` and return (md5, size) in about the time of the slower of the two.

    A reflink (copy-on-write clone, no data copied) is tried first. Otherwise
    the kernel copies (``shutil.copyfile`` uses sendfile/copy_file_range) in
    a thread while this one hashes; both release the GIL, and the second
    reader is served from the page cache. A file that changes meanwhile is
    refused, since its copy and its hash could disagree.
    """
    from concurrent.futures import ThreadPoolExecutor

    from gitml.errors import InvalidValue

    before = os.stat(src)
    with open(src, "rb") as fin:
        if _reflink(fin.fileno(), dest):
            md5, size = _md5_of(fin, on_bytes)
        else:
            with ThreadPoolExecutor(max_workers=1) as pool:
                copying = pool.submit(shutil.copyfile, src, dest)
                md5, size = _md5_of(fin, on_bytes)
                copying.result()
    after = os.stat(src)
    if (before.st_mtime_ns, before.st_size, before.st_ino) != (after.st_mtime_ns, after.st_size, after.st_ino):
        dest.unlink(missing_ok=True)
        raise InvalidValue(f"{src!r} changed while it was being logged; log it again once it is written")
    return md5, size


def _md5_of(fobj: Any, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    digest = hashlib.md5()
    size = 0
    while block := fobj.read(_CHUNK):
        digest.update(block)
        size += len(block)
        if on_bytes is not None:
            on_bytes(len(block))
    return digest.hexdigest(), size


def _reflink(src_fd: int, dest: Path) -> bool:
    """Clone ``src_fd`` into ``dest`` with FICLONE (btrfs, XFS, ...); False if unsupported."""
    import fcntl
    import sys

    if not sys.platform.startswith("linux"):
        return False
    ficlone = 0x40049409
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.ioctl(fd, ficlone, src_fd)
        return True
    except OSError:
        os.close(fd)
        fd = -1
        dest.unlink()
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def cache_dir_for(repo: GitRepo) -> Path:
    """gitml's cache: ``.git/gitml/cache`` (in a DVC repository too; see the module docstring)."""
    return repo.git_dir / "gitml" / "cache"


def dvc_cache_dir(repo: GitRepo) -> Path | None:
    """DVC's cache if the repository uses DVC (read by gitml as a fallback, never written), else None.

    Reads ``cache.dir`` from ``.dvc/config`` and ``.dvc/config.local`` (a
    relative dir is relative to ``.dvc/``, as in DVC).
    """
    if repo.workdir is None:
        return None
    dvc_dir = repo.workdir / ".dvc"
    if not dvc_dir.is_dir():
        return None
    cache = dvc_dir / "cache"
    for name in ("config", "config.local"):
        parser = configparser.ConfigParser()
        try:
            parser.read(dvc_dir / name)
        except configparser.Error:
            continue
        if parser.has_option("cache", "dir"):
            cache = (dvc_dir / parser.get("cache", "dir")).resolve()
    return cache


@dataclass(frozen=True)
class StoredObject:
    """One object file of a store, as a garbage collection sees it."""

    oid: str
    size: int
    #: Last modification (seconds since the epoch); None if the store does not say (kept as recent).
    mtime: float | None
    path: str


#: Files a killed transfer leaves: gitml's ``.tmp-<pid>-<hex>`` in ``files/md5/``, the filesystem
#: layer's ``.<22 characters>.tmp`` beside the objects.
_TEMP_RE = re.compile(r"\.tmp-[0-9]+-[0-9a-f]+|\.[A-Za-z0-9_-]{22}\.tmp")
_PREFIX_RE = re.compile(r"[0-9a-f]{2}")
_REST_RE = re.compile(r"[0-9a-f]{30}(\.dir)?")


def _scan_dir(root: Path) -> tuple[list[StoredObject], list[StoredObject]]:
    """(objects, leftover temporary files) under a local ``files/md5`` directory.

    Anything else found there (a file DVC or a person put) is neither: it is
    never touched.
    """
    objects: list[StoredObject] = []
    temps: list[StoredObject] = []
    try:
        top = list(os.scandir(root))
    except FileNotFoundError:
        return objects, temps
    for entry in top:
        if entry.is_file(follow_symlinks=False):
            if _TEMP_RE.fullmatch(entry.name):
                st = entry.stat(follow_symlinks=False)
                temps.append(StoredObject("", st.st_size, st.st_mtime, entry.path))
            continue
        if not (entry.is_dir(follow_symlinks=False) and _PREFIX_RE.fullmatch(entry.name)):
            continue
        for item in os.scandir(entry.path):
            if not item.is_file(follow_symlinks=False):
                continue
            try:
                st = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            if _REST_RE.fullmatch(item.name):
                objects.append(StoredObject(entry.name + item.name, st.st_size, st.st_mtime, item.path))
            elif _TEMP_RE.fullmatch(item.name):
                temps.append(StoredObject("", st.st_size, st.st_mtime, item.path))
    return objects, temps


def _freshen(path: Path | str) -> None:
    """Set an object's mtime to now: it was just stored again (``gitml gc --keep-recent`` counts from
    here). Best effort: a cache shared with another user may refuse, and the gc lock still holds."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _lock(path: Path, kind: int) -> int:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, kind)
    except BaseException:
        os.close(fd)
        raise
    return fd


class ContentStore:
    """A DVC-layout cache of content-addressed files."""

    def __init__(self, cache_dir: Path, state_dir: Path, fallback: Path | None = None) -> None:
        from dvc_data.hashfile.db.local import LocalHashFileDB
        from dvc_data.hashfile.state import State
        from dvc_objects.fs.local import LocalFileSystem

        self.root = Path(cache_dir)
        self.path = self.root / "files" / HASH
        #: Another cache read when an object is not in this one (DVC's, in a DVC repository); never written.
        self.fallback = Path(fallback) / "files" / HASH if fallback is not None else None
        self.fs = LocalFileSystem()
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state = State(root_dir="/", tmp_dir=str(state_dir))
        self.odb = LocalHashFileDB(
            self.fs, str(self.path), state=self.state, hash_name=HASH, type=["reflink", "copy"]
        )

    @classmethod
    def for_repo(cls, repo: GitRepo) -> ContentStore:
        return cls(cache_dir_for(repo), repo.git_dir / "gitml" / "state", dvc_cache_dir(repo))

    # -- the gc lock ----------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return self.root / "gc.lock"

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held (shared) from storing objects until the events that name them are in a live log.

        ``gitml gc`` deletes only under ``collecting``, so it never sees an
        object that is stored but not yet named anywhere it looks.
        """
        import fcntl

        fd = _lock(self.lock_path, fcntl.LOCK_SH)
        try:
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Held (exclusive) by ``gitml gc`` while it decides and deletes; waits for writers."""
        import fcntl

        fd = _lock(self.lock_path, fcntl.LOCK_EX)
        try:
            yield
        finally:
            os.close(fd)

    # -- adding -------------------------------------------------------------

    def add_file(self, path: str | os.PathLike[str], on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Store one file; return (md5, size). ``on_bytes(n)`` is told of each block read.

        A file unchanged since it was last hashed (dvc-data's state: inode,
        mtime, size) costs a lookup. Otherwise the file is read once: it is
        reflinked into the cache where the filesystem can, else copied while
        it is hashed, so the first log costs about max(cp, md5), not both.
        """
        from dvc_data.hashfile.hash_info import HashInfo

        src = os.fspath(path)
        meta, info = self.state.get(src, self.fs)
        if info is not None and info.value and info.name == HASH:
            md5 = info.value
            if self.exists(md5):
                _freshen(self.object_path(md5))
                if on_bytes is not None:
                    on_bytes(int(meta.size or 0))
                return md5, int(meta.size or 0)
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            md5, size = _copy_hashing(src, tmp, on_bytes)
            dest = self.object_path(md5)
            if _present(str(dest), md5):
                tmp.unlink()
                _freshen(dest)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)  # cache objects are read-only, as DVC makes them
                os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()
        self.state.save(src, self.fs, HashInfo(HASH, md5))
        return md5, size

    def add_dir(self, files: list[tuple[str, str, int]]) -> str:
        """Store a ``.dir`` object for already stored files (relpath, md5, size)."""
        from dvc_data.hashfile.hash_info import HashInfo
        from dvc_data.hashfile.meta import Meta
        from dvc_data.hashfile.tree import Tree

        tree = Tree()
        for relpath, md5, size in files:
            tree.add(tuple(relpath.split("/")), Meta(size=size), HashInfo(HASH, md5))
        tree.digest()
        assert tree.hash_info is not None and tree.hash_info.value is not None
        oid = tree.hash_info.value
        if self.exists(oid):
            _freshen(self.object_path(oid))
        else:
            self.odb.add_bytes(oid, tree.as_bytes())
        return str(oid)

    # -- reading ------------------------------------------------------------

    def object_path(self, md5: str) -> Path:
        """Where object ``md5`` lives. Refuses anything but an md5 (``.dir`` allowed): a hash
        read from someone else's manifest must never become a path like ``../../etc/passwd``."""
        if type(md5) is not str or not _OID_RE.fullmatch(md5):
            raise CorruptObject(f"Invalid object id {str(md5)[:80]!r}: not an md5 hash")
        return Path(self.odb.oid_to_path(md5))

    def exists(self, md5: str) -> bool:
        """True if the object is in this cache. One found only in the fallback cache is copied
        in first (adopted), so what gitml reads from now on is in gitml's own cache."""
        path = self.object_path(md5)
        return _present(str(path), md5) or self._adopt(md5, path)

    def _adopt(self, md5: str, dest: Path) -> bool:
        """Copy object ``md5`` from the fallback cache (checking its hash); False if it is not there."""
        if self.fallback is None:
            return False
        src = self.fallback / md5[:2] / md5[2:]
        try:
            if os.stat(src).st_size == 0 and md5.split(".")[0] != EMPTY_MD5:
                return False  # a torn write of DVC's: not an object (and not ours to remove)
        except OSError:
            return False
        from gitml.errors import InvalidValue

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        try:
            digest, _ = _copy_hashing(str(src), tmp)
            if digest != md5.split(".")[0]:
                return False  # corrupt there: as good as missing
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
            return True
        except (OSError, InvalidValue):
            return False
        finally:
            if tmp.exists():
                tmp.unlink()

    def scan(self) -> tuple[list[StoredObject], list[StoredObject]]:
        """(objects, leftover temporary files) in this cache (the fallback is not this cache's)."""
        return _scan_dir(self.path)

    def read_dir(self, md5: str) -> list[str]:
        """The md5s a ``.dir`` object lists (verified content).

        Raises:
            MissingObject, CorruptObject (also for content that is not a DVC directory listing).
        """
        return _dir_members(md5, self.read_bytes(md5))

    def read_bytes(self, md5: str) -> bytes:
        """The verified content of an object.

        Raises:
            MissingObject, CorruptObject.
        """
        path = self._existing(md5)
        data = path.read_bytes()
        if hashlib.md5(data).hexdigest() != md5.split(".")[0]:
            raise CorruptObject(f"Cache object {path} is corrupted: its content does not hash to {md5}")
        return data

    def iter_verified(self, md5: str, block: int = 1 << 20) -> Iterator[bytes]:
        """The content of an object in blocks, for streaming it, hash checked before the end.

        Each block is handed out only once the next one has been read, and
        the last one only after the hash matched: a corrupted object raises
        before its last byte is sent, so a client never receives all of it
        (a server sending ``Content-Length`` then cuts the transfer short).

        Raises:
            MissingObject (before the first block), CorruptObject (before the last).
        """
        path = self._existing(md5)

        def blocks() -> Iterator[bytes]:
            digest = hashlib.md5()
            with open(path, "rb") as f:
                held = f.read(block)
                digest.update(held)
                while data := f.read(block):
                    digest.update(data)
                    yield held
                    held = data
            if digest.hexdigest() != md5.split(".")[0]:
                raise CorruptObject(f"Cache object {path} is corrupted: its content does not hash to {md5}")
            if held:
                yield held

        return blocks()

    def read_head(self, md5: str, size: int) -> tuple[bytes, int]:
        """The first ``size`` bytes of an object and its whole size; the whole object is verified.

        Raises:
            MissingObject, CorruptObject.
        """
        path = self._existing(md5)
        with open(path, "rb") as f:
            head = f.read(size)
            st = os.fstat(f.fileno())
            if st.st_size <= size:
                digest = hashlib.md5(head).hexdigest()
            elif _verified.get(str(path)) == (st.st_ino, st.st_size, st.st_mtime_ns):
                digest = md5.split(".")[0]  # hashed whole since it last changed
            else:
                f.seek(0)
                digest = _md5_of(f)[0]
        if digest != md5.split(".")[0]:
            raise CorruptObject(f"Cache object {path} is corrupted: its content does not hash to {md5}")
        _verified[str(path)] = (st.st_ino, st.st_size, st.st_mtime_ns)
        return head, st.st_size

    def checkout(self, md5: str, dest: str | os.PathLike[str], on_bytes: Callable[[int], None] | None = None) -> None:
        """Copy an object to ``dest``, checking its hash on the way (``on_bytes(n)`` per block).

        The copy goes to a temporary file renamed into place only if the hash
        matches, so a corrupted object never reaches ``dest``.

        Raises:
            MissingObject, CorruptObject.
        """
        src = self._existing(md5)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.gitml-tmp-{os.getpid()}")
        digest = hashlib.md5()
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    digest.update(chunk)
                    fout.write(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            if digest.hexdigest() != md5:
                raise CorruptObject(f"Cache object {src} is corrupted: its content does not hash to {md5}")
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()

    def _existing(self, md5: str) -> Path:
        path = self.object_path(md5)
        if not self.exists(md5):
            raise MissingObject(
                f"Object {md5} is not in the local cache {self.root} (run 'gitml pull' to fetch artifacts)"
            )
        return path

    def close(self) -> None:
        self.state.close()

    def verify(self, oids: list[str]) -> set[str]:
        """Check the content of these objects; delete and return the corrupt ones.

        Used right after a download: a corrupt fresh copy is worth nothing,
        and deleting it lets the next pull fetch it again.
        """
        bad = set()
        for oid in oids:
            if oid.endswith(".dir"):
                continue
            path = self.object_path(oid)
            digest = hashlib.md5()
            try:
                with open(path, "rb") as f:
                    while block := f.read(_CHUNK):
                        digest.update(block)
            except FileNotFoundError:
                bad.add(oid)
                continue
            if digest.hexdigest() != oid:
                path.chmod(0o644)
                path.unlink()
                bad.add(oid)
        return bad

    def missing(self, oids: list[str]) -> list[str]:
        """The objects of ``oids`` not in this cache."""
        return [o for o in oids if not self.exists(o)]


# -- remotes ------------------------------------------------------------------------------------

REMOTE_SECTION = "gitml-remote"


class RemoteNotConfigured(GitmlError):
    """No DVC remote is named or set as default."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


def remote_config(repo: GitRepo) -> dict[str, Any]:
    """DVC-style config dict: ``{"core": {"remote": default}, "remote": {name: {...}}}``.

    gitml's own remotes are ``[gitml-remote "<name>"]`` sections of the
    repository's git config (``gitml remote add``), default
    ``gitml.defaultremote``. A repository that uses DVC also has DVC's
    remotes (``.dvc/config`` and DVC's other levels, read with DVC's own
    loader); a gitml remote of the same name wins, and the default is
    ``gitml.defaultremote`` if set, else DVC's. ``dvc_remotes(repo)`` says
    which are DVC's.
    """
    remotes: dict[str, dict[str, str]] = {}
    for key, value in repo.config_items(f"{REMOTE_SECTION}."):
        _, _, rest = key.partition(".")
        name, _, option = rest.rpartition(".")
        if name:
            remotes.setdefault(name, {})[option] = value
    default = repo.config_value("gitml.defaultremote")
    core: dict[str, Any] = {}
    dvc = _dvc_config(repo)
    if dvc is not None:
        core = dict(dvc.get("core", {}))
        remotes = {**dvc["remote"], **remotes}
    if default:
        core["remote"] = default
    return {"core": core, "remote": remotes}


def _dvc_config(repo: GitRepo) -> dict[str, Any] | None:
    if not uses_dvc(repo):
        return None
    from dvc.config import Config

    assert repo.workdir is not None
    conf = Config(dvc_dir=str(repo.workdir / ".dvc"))
    return {"core": dict(conf.get("core", {})), "remote": {k: dict(v) for k, v in conf.get("remote", {}).items()}}


def dvc_remotes(repo: GitRepo) -> dict[str, str]:
    """Name -> URL of the remotes DVC itself knows in this repository (none if it does not use DVC)."""
    dvc = _dvc_config(repo)
    return {name: str(conf.get("url", "")) for name, conf in (dvc or {}).get("remote", {}).items()}


def uses_dvc(repo: GitRepo) -> bool:
    return repo.workdir is not None and (repo.workdir / ".dvc").is_dir()


def add_remote(repo: GitRepo, name: str, url: str, options: dict[str, str], default: bool) -> None:
    """Record one of gitml's own artifact remotes (a DVC remote DVC itself does not know).

    In a repository that uses DVC this is how gitml gets a remote that
    ``dvc gc --cloud`` never collects: DVC does not see it.

    Raises:
        InvalidValue: a bad name, or the name of one of DVC's remotes.
    """
    from gitml.errors import InvalidValue

    if not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidValue(f"Invalid remote name {name!r}: use letters, digits, '-' and '_'")
    if name in dvc_remotes(repo):
        raise InvalidValue(f"{name!r} is one of DVC's remotes in {repo.workdir}: choose another name")
    if "://" not in url and not os.path.isabs(url):
        url = os.path.abspath(url)  # a local directory: don't depend on where commands run
    repo.set_config(f"{REMOTE_SECTION}.{name}.url", url)
    for key, value in options.items():
        repo.set_config(f"{REMOTE_SECTION}.{name}.{key}", value)
    if default or repo.config_value("gitml.defaultremote") is None:
        repo.set_config("gitml.defaultremote", name)


def _same_place(a: str, b: str) -> bool:
    """True if two remote URLs name the same place (trailing slashes and local spellings aside)."""
    def norm(url: str) -> str:
        url = url.rstrip("/")
        return os.path.realpath(url) if "://" not in url else url
    return bool(a) and norm(a) == norm(b)


class RemotePluginMissing(GitmlError):
    """The artifact remote's kind (s3://, gs://...) needs a DVC plugin that is not installed."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


#: DVC's plugin packages by the gitml extra that installs them (pyproject.toml).
PLUGIN_EXTRAS = {"dvc-s3": "s3", "dvc-gs": "gs", "dvc-azure": "azure", "dvc-ssh": "ssh"}


def plugin_missing(name: str, url: str, error: ImportError) -> RemotePluginMissing:
    """The error for remote ``name`` at ``url`` whose filesystem failed to import, naming what to install."""
    # DVC says "gs is supported, but requires 'dvc-gs' to be installed"
    match = re.search(r"requires '([\w.-]+)'", str(error))
    package = match.group(1) if match else error.name
    if package in PLUGIN_EXTRAS:
        fix = f"pip install 'gitml[{PLUGIN_EXTRAS[package]}]'"
    elif package:
        fix = f"pip install {package}"
    else:
        fix = f"install DVC's plugin for {url.partition('://')[0] or 'it'}"
    return RemotePluginMissing(f"Artifact remote {name!r} ({url}) needs {package or 'a DVC plugin'}, "
                               f"which is not installed: {fix}")


class RemoteStore:
    """A DVC remote (local dir, S3, GCS, Azure, SSH... whatever DVC supports)."""

    def __init__(self, repo: GitRepo, name: str | None = None) -> None:
        from dvc.fs import get_cloud_fs
        from dvc_data.hashfile.db import HashFileDB

        config = remote_config(repo)
        name = name or config.get("core", {}).get("remote")
        if not name:
            raise RemoteNotConfigured(
                "No artifact remote: name one with -r, or set one up with "
                "'gitml remote add -d NAME URL' (in a DVC repository, 'dvc remote add -d' works too)"
            )
        if name not in config.get("remote", {}):
            raise RemoteNotConfigured(f"No artifact remote named {name!r} (known: {', '.join(config['remote']) or 'none'})")
        self.name = name
        self.url = config["remote"][name].get("url", "")
        try:
            cls, conf, fs_path = get_cloud_fs(config, name=name)
            fs = cls(**conf)
        except ImportError as e:  # DVC's filesystems for s3://, gs://... are separate packages
            raise plugin_missing(name, self.url, e) from e
        self.odb = HashFileDB(fs, fs.join(fs_path, "files", HASH), hash_name=HASH)
        dvc = dvc_remotes(repo)
        #: DVC's remote names that are this remote (by name, or the same URL): DVC's data may be here too.
        self.dvc_names = sorted(n for n, url in dvc.items() if n == name and name not in own_remotes(repo)
                                or _same_place(url, self.url))

    def exists(self, oids: list[str]) -> set[str]:
        """The objects the remote has (on a local-directory remote, a torn write is not one: ``_present``)."""
        found = set(self.odb.oids_exist(oids)) if oids else set()
        if self._local:
            found = {oid for oid in found if _present(self.odb.oid_to_path(oid), oid)}
        return found

    @property
    def _local(self) -> bool:
        from dvc_objects.fs.local import LocalFileSystem

        return isinstance(self.odb.fs, LocalFileSystem)

    def scan(self) -> tuple[list[StoredObject], list[StoredObject]]:
        """(objects, leftover temporary files) on the remote, with sizes and modification times."""
        if self._local:
            return _scan_dir(Path(self.odb.path))
        objects: list[StoredObject] = []
        temps: list[StoredObject] = []
        found = self.odb.fs.fs.find(self.odb.path, detail=True)
        for path, info in found.items():
            parts = path.rstrip("/").split("/")
            if len(parts) < 2 or info.get("type", "file") != "file":
                continue
            size = int(info.get("size") or 0)
            if _PREFIX_RE.fullmatch(parts[-2]) and _REST_RE.fullmatch(parts[-1]):
                objects.append(StoredObject(parts[-2] + parts[-1], size, _mtime(info), path))
            elif _TEMP_RE.fullmatch(parts[-1]):
                temps.append(StoredObject("", size, _mtime(info), path))
        return objects, temps

    def read_dir(self, md5: str) -> list[str]:
        """The md5s a ``.dir`` object on the remote lists.

        Raises:
            MissingObject, CorruptObject.
        """
        path = self.odb.oid_to_path(md5)
        try:
            data = self.odb.fs.cat_file(path)
        except FileNotFoundError:
            raise MissingObject(f"Object {md5} is not on the remote {self.name!r}") from None
        if hashlib.md5(data).hexdigest() != md5.split(".")[0]:
            raise CorruptObject(f"Object {md5} on the remote {self.name!r} is corrupted: its content does not hash to {md5}")
        return _dir_members(md5, data)

    def remove(self, paths: list[str]) -> None:
        """Delete these object files from the remote."""
        if paths:
            self.odb.fs.remove(paths)


def own_remotes(repo: GitRepo) -> set[str]:
    """The names of gitml's own remotes (``[gitml-remote "<name>"]`` sections of git config)."""
    return {key.split(".")[1] for key, _ in repo.config_items(f"{REMOTE_SECTION}.") if key.count(".") >= 2}


def _mtime(info: dict[str, Any]) -> float | None:
    """A listing entry's modification time in seconds, from whichever key the filesystem uses."""
    import datetime as dt

    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created", "time_modified"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, dt.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
        if isinstance(value, str):
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()
    return None


def _dir_members(md5: str, data: bytes) -> list[str]:
    """The md5s listed by the content of ``.dir`` object ``md5``.

    Raises:
        CorruptObject: not a DVC directory listing (a JSON list of {"md5", "relpath"} objects).
    """
    import json

    try:
        entries = json.loads(data)
        members = [e["md5"] for e in entries]
    except (ValueError, TypeError, KeyError, RecursionError):
        members = None
    if members is None or not all(type(m) is str and _OID_RE.fullmatch(m) for m in members):
        raise CorruptObject(f"Object {md5} is not a DVC directory listing")
    return members


EMPTY_MD5 = hashlib.md5(b"").hexdigest()


def _present(path: str, md5: str) -> bool:
    """True if the object file at ``path`` exists and is not a torn write: an empty file for
    content that is not empty, which DVC's reflink attempt leaves when it is killed (it creates
    the final path, ``O_CREAT|O_TRUNC``, before it falls back to a copy under a temporary
    name). A torn file is removed, so the next transfer writes the object."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return False
    if size == 0 and md5.split(".")[0] != EMPTY_MD5:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return False
    return True


def transfer_objects(src: Any, dest: Any, oids: list[str], progress: Progress | None = None) -> tuple[int, set[str]]:
    """Copy objects between two object stores (``.odb`` of a ContentStore or RemoteStore).

    ``progress`` hears ("artifacts", objects copied, objects asked for).

    Returns (objects copied, oids that failed, e.g. missing at the source).
    The filesystem layer writes each object under a temporary name and moves
    it into place, so an interrupted transfer leaves no half objects and a
    rerun copies only what is still missing.
    """
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.transfer import transfer

    if not oids:
        return 0, set()
    kwargs: dict[str, Any] = {}
    if progress is not None:
        kwargs["callback"] = _callback(progress, len(oids))
    result = transfer(src, dest, {HashInfo(HASH, o) for o in oids}, jobs=4, **kwargs)
    # transfer() skips objects the source lacks without listing them as
    # failed: ask the destination what it has now.
    failed = set(oids) - set(dest.oids_exist(oids))
    return len(result.transferred), failed


def _callback(progress: Progress, total: int) -> Any:
    from fsspec.callbacks import Callback

    class ProgressCallback(Callback):  # type: ignore[misc]  # fsspec is untyped
        # dvc-data resizes its callbacks as it discovers work; the total
        # the user cares about is the objects asked for.
        def call(self, *args: Any, **kwargs: Any) -> None:
            progress("artifacts", min(self.value, total), total)

    return ProgressCallback(size=total)
