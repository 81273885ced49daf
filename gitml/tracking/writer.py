"""Live runs: logging appends to a live log; git is written on flush.

A ``RunWriter`` is one process logging to one run. Each call validates,
appends one line to the writer's live log (one ``write(2)``, so a SIGKILL
right after the call loses nothing) and queues the event in memory. The run
commit is rewritten from the queue on ``flush()``: at ``end_run``, on
explicit flushes, before this process reads runs, and every
``flush_interval`` seconds from a background thread.

Several writers may log to one run (two processes, or a process and its
forked child). Each flush is a compare-and-swap of the run ref; a lost race
re-reads the run and re-applies the queued events. Each run commit records
in ``Gitml-Writer`` trailers how many events of each writer's log it holds,
the closing writer's included, which makes recovery of a dead writer's log
exact and idempotent: the events after that count are the ones git does not
have yet, even if the writer died between its last commit and deleting its
log.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from gitml import settings
from gitml.errors import ConcurrentUpdate, GitmlError, RunNotFound
from gitml.store import livelog, names
from gitml.store.repo import CAS_RETRIES, GitRepo
from gitml.tracking import datasets, notes, schema, validation
from gitml.tracking.entities import RunStatus
from gitml.tracking.runfiles import (
    ARTIFACT,
    DELETE_TAG,
    INFO,
    INPUT,
    METRIC,
    PARAM,
    TAG,
    RunState,
    apply_events,
    apply_metrics,
    metric_chunk_changes,
    metric_event,
    read_state,
)

log = logging.getLogger("gitml")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

LOG_MAGIC = "gitml-live 1"

Event = tuple


# -- event encoding (one line each in the live log) ---------------------------


def encode_event(ev: Event) -> bytes:
    if ev[0] == METRIC:
        return f"M{ev[1]}\t{ev[5]}".encode()
    return (ev[0] + json.dumps(list(ev[1:]), ensure_ascii=False) + "\n").encode()


def decode_event(line: bytes, metric_keys: set[str] | None = None) -> Event | None:
    """The event a live-log line holds, or None if the line is damaged or malformed.

    A live log is read back only by recovery, possibly long after it was
    written and by another version of gitml, so every event is checked as
    if it came from outside: right kind, right arity, values ``log_*``
    would have accepted. ``metric_keys`` caches metric keys already checked.
    """
    try:
        text = line.decode()
        kind = text[:1]
        if kind == METRIC:
            key, step, ts, value = text[1:].split("\t")
            if metric_keys is None or key not in metric_keys:
                validation.validate_metric_key(key)
                if metric_keys is not None:
                    metric_keys.add(key)
            return metric_event(key, float(value), validation.validate_metric_step(int(step)),
                                validation.validate_timestamp(int(ts)))
        if kind in _EVENT_CHECKS:
            args = json.loads(text[1:])
            if type(args) is list and _EVENT_CHECKS[kind](args):
                return (kind, *args)
    except (ValueError, RecursionError, GitmlError):  # UnicodeDecodeError is a ValueError
        pass
    return None


def _ms(args: list, at: int) -> bool:
    """No timestamp at position ``at`` (logs of older gitml), or milliseconds."""
    return len(args) <= at or (type(args[at]) is int and 0 <= args[at] < 2**63)


def _param_ok(args: list) -> bool:
    return len(args) == 2 and validation.validate_param_key(args[0]) and type(args[1]) is str \
        and validation.validate_param_value(args[0], args[1]) is not None


def _tag_ok(args: list) -> bool:
    return 2 <= len(args) <= 3 and validation.validate_tag_key(args[0]) and type(args[1]) is str \
        and validation.validate_tag_value(args[0], args[1]) is not None and _ms(args, 2)


def _delete_ok(args: list) -> bool:
    return 1 <= len(args) <= 2 and bool(validation.validate_tag_key(args[0])) and _ms(args, 1)


def _info_ok(args: list) -> bool:
    return len(args) == 1 and schema.check_info(args[0], None, partial=True) is not None


def _artifact_ok(args: list) -> bool:
    if not 3 <= len(args) <= 4 or type(args[0]) is not str:
        return False
    path, md5, size = args[:3]
    is_dir = path.endswith("/")
    bare = path[:-1] if is_dir else path
    return bool(bare) and validation.validate_artifact_path(bare) == bare \
        and validation.validate_artifact_md5(md5, directory=is_dir) == md5 \
        and type(size) is int and size >= 0 and _ms(args, 3)


def _input_ok(args: list) -> bool:
    if len(args) != 1 or type(args[0]) is not dict or set(args[0]) != {"dataset", "tags"}:
        return False
    item = args[0]
    return type(item["dataset"]) is dict and type(item["tags"]) is dict \
        and datasets.entry(item["dataset"], item["tags"]) == item


_EVENT_CHECKS: dict[str, Callable[[list], bool]] = {
    PARAM: _param_ok, TAG: _tag_ok, DELETE_TAG: _delete_ok, INFO: _info_ok, ARTIFACT: _artifact_ok,
    INPUT: _input_ok,
}


# -- applying events to the run ref --------------------------------------------


def commit_events(
    repo: GitRepo,
    run_id: str,
    events: list[Event],
    *,
    metrics: dict[str, list[tuple]] | None = None,
    writer: tuple[str, int, bool] | None = None,
    finalize: Callable[[RunState], None] | None = None,
    cache: tuple[str, RunState, str] | None = None,
) -> tuple[str, RunState, str]:
    """Apply ``events`` to run ``run_id`` and move its ref, compare-and-swap.

    ``metrics`` are more metric points by key, (value, timestamp, step,
    line) each, kept apart by the writer so that many points take the fast
    path.
    ``writer`` is (writer_id, events of that writer now applied, closing);
    its count is recorded in the commit even when closing (see module doc).
    ``finalize`` may adjust the state after the events (recovery sets the
    final status there). ``cache`` is the (commit, state, tree) this process
    last wrote; it saves re-reading git when nobody else wrote since.
    Returns the new (commit, state, tree).

    Raises:
        RunNotFound: the run does not exist and ``events`` do not create it.
        ConcurrentUpdate: the ref kept moving for every retry.
    """
    ref = names.run_ref(run_id)
    for _ in range(CAS_RETRIES):
        old = repo.ref_target(ref)
        if old is None:
            if not events or events[0][0] != INFO or "run_id" not in events[0][1]:
                raise RunNotFound(f"Run {run_id!r} not found in {repo.git_dir}")
            state, base_tree = RunState(info={}), None
        elif cache is not None and cache[0] == old:
            state, base_tree = cache[1].copy(), cache[2]
        else:
            state, base_tree = read_state(repo, old, run_id)
        was = (state.info.get("status"), state.info.get("lifecycle_stage"))
        points = apply_events(state, events)
        if metrics:
            for key, new in apply_metrics(state, metrics).items():
                points.setdefault(key, []).extend(new)
        if finalize is not None:
            finalize(state)
        if writer is not None:
            state.writers[writer[0]] = writer[1]
        _prune_writers(repo, state, writer[0] if writer is not None else None)
        changes: dict[str, bytes | None] = dict(state.files())
        changes.update(metric_chunk_changes(repo, base_tree, points))
        tree = repo.update_tree(base_tree, changes)
        source = state.info.get("source") or {}
        parents = [source["commit"]] if source.get("commit") else []
        commit = repo.write_commit(tree, parents, state.commit_message())
        if repo.cas_ref(ref, commit, old):
            _remember(repo, run_id, commit, state)
            now = (state.info.get("status"), state.info.get("lifecycle_stage"))
            if now != was and RunStatus.is_terminated(str(now[0])) or (
                now[1] != was[1] and was[1] is not None
            ):
                _refresh_note(repo, state)
            return commit, state, tree
    raise ConcurrentUpdate(f"Gave up updating run {run_id} after {CAS_RETRIES} attempts")


# The last state this process wrote for each run, so the query index can take
# it instead of reading the commit back from git (bounded, oldest dropped).
_recent: dict[tuple[str, str], tuple[str, RunState]] = {}
_RECENT_MAX = 50_000


def _remember(repo: GitRepo, run_id: str, commit: str, state: RunState) -> None:
    if len(_recent) >= _RECENT_MAX:
        _recent.pop(next(iter(_recent)))
    _recent[(str(repo.git_dir), run_id)] = (commit, state)


def known_state(repo: GitRepo, run_id: str, commit: str) -> RunState | None:
    """The state of run commit ``commit`` if this process wrote it, else None."""
    hit = _recent.get((str(repo.git_dir), run_id))
    return hit[1] if hit is not None and hit[0] == commit else None


def _prune_writers(repo: GitRepo, state: RunState, keep: str | None) -> None:
    # A writer's count matters only while its log exists here; drop the
    # others so finished runs carry just the last writer's trailer.
    if len(state.writers) <= 1:
        return
    for writer_id in list(state.writers):
        if writer_id != keep and not livelog.log_path(live_dir(repo), state.run_id, writer_id).exists():
            del state.writers[writer_id]


_note_queue: dict[str, tuple[GitRepo, dict[str, RunState]]] = {}
_note_lock = threading.Lock()
_note_write_lock = threading.Lock()


def queue_note(repo: GitRepo, state: RunState) -> None:
    """Queue a refresh of this run's line in its source commit's note."""
    _refresh_note(repo, state)


def _refresh_note(repo: GitRepo, state: RunState) -> None:
    """Queue the run's line for the note on its source commit.

    Notes are written in batches (by the background flusher, ``flush_all``
    and at exit): one notes commit for many runs instead of one per run.
    """
    with _note_lock:
        _note_queue.setdefault(str(repo.git_dir), (repo, {}))[1][state.run_id] = state.copy()


def write_notes(repo: GitRepo | None = None) -> None:
    """Write the queued note lines (of one repo, or all) in one commit each.

    One writer at a time per process: the exit hook must wait for a batch
    the background flusher has already taken off the queue, or that batch
    dies with the daemon thread.
    """
    with _note_write_lock:
        with _note_lock:
            keys = [k for k in _note_queue if repo is None or k == str(repo.git_dir)]
            batches = [_note_queue.pop(k) for k in keys]
        for target_repo, states in batches:
            if not (target_repo.git_dir / "objects").is_dir():
                continue  # the repository is gone (a temporary one, removed before exit)
            try:
                notes.update_run_notes(target_repo, list(states.values()), settings.get("note_metrics", target_repo))
            except Exception as e:  # noqa: BLE001 - derived data: `gitml reindex` rebuilds notes
                log.warning("gitml: could not update git notes in %s: %s", target_repo.git_dir, e)


# -- the writer ----------------------------------------------------------------


def live_dir(repo: GitRepo) -> Path:
    return repo.git_dir / names.LIVE_DIR


class RunWriter:
    """This process's handle for logging into one run."""

    def __init__(self, repo: GitRepo, run_id: str) -> None:
        self.repo = repo
        self.run_id = run_id
        self.writer_id = uuid.uuid4().hex[:16]
        header = f"{LOG_MAGIC}\t{run_id}\t{self.writer_id}\t{os.getpid()}\n".encode()
        self.log = livelog.LiveLog.create(live_dir(repo), run_id, self.writer_id, header)
        self._fd = self.log.fd
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._metrics: dict[str, list[tuple]] = {}  # key -> pending points
        self._events: list[Event] = []
        self._seq = 0
        self._committed_seq = 0
        self._metric_keys: set[str] = set()
        self._params: dict[str, str] = {}
        self._cache: tuple[str, RunState, str] | None = None
        self.closed = False

    # logging ---------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        if key not in self._metric_keys:
            validation.validate_metric_key(key)
            self._metric_keys.add(key)
        if type(value) is not float:
            value = validation.validate_metric_value(key, value)
        if step is None:
            step = 0
        elif type(step) is not int:
            step = validation.validate_metric_step(step)
        if timestamp is None:
            timestamp = time.time_ns() // 1_000_000
        elif type(timestamp) is not int:
            timestamp = validation.validate_timestamp(timestamp)
        line = f"{step}\t{timestamp}\t{value!r}\n"
        data = f"M{key}\t{line}".encode()
        with self._lock:
            if self.log.owed:
                self.log.append(data)
            else:
                n = os.write(self._fd, data)
                if n != len(data):  # a short write: finish it, or raise (nothing is queued then)
                    self.log.append(data, n)
            bucket = self._metrics.get(key)
            if bucket is None:
                bucket = self._metrics[key] = []
            bucket.append((value, timestamp, step, line))
            self._seq += 1

    def log_param(self, key: str, value: object) -> str:
        text = self.check_param(key, value)
        if key in self._params:
            return text  # the same value again: nothing to log
        self._params[key] = text
        self.append((PARAM, key, text))
        return text

    def check_param(self, key: str, value: object) -> str:
        """The text ``log_param(key, value)`` would log; raise as it would (a batch checks all first).

        Raises:
            InvalidName, InvalidValue, ParamAlreadyLogged.
        """
        validation.validate_param_key(key)
        text = validation.validate_param_value(key, value)
        old = self._known_param(key)
        if old is not None:
            validation.validate_param_rewrite(key, old, text)
        return text

    def set_tag(self, key: str, value: object) -> None:
        validation.validate_tag_key(key)
        self.append((TAG, key, validation.validate_tag_value(key, value), _now_ms()))

    def delete_tag(self, key: str) -> None:
        validation.validate_tag_key(key)
        self.append((DELETE_TAG, key, _now_ms()))

    def add_artifact(self, path: str, md5: str, size: int) -> None:
        """Record an artifact already stored in the content store."""
        self.append((ARTIFACT, path, md5, size, _now_ms()))

    def add_input(self, entry: dict) -> None:
        """Record a dataset input (an entry ``datasets.entry`` made)."""
        self.append((INPUT, entry))

    def set_info(self, **fields: object) -> None:
        self.append((INFO, fields))

    def append(self, ev: Event) -> None:
        """Queue one event and write it to the live log."""
        line = encode_event(ev)
        with self._lock:
            self.log.append(line)
            self._events.append(ev)
            self._seq += 1

    def _known_param(self, key: str) -> str | None:
        if key in self._params:
            return self._params[key]
        if self._cache is None and self.repo.ref_target(names.run_ref(self.run_id)) is not None:
            self.flush()
        if self._cache is not None:
            value = self._cache[1].params.get(key)
            if value is not None:
                self._params[key] = value
            return value
        return None

    # committing ------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return self._seq != self._committed_seq

    def flush(self, *, close: bool = False, sync: bool = False) -> RunState | None:
        """Commit queued events to the run ref; ``close`` also retires the writer."""
        with self._flush_lock:
            if self.closed:
                return self._cache[1] if self._cache else None
            with self._lock:
                metrics, self._metrics = self._metrics, {}
                events, self._events = self._events, []
                seq = self._seq
            if seq == self._committed_seq and not close and self._cache is not None:
                return self._cache[1]
            try:
                self._cache = commit_events(
                    self.repo,
                    self.run_id,
                    events,
                    metrics=metrics,
                    writer=(self.writer_id, seq, close),
                    cache=self._cache,
                )
            except BaseException:
                with self._lock:
                    for key, points in self._metrics.items():
                        metrics.setdefault(key, []).extend(points)
                    self._metrics = metrics
                    self._events[:0] = events
                raise
            self._committed_seq = seq
            if sync:
                self.log.sync()
            if close:
                self.log.close(remove=True)
                self.closed = True
            return self._cache[1]

    def state(self) -> RunState:
        """The run as this process sees it now (flushes first)."""
        state = self.flush()
        assert state is not None
        return state


