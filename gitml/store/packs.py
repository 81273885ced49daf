"""Objects written as one small pack instead of a dozen loose files, and packs kept few.

A loose object costs a file create and a rename, and 4 KB of disk however
small it is; a run commit is a dozen of them (JSON files, metric chunks,
their trees, the commit, the ledger's trees and commit). So gitml builds a
write's objects in memory and stores them as one pack: the ``.pack`` and
its version-2 ``.idx`` written here directly (the formats are git's
``Documentation/gitformat-pack.txt``), no subprocess. ``git index-pack``
takes over only for a pack too large for 32-bit offsets.

Many small packs slow every object lookup (git and libgit2 search the
packs one by one), so once a repository holds ``REPACK_AT`` packs, the
writer starts ``git repack -d --geometric=2`` in the background: it rolls
the small packs (and any loose objects) into one, with deltas, touching
the large packs only when the small ones outgrow them, so the cost stays
proportional to what is new. git's own ``gc --auto`` does a full repack
only past ``gc.autoPackLimit`` (50) packs, which this keeps from happening.
"""

from __future__ import annotations

import binascii
import fcntl
import hashlib
import logging
import os
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("gitml")

#: object type numbers as packs store them
COMMIT, TREE, BLOB, TAG = 1, 2, 3, 4
TYPE_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob", TAG: b"tag"}

#: packs in ``objects/pack`` from which a write starts a background geometric repack
REPACK_AT = 40
_MAX_OFFSET = 0x7FFFFFFF  # an .idx v2 without its large-offset table holds offsets below 2^31
_REPACK_LOCK = "gitml/repack.lock"  # under the common git dir, beside gitml's other state


def object_id(kind: int, data: bytes) -> bytes:
    """The binary SHA-1 id git gives an object of this type and content."""
    return hashlib.sha1(TYPE_NAMES[kind] + b" %d\0" % len(data) + data).digest()


def _entry_header(kind: int, size: int) -> bytes:
    # type and size: 3 type bits and 4 size bits, then 7 size bits a byte, high bit = more
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def pack_bytes(objects: Iterable[tuple[bytes, int, bytes]]) -> tuple[bytes, bytes]:
    """The ``.pack`` and ``.idx`` (version 2) of ``objects``: (binary id, type, content) each."""
    records = []
    entries = []  # (id, crc32, offset)
    offset = 12
    for oid, kind, data in objects:
        record = _entry_header(kind, len(data)) + zlib.compress(data, 1)
        records.append(record)
        entries.append((oid, binascii.crc32(record), offset))
        offset += len(record)
    body = b"".join([b"PACK", struct.pack(">II", 2, len(records)), *records])
    checksum = hashlib.sha1(body).digest()
    entries.sort()
    fanout = [0] * 256
    for oid, _, _ in entries:
        fanout[oid[0]] += 1
    total = 0
    for i, count in enumerate(fanout):
        total += count
        fanout[i] = total
    n = len(entries)
    idx = b"".join([
        b"\377tOc", struct.pack(">I", 2), struct.pack(">256I", *fanout),
        b"".join(e[0] for e in entries),
        struct.pack(f">{n}I", *(e[1] for e in entries)),
        struct.pack(f">{n}I", *(e[2] for e in entries)),
        checksum,
    ])
    return body + checksum, idx + hashlib.sha1(idx).digest()


def write_pack(objects_dir: Path, objects: dict[bytes, tuple[int, bytes]]) -> None:
    """Store ``objects`` (binary id -> (type, content)) in ``objects_dir`` as one pack.

    The pack is renamed into place before its index, as git does: a reader
    finds a pack by its ``.idx``, so it never sees one without the other.
    """
    pack, idx = pack_bytes((oid, kind, data) for oid, (kind, data) in objects.items())
    if len(pack) > _MAX_OFFSET:
        from gitml.store.gitcli import git

        git(objects_dir.parent, "index-pack", "--stdin", input=pack)
        return
    directory = objects_dir / "pack"
    directory.mkdir(exist_ok=True)
    name = f"pack-{pack[-20:].hex()}"
    if (directory / f"{name}.idx").exists():
        return  # the same objects, stored already
    for ext, data in ((".pack", pack), (".idx", idx)):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="tmp_pack_" if ext == ".pack" else "tmp_idx_")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        os.replace(tmp, directory / f"{name}{ext}")


def pack_count(objects_dir: Path) -> int:
    """How many packs ``objects_dir`` holds."""
    try:
        with os.scandir(objects_dir / "pack") as it:
            return sum(1 for e in it if e.name.endswith(".pack"))
    except OSError:
        return 0


def repack_if_many(common_dir: Path) -> bool:
    """Start a background ``git repack -d --geometric=2`` if the packs are many; True if started.

    One at a time per repository: the child holds a lock file (flock) for
    as long as it runs, so other writers skip.
    """
    objects_dir = common_dir / "objects"
    if pack_count(objects_dir) < REPACK_AT:
        return False
    lock_path = common_dir / _REPACK_LOCK
    try:
        lock_path.parent.mkdir(exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # one runs already
        try:
            # the child inherits the locked fd and holds the lock until it exits
            subprocess.Popen(
                ["git", "-C", str(common_dir), "repack", "-d", "-q", "-l", "--geometric=2"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(fd,), start_new_session=True,
            )
        except OSError as e:
            log.debug("gitml: could not start git repack: %s", e)
            return False
        return True
    finally:
        os.close(fd)
