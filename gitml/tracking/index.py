"""The query index: SQLite at ``.git/gitml/index.sqlite``, derived from run refs.

Refs are the truth; the index is a cache that any process may rebuild. Before
each query ``refresh()`` checks a cheap stamp of the run refs (the mtime of
``refs/gitml/runs`` and of ``packed-refs``). When it moved, every run ref is
listed and only the runs whose commit changed are read again. A stamp taken
within a second of the last ref change is not trusted (file times are
coarse), so a write in the same clock tick cannot hide from the next query.

Runs whose files do not have gitml's shape (``CorruptRun``) are listed in
``bad_runs`` with the commit that failed, so they are skipped (and warned
about once) rather than read again by every refresh. A damaged database file
is deleted and rebuilt from the refs, and a ``.git/gitml`` this process may
not write is served from an index in memory; both with a one-line warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from gitml.errors import CorruptRun
from gitml.store import ledger as store_ledger
from gitml.store import names
from gitml.store.repo import GitRepo
from gitml.tracking import schema
from gitml.tracking.commit import known_state
from gitml.tracking.datasets import CONTEXT_TAG
from gitml.tracking.entities import Dataset, DatasetInput, InputTag, Metric, Run, RunData, RunInfo, RunInputs
from gitml.tracking.runfiles import RunState, artifact_uri, read_state

if TYPE_CHECKING:
    from gitml.store.content import Progress

log = logging.getLogger("gitml")
T = TypeVar("T")

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, run_name TEXT, status TEXT,
  start_time INTEGER, end_time INTEGER, lifecycle_stage TEXT, user_id TEXT, artifact_uri TEXT,
  source_commit TEXT, commit_oid TEXT, parent_run_id TEXT, source TEXT);
CREATE TABLE IF NOT EXISTS params (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS tags (run_id TEXT, key TEXT, value TEXT, PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS latest_metrics (run_id TEXT, key TEXT, value REAL, step INTEGER,
  timestamp INTEGER, is_nan INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS datasets (run_id TEXT, name TEXT, digest TEXT, source_type TEXT, source TEXT,
  schema TEXT, profile TEXT, context TEXT, tags TEXT, PRIMARY KEY (run_id, name, digest));
CREATE TABLE IF NOT EXISTS bad_runs (run_id TEXT PRIMARY KEY, commit_oid TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS params_kv ON params (key, value);
CREATE INDEX IF NOT EXISTS tags_kv ON tags (key, value);
CREATE INDEX IF NOT EXISTS metrics_kv ON latest_metrics (key, value);
CREATE INDEX IF NOT EXISTS runs_exp ON runs (experiment_id, lifecycle_stage, start_time);
CREATE INDEX IF NOT EXISTS runs_source ON runs (source_commit);
CREATE INDEX IF NOT EXISTS datasets_name ON datasets (name, digest);
"""

RACY_SECONDS = 1.0