# -- this process's writers ------------------------------------------------------

_writers: dict[tuple[str, str], RunWriter] = {}
_registry_lock = threading.Lock()
_flusher: threading.Thread | None = None
_pid = os.getpid()


def get_writer(repo: GitRepo, run_id: str) -> RunWriter:
    """This process's writer for ``run_id`` (created on first use).

    Raises:
        InvalidValue: a setting the writer needs (flush_interval) is invalid;
            no live log is created then.
    """
    key = (str(repo.git_dir), run_id)
    w = _writers.get(key)
    if w is not None and not w.closed:
        return w
    with _registry_lock:
        w = _writers.get(key)
        if w is None or w.closed:
            _start_flusher(repo)  # first: a bad setting must not leave a live log behind
            w = RunWriter(repo, run_id)
            _writers[key] = w
        return w


def local_writer(repo: GitRepo, run_id: str) -> RunWriter | None:
    """This process's open writer for ``run_id``, if it has one."""
    w = _writers.get((str(repo.git_dir), run_id))
    return w if w is not None and not w.closed else None


def create_run(repo: GitRepo, info: dict, tags: dict[str, str]) -> tuple[RunWriter, RunState]:
    """Start a run from its info and first tags.

    The run exists in its writer's live log at once and in git at the first
    flush (end_run, a read from this process, the background flusher, or a
    fork). Returns the writer and the run's state as created.
    """
    events: list[Event] = [(INFO, info)]
    for k, v in tags.items():  # all checked before anything is logged: a refused tag makes no run
        events.append((TAG, validation.validate_tag_key(k), validation.validate_tag_value(k, v), 0))
    w = get_writer(repo, info["run_id"])
    for ev in events:
        w.append(ev)
    state = RunState(info=dict(info))
    apply_events(state, events)
    return w, state


