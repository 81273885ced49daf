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

import gc
import json
import logging
import math
import operator
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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

SCHEMA_VERSION = 4

# Runs are numbered (``rid``) and their params, tags, metrics and datasets are keyed by that
# number in WITHOUT ROWID tables: a filter's (key, value) index then holds the run's number
# itself (no second lookup), and joins compare integers rather than 32-character ids. runs_exp
# holds what a search of an experiment orders by by default, so listing one reads no run rows.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
  rid INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, experiment_id TEXT NOT NULL, run_name TEXT, status TEXT,
  start_time INTEGER, end_time INTEGER, lifecycle_stage TEXT, user_id TEXT, artifact_uri TEXT,
  source_commit TEXT, commit_oid TEXT, parent_run_id TEXT, source TEXT);
CREATE TABLE IF NOT EXISTS params (rid INTEGER, key TEXT, value TEXT, PRIMARY KEY (rid, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (rid INTEGER, key TEXT, value TEXT, PRIMARY KEY (rid, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest_metrics (rid INTEGER, key TEXT, value REAL, step INTEGER,
  timestamp INTEGER, is_nan INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (rid, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS datasets (rid INTEGER, name TEXT, digest TEXT, source_type TEXT, source TEXT,
  schema TEXT, profile TEXT, context TEXT, tags TEXT, PRIMARY KEY (rid, name, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bad_runs (run_id TEXT PRIMARY KEY, commit_oid TEXT, reason TEXT);
"""
#: The secondary indexes, by name. A build into an empty index makes them after the rows are in
#: (one sort each), which costs less than keeping them up to date row by row.
INDEXES = {
    "params_kv": "CREATE INDEX IF NOT EXISTS params_kv ON params (key, value)",
    "tags_kv": "CREATE INDEX IF NOT EXISTS tags_kv ON tags (key, value)",
    "metrics_kv": "CREATE INDEX IF NOT EXISTS metrics_kv ON latest_metrics (key, value)",
    "runs_exp": "CREATE INDEX IF NOT EXISTS runs_exp ON runs (experiment_id, lifecycle_stage, start_time, run_id)",
    "runs_source": "CREATE INDEX IF NOT EXISTS runs_source ON runs (source_commit)",
    "datasets_name": "CREATE INDEX IF NOT EXISTS datasets_name ON datasets (name, digest)",
}
SCHEMA += "".join(f"{sql};\n" for sql in INDEXES.values())

#: From this many runs read into an empty index, the secondary indexes are made after the rows.
BULK_RUNS = 500

#: The tables keyed by ``rid``: a run's rows besides its ``runs`` row.
RUN_TABLES = ("params", "tags", "latest_metrics", "datasets")

RACY_SECONDS = 1.0

#: A search for at least 1/LARGE_SEARCH of the runs reads (and keeps) the table of every run.
LARGE_SEARCH = 4


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
        self._table: RunTable | None = None  # see columns()
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
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (uuid.uuid4().hex,))

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
        # A refresh builds a state per changed run and a tuple per row, none with cycles. The
        # states die when _catch_up returns, before the collector is back on.
        with _gc_paused():
            return self._catch_up(stamp, newest, force, progress)

    def _catch_up(self, stamp: str, newest: float, force: bool, progress: Progress | None) -> int:
        current, heads, own, complete = self._current(force)
        # What the index holds: of every run when every run was listed, else of the few that may
        # have changed (a refresh after one new run, or of a racy stamp, reads no 10k-row map).
        wanted = "" if complete else " WHERE run_id IN (SELECT value FROM json_each(?))"
        args = () if complete else (json.dumps(list(current)),)
        known = dict(self.db.execute("SELECT run_id, commit_oid FROM runs" + wanted, args))
        known.update(self.db.execute("SELECT run_id, commit_oid FROM bad_runs" + wanted, args))
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
        bulk = complete and not known and len(states) >= BULK_RUNS
        with self._write():
            self._delete(gone + [r for r, _ in changed])
            if bulk:
                for name in INDEXES:
                    self.db.execute(f"DROP INDEX IF EXISTS {name}")
            self._insert_many(states)
            if bulk:
                for sql in INDEXES.values():
                    self.db.execute(sql)
            self.db.executemany("INSERT INTO bad_runs VALUES (?,?,?)", bad)
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('stamp', ?)", (stamp if trusted else "",)
            )
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('seen', ?)",
                            (json.dumps({"heads": heads, "own": own}, sort_keys=True),))
            if gone or changed:
                # A new name for what the index now holds: caches keyed by it (columns()) start over.
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (uuid.uuid4().hex,))
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
        if not run_ids:
            return
        ids = json.dumps(run_ids)
        rids = json.dumps([r for (r,) in self.db.execute(
            "SELECT rid FROM runs WHERE run_id IN (SELECT value FROM json_each(?))", (ids,))])
        for table in RUN_TABLES:
            self.db.execute(f"DELETE FROM {table} WHERE rid IN (SELECT value FROM json_each(?))", (rids,))
        for table in ("runs", "bad_runs"):
            self.db.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT value FROM json_each(?))", (ids,))

    def _insert_many(self, states: list[tuple[str, str, RunState]]) -> None:
        runs, params, tags, metrics, inputs = [], [], [], [], []
        db = self.db
        first = db.execute("SELECT coalesce(max(rid), 0) + 1 FROM runs").fetchone()[0]
        for rid, (run_id, oid, state) in enumerate(states, first):
            info = state.info
            source = info.get("source") or {}
            runs.append((
                rid,
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
            params += [(rid, k, v) for k, v in state.params.items()]
            tags += [(rid, k, v) for k, v in state.tags.items()]
            metrics += [
                (rid, k, None if math.isnan(v) else v, s, t, int(math.isnan(v)))
                for k, (v, s, t) in state.summary.items()
            ]
            inputs += [
                (rid, d["name"], d["digest"], d["source_type"], d["source"], d["schema"], d["profile"],
                 e["tags"].get(CONTEXT_TAG), json.dumps(e["tags"], sort_keys=True))
                for e in state.inputs for d in (e["dataset"],)
            ]
        db.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        db.executemany("INSERT INTO params VALUES (?,?,?)", params)
        db.executemany("INSERT INTO tags VALUES (?,?,?)", tags)
        db.executemany("INSERT INTO latest_metrics VALUES (?,?,?,?,?,?)", metrics)
        db.executemany("INSERT INTO datasets VALUES (?,?,?,?,?,?,?,?,?)", inputs)

    # -- queries ---------------------------------------------------------------

    def query_ids(self, sql: str, params: list[Any]) -> list[str]:
        return self._guard(lambda: [row[0] for row in self.db.execute(sql, params)])

    def query_count(self, sql: str, params: list[Any]) -> int:
        return int(self._guard(lambda: self.db.execute(sql, params).fetchone()[0]))

    def children(self, parent_ids: list[str], stages: list[str]) -> dict[str, list[str]]:
        """Parent run id -> its child runs (``mlflow.parentRunId``) in ``stages``, newest first."""
        sql = ("SELECT t.value, r.run_id FROM tags AS t JOIN runs AS r ON r.rid = t.rid "
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
        # Each distinct key by a skip-scan of the (key, value) index, one probe per key,
        # rather than a DISTINCT over every row (50 ms for the tags of 10k runs; this is
        # well under 1 ms). Then, per key, whether a run of the experiments has it: from the
        # experiment's runs (CROSS JOIN fixes that order), stopping at the first.
        where, args = "", []
        if experiment_ids is not None:
            marks = ",".join("?" * len(experiment_ids)) or "NULL"
            where = ("AND EXISTS (SELECT 1 FROM runs AS r CROSS JOIN {table} AS t ON t.rid = r.rid AND t.key = k.key "
                     f"WHERE r.experiment_id IN ({marks}))")
            args = experiment_ids
        out = {}
        for kind, table in (("params", "params"), ("metrics", "latest_metrics"), ("tags", "tags")):
            sql = (f"WITH RECURSIVE k(key) AS (SELECT (SELECT MIN(key) FROM {table}) UNION ALL "
                   f"SELECT (SELECT MIN(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL) "
                   f"SELECT key FROM k WHERE key IS NOT NULL {where.format(table=table)} ORDER BY key")
            out[kind] = [row[0] for row in self.db.execute(sql, args)]
        return out

    def tags_with_prefix(self, prefix: str, experiment_ids: list[str] | None = None,
                         value: str | None = None) -> list[tuple[str, str, str]]:
        """(run_id, key, value) of the tags whose key starts with ``prefix`` (exactly ``value``,
        if given), of runs in ``experiment_ids`` (None: every run), by run id and key."""
        sql = "SELECT r.run_id, t.key, t.value FROM tags AS t JOIN runs AS r ON r.rid = t.rid " \
              "WHERE t.key >= ? AND t.key < ?"
        args: list[str] = [prefix, prefix + "\U0010ffff"]
        if value is not None:
            sql += " AND t.value = ?"
            args.append(value)
        if experiment_ids is not None:
            sql += " AND r.experiment_id IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(experiment_ids))
        return self._guard(lambda: [tuple(row) for row in self.db.execute(sql + " ORDER BY r.run_id, t.key", args)])

    def dataset_summaries(self, experiment_ids: list[str], limit: int = 1000) -> list[tuple[str, str, str, str | None]]:
        """Distinct (experiment_id, name, digest, context) of the datasets active runs of these experiments logged."""
        sql = ("SELECT DISTINCT r.experiment_id, d.name, d.digest, d.context FROM datasets AS d "
               "JOIN runs AS r ON r.rid = d.rid WHERE r.lifecycle_stage = 'active' "
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
        rows = {
            r[0]: r
            for r in db.execute(
                "SELECT r.run_id, r.experiment_id, r.run_name, r.status, r.start_time, r.end_time, "
                "r.lifecycle_stage, r.user_id, r.artifact_uri, r.commit_oid, r.parent_run_id, r.source, r.rid "
                "FROM json_each(?) AS j JOIN runs AS r ON r.run_id = j.value",
                (json.dumps(run_ids),),
            )
        }
        run_of = {r[12]: run_id for run_id, r in rows.items()}
        rids = json.dumps(list(run_of))
        wanted = "rid IN (SELECT value FROM json_each(?))"
        data: dict[str, RunData] = {r: RunData() for r in rows}
        for rid, key, value in db.execute(f"SELECT rid, key, value FROM params WHERE {wanted}", (rids,)):
            data[run_of[rid]].params[key] = value
        for rid, key, value in db.execute(f"SELECT rid, key, value FROM tags WHERE {wanted}", (rids,)):
            data[run_of[rid]].tags[key] = value
        for rid, key, value, step, ts, is_nan in db.execute(
            f"SELECT rid, key, value, step, timestamp, is_nan FROM latest_metrics WHERE {wanted}", (rids,)
        ):
            value = math.nan if is_nan else value
            run_data = data[run_of[rid]]
            run_data.metrics[key] = value
            run_data.latest_metrics[key] = Metric(key, value, ts, step)
        inputs: dict[str, RunInputs] = {}
        for rid, *fields, tags in db.execute(
            "SELECT rid, name, digest, source_type, source, schema, profile, tags FROM datasets "
            f"WHERE {wanted} ORDER BY rid, name, digest", (rids,)
        ):
            tag_map = json.loads(tags)
            inputs.setdefault(run_of[rid], RunInputs()).dataset_inputs.append(
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
        the query. The rows read are kept for as long as the index holds the
        same runs (its generation), so a search reads only the runs no
        earlier one did; one that asks for a large share of the runs reads
        the table of every run.
        """
        return self._guard(lambda: self._columns(run_ids))

    def _columns(self, run_ids: list[str]) -> dict[str, list[Any]]:
        db = self.db
        db.execute("BEGIN")  # one snapshot: the generation and the rows it names
        try:
            generation = self._meta("generation")
            table = self._table
            if table is None or table.generation != generation or generation is None:
                table = RunTable.empty(generation)
            missing = [r for r in run_ids if r not in table.positions]
            if missing:
                total = db.execute("SELECT count(*) FROM runs").fetchone()[0]
                if len(missing) * LARGE_SEARCH >= total:
                    table = RunTable.read(db, generation)
                else:
                    table = table.merged(RunTable.read(db, generation, missing))
            if generation is not None:
                self._table = table
        finally:
            db.execute("COMMIT")
        return table.columns(run_ids)

    def close(self) -> None:
        """Close every thread's connection."""
        self._close_all()
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None


#: The columns of a search's table before its metrics., params. and tags. ones.
BASE_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")


class RunTable:
    """Runs as MLflow's search table: one column per attribute and per metric, param and tag key.

    Each column holds one value per run (None where a run lacks the key, NaN
    for a NaN metric), in the order of ``positions``. A table is not changed
    once made (threads may share it): ``merged`` makes a new one.
    """

    def __init__(self, generation: str | None, positions: dict[str, int], columns: dict[str, list[Any]]) -> None:
        self.generation = generation
        self.positions = positions
        self._columns = columns

    @classmethod
    def empty(cls, generation: str | None) -> RunTable:
        """A table of no runs."""
        return cls(generation, {}, {name: [] for name in BASE_COLUMNS})

    @classmethod
    def read(cls, db: sqlite3.Connection, generation: str | None, run_ids: list[str] | None = None) -> RunTable:
        """The table of ``run_ids`` (None: every run in the index)."""
        base = "SELECT r.rid, r.run_id, r.experiment_id, r.status, r.artifact_uri, r.start_time, r.end_time "
        args: tuple[str, ...]
        if run_ids is None:
            rows = db.execute(base + "FROM runs AS r ORDER BY r.rid").fetchall()
            wanted, args = "", ()
        else:
            rows = db.execute(base + "FROM json_each(?) AS j JOIN runs AS r ON r.run_id = j.value",
                              (json.dumps(run_ids),)).fetchall()
            wanted, args = "WHERE rid IN (SELECT value FROM json_each(?))", (json.dumps([r[0] for r in rows]),)
        n = len(rows)
        at = {row[0]: i for i, row in enumerate(rows)}
        attributes = list(zip(*rows)) if rows else [()] * (len(BASE_COLUMNS) + 1)
        columns: dict[str, list[Any]] = {name: list(attributes[i + 1]) for i, name in enumerate(BASE_COLUMNS)}
        for prefix, sql in (
            ("metrics.", f"SELECT rid, key, value, is_nan FROM latest_metrics {wanted}"),
            ("params.", f"SELECT rid, key, value, 0 FROM params {wanted}"),
            ("tags.", f"SELECT rid, key, value, 0 FROM tags {wanted}"),
        ):
            found: dict[str, list[Any]] = {}
            for rid, key, value, is_nan in db.execute(sql, args):
                column = found.get(key)
                if column is None:
                    column = found[key] = [None] * n
                column[at[rid]] = math.nan if is_nan else value
            columns.update((prefix + key, found[key]) for key in sorted(found))
        return cls(generation, {row[1]: i for i, row in enumerate(rows)}, columns)

    def merged(self, other: RunTable) -> RunTable:
        """A table of this one's runs and then ``other``'s (runs this one lacks)."""
        n, m = len(self.positions), len(other.positions)
        positions = dict(self.positions)
        positions.update((run_id, n + i) for run_id, i in other.positions.items())
        # "metrics." < "params." < "tags.": sorting the names orders them as read() does
        names = list(BASE_COLUMNS) + sorted(
            {name for table in (self, other) for name in table._columns if name not in BASE_COLUMNS})
        columns = {name: (self._columns.get(name) or [None] * n) + (other._columns.get(name) or [None] * m)
                   for name in names}
        return RunTable(self.generation, positions, columns)

    def columns(self, run_ids: list[str]) -> dict[str, list[Any]]:
        """The rows of ``run_ids`` (those in the table), in that order; only the key columns some of them have."""
        positions = self.positions
        picked = [positions[r] for r in run_ids if r in positions]
        if len(picked) == 1:
            only = picked[0]
            return {name: [column[only]] for name, column in self._columns.items()
                    if name in BASE_COLUMNS or column[only] is not None}
        take = operator.itemgetter(*picked) if picked else (lambda column: ())
        n = len(picked)
        out: dict[str, list[Any]] = {}
        for name, column in self._columns.items():
            values = take(column)
            if name in BASE_COLUMNS or values.count(None) != n:
                out[name] = list(values)
        return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic collector off while run states and rows pile up (they hold no cycles).

    Each collection walks every object alive, and a cold build keeps adding
    them: the collector was ~12% of building the index of 10k or 100k runs.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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