class RunIndex:
    """SQLite index of the runs of one repository."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.path = repo.git_dir / names.INDEX_FILE
        self.in_memory = False
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._keeper: sqlite3.Connection | None = None  # holds the in-memory database open
        self._keys_cache: dict[Any, Any] = {}  # see keys()
        self._open()

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the index.

        One per thread, as one per process: a connection's transaction is
        shared by everything that uses it, so two threads refreshing through
        one connection collide ("cannot start a transaction within a
        transaction") or commit each other's half-done work. Threads that
        share a process (the viewer's request threads, the tracking flusher)
        then meet in SQLite's own locking, as processes do.
        """
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            with self._lock:
                for thread, old in self._connections:
                    if not thread.is_alive():
                        old.close()  # check_same_thread=False: closing another thread's connection is allowed
                self._connections = [(t, c) for t, c in self._connections if t.is_alive()]
                self._connections.append((threading.current_thread(), db))
            self._local.db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        if self.in_memory:  # one database for every thread of this process
            return sqlite3.connect(f"file:gitml-index-{id(self)}?mode=memory&cache=shared", uri=True,
                                   check_same_thread=False, isolation_level=None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> None:
        """Open the index file, rebuilt if damaged; in memory if it cannot be written."""
        for attempt in range(2):
            try:
                if self._meta("schema_version") != str(SCHEMA_VERSION):
                    self._reset()
                return
            except (sqlite3.DatabaseError, OSError) as e:
                self._close_all()
                if attempt == 0 and _is_corrupt(e) and self._discard_damaged(e):
                    continue
                self._open_in_memory(e)
                return

    def _discard_damaged(self, error: BaseException) -> bool:
        """Delete a damaged index (it is derived); False if this process may not."""
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
            except OSError:
                return False
        log.warning("gitml: warning: the run index %s is damaged (%s); rebuilding it from the run refs",
                    self.path, error)
        return True

    def _open_in_memory(self, error: BaseException) -> None:
        log.warning("gitml: warning: cannot write the run index %s (%s); reading the runs into memory instead",
                    self.path, error)
        self._close_all()
        self.in_memory = True
        self._keeper = self._connect()
        self._reset()

    def _guard(self, work: Callable[[], T]) -> T:
        """Run ``work``; if the database turns out damaged or read-only, rebuild (or go in memory) and retry once."""
        try:
            return work()
        except (sqlite3.DatabaseError, OSError) as e:
            if self.in_memory or not (_is_corrupt(e) or _is_read_only(e)):
                raise
            self._close_all()
            if _is_corrupt(e) and self._discard_damaged(e):
                self._open()
            else:
                self._open_in_memory(e)
            self._refresh(force=True)
            return work()

    def _close_all(self) -> None:
        with self._lock:
            for _, db in self._connections:
                db.close()
            self._connections = []
        self._local = threading.local()

    def _meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    def _reset(self) -> None:
        # executescript commits on its own, so this runs outside _write(); a
        # concurrent reset in another process at worst repeats the same work.
        drops = "".join(f"DROP TABLE IF EXISTS {t};"
                        for t in ("meta", "runs", "params", "tags", "latest_metrics", "datasets", "bad_runs"))
        self.db.executescript(drops + SCHEMA)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> None:
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, *_: object) -> None:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _write(self) -> RunIndex._Tx:
        return RunIndex._Tx(self.db)

    # -- freshness -----------------------------------------------------------

    def _stamp(self) -> tuple[str, float]:
        parts = []
        newest = 0.0
        git = self.repo.git_dir
        for p in (git / names.RUNS_PREFIX.rstrip("/"), git / names.LEDGER_PREFIX.rstrip("/"), git / "packed-refs"):
            try:
                st = os.stat(p)
                parts.append(f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}")
                newest = max(newest, st.st_mtime)
            except FileNotFoundError:
                parts.append("-")
        return "|".join(parts), newest

    def refresh(self, force: bool = False, progress: Progress | None = None) -> int:
        """Bring the index up to date with the runs (ledger and run refs); return runs re-read.
        ``progress`` hears ("index", runs read, runs to read)."""
        return self._guard(lambda: self._refresh(force, progress))

    def _current(self, force: bool) -> tuple[dict[str, str | None], dict[str, str], dict[str, str], bool]:
        """(run id -> its commit now, None if gone) for the runs that may have changed since the
        last refresh; the ledger heads and own run refs seen; True if that is every run."""
        heads = store_ledger.heads(self.repo)
        own = store_ledger.own_refs(self.repo)
        before = None if force else self._meta("seen")
        try:
            seen = json.loads(before) if before else None
        except ValueError:
            seen = None
        if not isinstance(seen, dict) or any(
            not self.repo.has_object(oid) for oid in seen.get("heads", {}).values() if isinstance(oid, str)
        ) or set(seen.get("heads", {})) - set(heads):
            found: dict[str, str | None] = dict(store_ledger.all_run_commits(self.repo))
            return found, heads, own, True
        # Only what moved: the entries of the ledger shards that changed, and the run refs
        # that exist now or did at the last refresh (live runs: a handful).
        changed: dict[str, str | None] = {}
        old_heads = seen.get("heads", {})
        for ref, head in heads.items():
            if old_heads.get(ref) != head:
                changed.update(store_ledger.changed_entries(self.repo, old_heads.get(ref), head))
        for run_id in set(seen.get("own", {})) | set(own):
            if run_id not in own and run_id not in changed:
                shard_head = heads.get(names.ledger_ref(run_id))
                changed[run_id] = store_ledger.lookup(self.repo, shard_head, run_id) if shard_head else None
        for run_id, oid in own.items():
            changed[run_id] = oid
        return changed, heads, own, False

    def _refresh(self, force: bool, progress: Progress | None = None) -> int:
        stamp, newest = self._stamp()
        if not force and self._meta("stamp") == stamp:
            return 0
        current, heads, own, complete = self._current(force)
        known = dict(self.db.execute("SELECT run_id, commit_oid FROM runs"))
        known.update(self.db.execute("SELECT run_id, commit_oid FROM bad_runs"))
        changed = [(r, oid) for r, oid in current.items() if oid is not None and known.get(r) != oid]
        if complete:
            gone = [r for r in known if r not in current]
        else:
            gone = [r for r, oid in current.items() if oid is None and r in known]
        states, bad = [], []
        step = max(len(changed) // 100, 1)
        for i, (r, oid) in enumerate(changed):
            if progress is not None and i % step == 0:
                progress("index", i, len(changed))
            try:
                states.append((r, oid, known_state(self.repo, r, oid) or read_state(self.repo, oid, r)[0]))
            except CorruptRun as e:
                schema.warn_skipped(e, oid)
                bad.append((r, oid, str(e)))
        trusted = time.time() - newest > RACY_SECONDS
        with self._write():
            self._delete(gone + [r for r, _ in changed])
            self._insert_many(states)
            self.db.executemany("INSERT INTO bad_runs VALUES (?,?,?)", bad)
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('stamp', ?)", (stamp if trusted else "",)
            )
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('seen', ?)",
                            (json.dumps({"heads": heads, "own": own}, sort_keys=True),))
        return len(changed)

    def bad_runs(self) -> dict[str, str]:
        """Runs skipped because their files are malformed: run id -> the problem."""
        return dict(self._guard(lambda: list(self.db.execute("SELECT run_id, reason FROM bad_runs ORDER BY run_id"))))

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop everything and re-read every run ref; ``progress`` hears ("index", runs read, runs)."""
        def work() -> int:
            self._reset()
            return self._refresh(force=True, progress=progress)

        return self._guard(work)

    def _delete(self, run_ids: list[str]) -> None:
        for table in ("runs", "params", "tags", "latest_metrics", "datasets", "bad_runs"):
            self.db.executemany(f"DELETE FROM {table} WHERE run_id=?", [(r,) for r in run_ids])

    def _insert_many(self, states: list[tuple[str, str, RunState]]) -> None:
        runs, params, tags, metrics, inputs = [], [], [], [], []
        for run_id, oid, state in states:
            info = state.info
            source = info.get("source") or {}
            runs.append((
                run_id,
                info.get("experiment_id", "0"),
                info.get("run_name"),
                info.get("status"),
                info.get("start_time"),
                info.get("end_time"),
                info.get("lifecycle_stage", "active"),
                info.get("user_id"),
                artifact_uri(run_id),
                source.get("head") or source.get("commit"),
                oid,
                info.get("parent_run_id"),
                json.dumps(source),
            ))
            params += [(run_id, k, v) for k, v in state.params.items()]
            tags += [(run_id, k, v) for k, v in state.tags.items()]
            metrics += [
                (run_id, k, None if math.isnan(v) else v, s, t, int(math.isnan(v)))
                for k, (v, s, t) in state.summary.items()
            ]
            inputs += [
                (run_id, d["name"], d["digest"], d["source_type"], d["source"], d["schema"], d["profile"],
                 e["tags"].get(CONTEXT_TAG), json.dumps(e["tags"], sort_keys=True))
                for e in state.inputs for d in (e["dataset"],)
            ]
        db = self.db
        db.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        db.executemany("INSERT INTO params VALUES (?,?,?)", params)
        db.executemany("INSERT INTO tags VALUES (?,?,?)", tags)
        db.executemany("INSERT INTO latest_metrics VALUES (?,?,?,?,?,?)", metrics)
        db.executemany("INSERT INTO datasets VALUES (?,?,?,?,?,?,?,?,?)", inputs)

    # -- queries ---------------------------------------------------------------

    def query_ids(self, sql: str, params: list[Any]) -> list[str]:
        return self._guard(lambda: [row[0] for row in self.db.execute(sql, params)])

    def children(self, parent_ids: list[str], stages: list[str]) -> dict[str, list[str]]:
        """Parent run id -> its child runs (``mlflow.parentRunId``) in ``stages``, newest first."""
        sql = ("SELECT t.value, t.run_id FROM tags AS t JOIN runs AS r ON r.run_id = t.run_id "
               "WHERE t.key = 'mlflow.parentRunId' AND t.value IN (SELECT value FROM json_each(?)) "
               "AND r.lifecycle_stage IN (SELECT value FROM json_each(?)) ORDER BY r.start_time DESC, r.run_id")

        def work() -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for parent, child in self.db.execute(sql, (json.dumps(parent_ids), json.dumps(stages))):
                out.setdefault(parent, []).append(child)
            return out

        return self._guard(work)

    def run_ids_with_prefix(self, prefix: str) -> list[str]:
        return self.query_ids(
            "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id",
            [prefix, prefix + "g"],
        )

    def runs_for_commits(self, commits: Iterable[str]) -> dict[str, list[str]]:
        """Run ids by source commit, for the given commits."""
        commits = list(commits)
        return self._guard(lambda: self._runs_for_commits(commits))

    def _runs_for_commits(self, commits: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for i in range(0, len(commits), 500):
            chunk = commits[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for commit, run_id in self.db.execute(
                f"SELECT source_commit, run_id FROM runs WHERE source_commit IN ({marks}) "
                "ORDER BY start_time",
                chunk,
            ):
                out.setdefault(commit, []).append(run_id)
        return out

    def keys(self, experiment_ids: list[str] | None) -> dict[str, list[str]]:
        """Distinct param, metric and tag keys of the runs of ``experiment_ids`` (None: every run).

        Kept in memory for as long as the index holds the same runs (its
        stamp of the refs): a scan of every tag of 10k runs costs ~100 ms,
        and the runs table asks on every page.
        """
        def work() -> dict[str, list[str]]:
            version = self._meta("stamp")
            wanted = tuple(experiment_ids) if experiment_ids is not None else None
            if version and self._keys_cache.get("version") == version and wanted in self._keys_cache:
                return self._keys_cache[wanted]  # type: ignore[no-any-return]
            found = self._keys(experiment_ids)
            if version:
                if self._keys_cache.get("version") != version:
                    self._keys_cache = {"version": version}
                self._keys_cache[wanted] = found
            return found

        return self._guard(work)

    def _keys(self, experiment_ids: list[str] | None) -> dict[str, list[str]]:
        where, args = "", []
        if experiment_ids is not None:
            marks = ",".join("?" * len(experiment_ids)) or "NULL"
            where, args = f"WHERE run_id IN (SELECT run_id FROM runs WHERE experiment_id IN ({marks}))", experiment_ids
        return {
            kind: [row[0] for row in self.db.execute(f"SELECT DISTINCT key FROM {table} {where} ORDER BY key", args)]
            for kind, table in (("params", "params"), ("metrics", "latest_metrics"), ("tags", "tags"))
        }

    def tags_with_prefix(self, prefix: str, experiment_ids: list[str] | None = None,
                         value: str | None = None) -> list[tuple[str, str, str]]:
        """(run_id, key, value) of the tags whose key starts with ``prefix`` (exactly ``value``,
        if given), of runs in ``experiment_ids`` (None: every run), by run id and key."""
        sql = "SELECT t.run_id, t.key, t.value FROM tags AS t JOIN runs AS r ON r.run_id = t.run_id " \
              "WHERE t.key >= ? AND t.key < ?"
        args: list[str] = [prefix, prefix + "\U0010ffff"]
        if value is not None:
            sql += " AND t.value = ?"
            args.append(value)
        if experiment_ids is not None:
            sql += " AND r.experiment_id IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(experiment_ids))
        return self._guard(lambda: [tuple(row) for row in self.db.execute(sql + " ORDER BY t.run_id, t.key", args)])

    def dataset_summaries(self, experiment_ids: list[str], limit: int = 1000) -> list[tuple[str, str, str, str | None]]:
        """Distinct (experiment_id, name, digest, context) of the datasets active runs of these experiments logged."""
        sql = ("SELECT DISTINCT r.experiment_id, d.name, d.digest, d.context FROM datasets AS d "
               "JOIN runs AS r ON r.run_id = d.run_id WHERE r.lifecycle_stage = 'active' "
               "AND r.experiment_id IN (SELECT value FROM json_each(?)) ORDER BY 1, 2, 3, 4 LIMIT ?")
        args = [json.dumps(experiment_ids), limit]
        return self._guard(lambda: [tuple(row) for row in self.db.execute(sql, args)])

    def load(self, run_ids: list[str]) -> list[Run]:
        """Runs from the index, in the order of ``run_ids``."""
        if not run_ids:
            return []
        return self._guard(lambda: self._load(run_ids))

    def _load(self, run_ids: list[str]) -> list[Run]:
        db = self.db
        ids = json.dumps(run_ids)
        wanted = "run_id IN (SELECT value FROM json_each(?))"
        rows = {
            r[0]: r
            for r in db.execute(
                "SELECT run_id, experiment_id, run_name, status, start_time, end_time, "
                "lifecycle_stage, user_id, artifact_uri, commit_oid, parent_run_id, source "
                f"FROM runs WHERE {wanted}",
                (ids,),
            )
        }
        data: dict[str, RunData] = {r: RunData() for r in rows}
        for run_id, key, value in db.execute(f"SELECT run_id, key, value FROM params WHERE {wanted}", (ids,)):
            data[run_id].params[key] = value
        for run_id, key, value in db.execute(f"SELECT run_id, key, value FROM tags WHERE {wanted}", (ids,)):
            data[run_id].tags[key] = value
        for run_id, key, value, step, ts, is_nan in db.execute(
            f"SELECT run_id, key, value, step, timestamp, is_nan FROM latest_metrics WHERE {wanted}", (ids,)
        ):
            value = math.nan if is_nan else value
            data[run_id].metrics[key] = value
            data[run_id].latest_metrics[key] = Metric(key, value, ts, step)
        inputs: dict[str, RunInputs] = {}
        for run_id, *fields, tags in db.execute(
            "SELECT run_id, name, digest, source_type, source, schema, profile, tags FROM datasets "
            f"WHERE {wanted} ORDER BY run_id, name, digest", (ids,)
        ):
            tag_map = json.loads(tags)
            inputs.setdefault(run_id, RunInputs()).dataset_inputs.append(
                DatasetInput(Dataset(*fields), [InputTag(k, v) for k, v in sorted(tag_map.items())]))
        out = []
        for run_id in run_ids:
            r = rows.get(run_id)
            if r is None:
                continue
            info = RunInfo(
                run_id=r[0],
                experiment_id=r[1],
                run_name=r[2] or "",
                user_id=r[7] or "",
                status=r[3],
                start_time=r[4],
                end_time=r[5],
                lifecycle_stage=r[6],
                artifact_uri=r[8],
            )
            out.append(Run(info, data[run_id], json.loads(r[11] or "{}"), r[10], r[9], inputs.get(run_id) or RunInputs()))
        return out

    def columns(self, run_ids: list[str]) -> dict[str, list[Any]]:
        """MLflow's ``search_runs`` table for ``run_ids``, as columns in that order, straight from SQL.

        The same columns and values as ``runs_to_dataframe(load(run_ids))``
        without making a Run per row: at 10k runs the objects cost more than
        the query.
        """
        return self._guard(lambda: self._columns(run_ids))

    def _columns(self, run_ids: list[str]) -> dict[str, list[Any]]:
        db = self.db
        ids = json.dumps(run_ids)
        wanted = "run_id IN (SELECT value FROM json_each(?))"
        rows = {r[0]: r for r in db.execute(
            f"SELECT run_id, experiment_id, status, artifact_uri, start_time, end_time FROM runs WHERE {wanted}",
            (ids,))}
        order = [r for r in run_ids if r in rows]
        ordered = json.dumps(order)
        n = len(order)
        columns: dict[str, list[Any]] = {
            name: [rows[r][i] for r in order]
            for i, name in enumerate(("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"))
        }
        # json_each's key is each id's position in the list: rows come with their row number
        joined = "FROM json_each(?) AS j JOIN {} AS t ON t.run_id = j.value"
        for prefix, sql in (
            ("metrics.", "SELECT j.key, t.key, CASE WHEN t.is_nan THEN NULL ELSE t.value END, t.is_nan "
                         + joined.format("latest_metrics")),
            ("params.", "SELECT j.key, t.key, t.value, 0 " + joined.format("params")),
            ("tags.", "SELECT j.key, t.key, t.value, 0 " + joined.format("tags")),
        ):
            found: dict[str, list[Any]] = {}
            for i, key, value, is_nan in db.execute(sql, (ordered,)):
                column = found.get(key)
                if column is None:
                    column = found[key] = [None] * n
                column[i] = math.nan if is_nan else value
            columns.update((prefix + key, found[key]) for key in sorted(found))
        return columns

    def close(self) -> None:
        """Close every thread's connection."""
        self._close_all()
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None


def _is_corrupt(error: BaseException) -> bool:
    """SQLite's 'database disk image is malformed' or 'file is not a database'."""
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(error)
    return "malformed" in text or "not a database" in text


def _is_read_only(error: BaseException) -> bool:
    if isinstance(error, PermissionError):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (8, 14)  # SQLITE_READONLY, SQLITE_CANTOPEN
    text = str(error)
    return "readonly" in text or "unable to open" in text