def close_writer(repo: GitRepo, run_id: str) -> RunState | None:
    """Flush and retire this process's writer for ``run_id``, if any."""
    w = _writers.pop((str(repo.git_dir), run_id), None)
    if w is None or w.closed:
        return None
    return w.flush(close=True)


def flush_all(repo: GitRepo | None = None) -> None:
    """Commit every pending event of this process (of one repo, or all)."""
    for (git_dir, _), w in list(_writers.items()):
        if repo is None or git_dir == str(repo.git_dir):
            if w.pending:
                w.flush()
    write_notes(repo)


def _start_flusher(repo: GitRepo) -> None:
    global _flusher
    if _flusher is not None and _flusher.is_alive():
        return
    interval = settings.get("flush_interval", repo)
    if interval <= 0:
        return
    _flusher = threading.Thread(target=_flush_loop, args=(interval,), name="gitml-flush", daemon=True)
    _flusher.start()


_stopping = False


def _flush_loop(interval: float) -> None:
    while not _stopping:
        time.sleep(interval)
        if _stopping:
            return  # the exit hook does the last flush
        for w in list(_writers.values()):
            if w.pending and not w.closed:
                try:
                    w.flush()
                except Exception as e:  # noqa: BLE001 - keep flushing others; data is in the live log
                    log.warning("gitml: background flush of run %s failed: %s", w.run_id, e)
        write_notes()


