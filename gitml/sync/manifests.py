"""The artifacts each run commit names, remembered so a pull need not read every run again.

``gitml pull`` fetches the artifacts of every run it knows, not only the
runs that just arrived: a run merged in by an earlier push, or pulled before
an artifact remote was set up, gets its files on the next pull. Finding them
meant reading every run commit's files on every pull (about 0.3 ms a run:
35 s at 100k runs). A run commit never changes, and neither does the list of
artifacts it names, so that list is read once per commit and kept here,
in ``.git/gitml/manifests.sqlite``. Whether each object is in the local cache
is still asked of the cache on every pull (a ``stat`` per object), so files
deleted from the cache by hand are fetched again.

The file is derived data: it only ever holds what ``read_state`` accepted
(malformed runs are not remembered and are reported again), and when it is
missing, damaged or cannot be written, the runs are read as before.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable

from gitml.store import names
from gitml.store.repo import GitRepo

log = logging.getLogger("gitml")

FILE = f"{names.STATE_DIR}/manifests.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (commit_oid TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (commit_oid TEXT NOT NULL, run_id TEXT NOT NULL, path TEXT NOT NULL,
                                    md5 TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_commit ON entries (commit_oid);
"""

#: (run id, artifact path, md5) of one run commit's artifacts.
Entries = list[tuple[str, str, str]]


def artifacts_of(repo: GitRepo, commits: Iterable[str], read: Callable[[str], Entries | None]) -> dict[str, Entries]:
    """commit -> its artifacts, for each of ``commits``: remembered ones from the file, the others
    from ``read(commit)`` (None: the run is malformed; left out, and not remembered)."""
    wanted = list(dict.fromkeys(commits))
    out: dict[str, Entries] = {}
    db = _open(repo)
    try:
        if db is not None:
            out = _known(db, wanted)
        new = {c: entries for c in wanted if c not in out and (entries := read(c)) is not None}
        out.update(new)
        if db is not None and new:
            _remember(db, new)
    finally:
        if db is not None:
            db.close()
    return out


def _open(repo: GitRepo) -> sqlite3.Connection | None:
    path = repo.common_dir / FILE
    for attempt in range(2):
        db = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
            db.executescript(_SCHEMA)
            return db
        except (sqlite3.DatabaseError, OSError) as e:
            if db is not None:
                db.close()
            if attempt == 0 and isinstance(e, sqlite3.DatabaseError):
                # Damaged (a disk error, a bad copy): it is derived, so start it again.
                for suffix in ("", "-journal", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        path.with_name(path.name + suffix).unlink()
                continue
            log.debug("gitml: manifests cache %s unusable (%s); reading the runs", path, e)
    return None


def _known(db: sqlite3.Connection, commits: list[str]) -> dict[str, Entries]:
    try:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS asked (commit_oid TEXT PRIMARY KEY) WITHOUT ROWID")
        db.execute("DELETE FROM asked")
        db.executemany("INSERT OR IGNORE INTO asked VALUES (?)", ((c,) for c in commits))
        found: dict[str, Entries] = {c: [] for (c,) in db.execute(
            "SELECT commit_oid FROM seen WHERE commit_oid IN (SELECT commit_oid FROM asked)")}
        for commit, run_id, path, md5 in db.execute(
                "SELECT commit_oid, run_id, path, md5 FROM entries WHERE commit_oid IN "
                "(SELECT commit_oid FROM asked) ORDER BY rowid"):
            if commit in found:
                found[commit].append((run_id, path, md5))
        return found
    except sqlite3.DatabaseError as e:
        log.debug("gitml: manifests cache unreadable (%s); reading the runs", e)
        return {}


def _remember(db: sqlite3.Connection, new: dict[str, Entries]) -> None:
    """One transaction: a commit is ``seen`` only together with all its entries."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM entries WHERE commit_oid=?", ((c,) for c in new))
            db.executemany("INSERT INTO entries VALUES (?,?,?,?)",
                           ((c, *e) for c, entries in new.items() for e in entries))
            db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", ((c,) for c in new))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as e:  # busy for 30 s, read-only, full: the next pull reads them again
        log.debug("gitml: could not remember artifact manifests (%s)", e)