def _before_fork() -> None:
    # A forked child may log to the parent's runs: commit them first, so the
    # child (which gets writers of its own) finds them in git.
    for w in list(_writers.values()):
        if w.pending and not w.closed:
            try:
                w.flush()
            except Exception as e:  # noqa: BLE001 - the live log keeps the data
                log.warning("gitml: flush before fork failed for run %s: %s", w.run_id, e)


def _after_fork_in_child() -> None:
    # The parent's writers, locks and flusher are not ours. Close our copies
    # of their log fds (so the parent's death is still seen as death) and
    # mark them closed; the child gets fresh writers on demand.
    global _flusher, _registry_lock, _pid, _note_lock, _note_write_lock
    for w in _writers.values():
        try:
            os.close(w.log.fd)
        except OSError:
            pass
        w.log.fd = -1
        w.closed = True
    _writers.clear()
    _note_queue.clear()
    _recent.clear()
    _flusher = None
    _registry_lock = threading.Lock()
    _note_lock = threading.Lock()
    _note_write_lock = threading.Lock()
    _pid = os.getpid()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)

_exit_hooks: list[Callable[[], None]] = []


def on_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit before the writers are closed."""
    _exit_hooks.append(hook)


@atexit.register
def _close_all_at_exit() -> None:
    global _stopping
    if os.getpid() != _pid:
        return
    _stopping = True
    for hook in _exit_hooks:
        try:
            hook()
        except Exception as e:  # noqa: BLE001 - exiting; the live logs keep the data
            log.warning("gitml: %s", e)
    for (git_dir, run_id), w in list(_writers.items()):
        try:
            if not w.closed:
                w.flush(close=True)
        except Exception as e:  # noqa: BLE001 - the live log stays for recovery
            log.warning("gitml: could not commit run %s at exit (%s); its live log is kept", run_id, e)
    write_notes()


# -- recovery of dead writers ------------------------------------------------------


def failed_dir(repo: GitRepo) -> Path:
    return repo.git_dir / names.LIVE_FAILED_DIR


def recover(repo: GitRepo, run_id: str | None = None) -> list[str]:
    """Turn the live logs of dead writers into commits; return the run ids.

    A run left RUNNING with no other live writer is marked KILLED, its
    end time the last event it logged. ``run_id`` limits this to one run.
    A log that cannot be applied now (its run is gone, a ref stays locked)
    is moved to ``.git/gitml/live-failed/`` with a warning, so it never
    blocks other commands; every later recovery tries it again, and its
    data stays on disk until it applies. Lines that do not decode are
    copied to ``<log>.rejected`` beside it and the rest is applied.
    """
    recovered: list[str] = []
    for orphan in livelog.orphan_logs(live_dir(repo), run_id):
        try:
            outcome = _recover_log(repo, orphan.path, orphan.read_lines())
            if outcome is None:
                kept = orphan.set_aside(failed_dir(repo))
                log.warning("gitml: warning: live log %s has no gitml header; set aside as %s", orphan.path.name, kept)
            elif isinstance(outcome, GitmlError):
                kept = orphan.set_aside(failed_dir(repo))
                log.warning("gitml: warning: could not recover the live log of run %s (%s); kept it as %s "
                            "(tried again by every recovery)", orphan.path.name.split(".")[0], outcome, kept)
            else:
                orphan.discard()
                recovered.append(outcome)
        except BaseException:
            orphan.release()
            raise
    if run_id is None:
        recovered += _retry_failed(repo)
    if recovered:
        write_notes(repo)
    return recovered


_failed_warned: set[tuple[str, str]] = set()


def _retry_failed(repo: GitRepo) -> list[str]:
    """Try the logs in ``live-failed/`` again: a lock since removed or a run since pulled lets them apply."""
    done = []
    for orphan in livelog.orphan_logs(failed_dir(repo)):
        try:
            outcome = _recover_log(repo, orphan.path, orphan.read_lines())
            if isinstance(outcome, str):
                orphan.discard()
                done.append(outcome)
                continue
            reason = str(outcome) if outcome is not None else "no gitml header"
            if (str(orphan.path), reason) not in _failed_warned:
                _failed_warned.add((str(orphan.path), reason))
                log.warning("gitml: warning: live log %s still cannot be applied (%s); its data stays there "
                            "until it can (delete it if you do not need it)", orphan.path, reason)
            orphan.release()
        except BaseException:
            orphan.release()
            raise
    return done


def pending_failed(repo: GitRepo) -> list[Path]:
    """The live logs waiting in ``live-failed/``."""
    try:
        return sorted(failed_dir(repo).glob("*.log"))
    except FileNotFoundError:
        return []


def _recover_log(repo: GitRepo, path: Path, lines: list[bytes]) -> str | GitmlError | None:
    """Apply one dead writer's log; return its run id, the error that stopped it, or None (no header)."""
    header = lines[0].decode(errors="replace").split("\t") if lines else []
    if len(header) < 3 or header[0] != LOG_MAGIC or not names.RUN_ID_RE.match(header[1]):
        return None
    log_run_id, writer_id = header[1], header[2]
    keys: set[str] = set()
    events = [decode_event(ln, keys) for ln in lines[1:]]
    bad = [(n, ln) for n, (ln, ev) in enumerate(zip(lines[1:], events), start=2) if ev is None]
    try:
        _recover_one(repo, log_run_id, writer_id, events, path)
    except GitmlError as e:
        return e
    if bad:
        kept = _keep_rejected(repo, path, bad)
        log.warning("gitml: warning: run %s: %d malformed line%s of a dead writer's live log %s set aside in %s; "
                    "the rest was recovered", log_run_id, len(bad), "" if len(bad) == 1 else "s",
                    "was" if len(bad) == 1 else "were", kept)
    return log_run_id


def _keep_rejected(repo: GitRepo, path: Path, bad: list[tuple[int, bytes]]) -> Path:
    target = failed_dir(repo) / (path.name + ".rejected")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "ab") as f:
        f.write(b"".join(b"%d\t%s\n" % (n, ln) for n, ln in bad))
    return target


def _recover_one(repo: GitRepo, run_id: str, writer_id: str, events: list[Event | None], path: Path) -> None:
    ref = names.run_ref(run_id)
    old = repo.ref_target(ref)
    current = read_state(repo, old, run_id)[0] if old else None
    applied = current.writers.get(writer_id, 0) if current else 0
    todo = [ev for ev in events[applied:] if ev is not None]
    if old is None and not todo:
        return  # the writer died before logging anything
    if not todo and current is not None and current.info.get("status") != RunStatus.RUNNING:
        return  # everything is in git already (died between commit and unlink)
    last_ts = max((ev[3] for ev in events if ev is not None and ev[0] == METRIC), default=None)
    end_time = last_ts or int(path.stat().st_mtime * 1000)
    others = [p for p in livelog.live_writers(live_dir(repo), run_id) if p != path]

    def finalize(state: RunState) -> None:
        alive = any(livelog.is_locked(p) for p in others)
        if state.info.get("status") == RunStatus.RUNNING and not alive:
            state.info["status"] = RunStatus.KILLED
            state.info["end_time"] = max(end_time, state.info.get("start_time") or 0)

    commit_events(repo, run_id, todo, writer=(writer_id, len(events), True), finalize=finalize)
