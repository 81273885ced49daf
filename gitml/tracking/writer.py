"""RunWriter: one process logging to one run.

Each call validates, appends one line to the writer's live log (one
``write(2)``, so a SIGKILL right after the call loses nothing) and queues
the event in memory. The run commit is rewritten from the queue on
``flush()`` (see ``commit.commit_events``): at ``end_run``, on explicit
flushes, before this process reads runs, and every ``flush_interval``
seconds from the background flusher (``process``, which also keeps this
process's writers).

A long run stays bounded. Every MAX_PENDING events waiting in memory wake
the flusher early, and twice as many make the logging call flush itself
(likewise every MAX_PENDING events when there is no flusher), so at most
2 * MAX_PENDING events wait in memory. After a flush that leaves the live
log longer than ROTATE_BYTES, the log starts again with only the events git
does not hold yet. Each flush extends the last metric chunk of each key
from the writer's copy of it (``RunState.chunks``) rather than reading it
back from git.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from gitml.store import ledger, livelog
from gitml.store.repo import GitRepo
from gitml.tracking import validation
from gitml.tracking.commit import RunCommit, WriterMark, commit_events, live_dir
from gitml.tracking.datasets import InputEntry
from gitml.tracking.entities import RunStatus
from gitml.tracking.ledger import fold as fold_ledger
from gitml.tracking.events import ARTIFACT, DELETE_TAG, INFO, INPUT, PARAM, TAG, Event, encode_event, log_header
from gitml.tracking.runfiles import PendingPoint, RunState


log = logging.getLogger("gitml")

#: Events waiting in memory that wake the background flusher; twice as many, or this many
#: with no flusher, are flushed by the logging call. A metric point waiting costs ~250 bytes.
MAX_PENDING = 50_000
#: A live log longer than this after a flush starts again with the events not committed yet.
ROTATE_BYTES = 4 << 20


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RunWriter:
    """This process's handle for logging into one run."""

    def __init__(self, repo: GitRepo, run_id: str, wake: Callable[[], None] | None = None) -> None:
        """``wake`` asks the background flusher to flush now (None: there is no flusher)."""
        self.repo = repo
        self.run_id = run_id
        self.writer_id = uuid.uuid4().hex[:16]
        header = log_header(run_id, self.writer_id, os.getpid())
        self.log = livelog.LiveLog.create(live_dir(repo), run_id, self.writer_id, header)
        self._fd = self.log.fd
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # key -> pending points, (value, timestamp, step, chunk-file line) each: plain
        # tuples, because log_metric's hot path makes one per call
        self._metrics: dict[str, list[PendingPoint]] = {}
        self._events: list[Event] = []
        self._seq = 0
        self._committed_seq = 0
        self._metric_keys: set[str] = set()
        self._params: dict[str, str] = {}
        self._cache: RunCommit | None = None  # the last commit this writer made
        # The run was created by this writer (``process.create_run``, a new uuid4 id): until its
        # first commit, nothing in git can hold a param of it, so the rewrite check asks no one.
        self.minted = False
        self._wake = wake
        self._wake_at = MAX_PENDING  # the event count at which _backlog acts next
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
            self._seq = seq = self._seq + 1
        if seq >= self._wake_at:
            self._backlog()

    def log_param(self, key: str, value: object) -> str:
        text = self.check_param(key, value)
        if key in self._params:
            return text  # the same value again: nothing to log
        self._params[key] = text
        self.append(Event(PARAM, key, text))
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
        self.append(Event(TAG, key, validation.validate_tag_value(key, value), _now_ms()))

    def delete_tag(self, key: str) -> None:
        validation.validate_tag_key(key)
        self.append(Event(DELETE_TAG, key, timestamp=_now_ms()))

    def add_artifact(self, path: str, md5: str, size: int) -> None:
        """Record an artifact already stored in the content store."""
        self.append(Event(ARTIFACT, path, md5, _now_ms(), size=size))

    def add_input(self, entry: InputEntry) -> None:
        """Record a dataset input (an entry ``datasets.entry`` made)."""
        self.append(Event(INPUT, value=entry))

    def set_info(self, **fields: object) -> None:
        self.append(Event(INFO, value=fields))

    def append(self, ev: Event) -> None:
        """Queue one event and write it to the live log."""
        line = encode_event(ev)
        with self._lock:
            self.log.append(line)
            self._events.append(ev)
            self._seq = seq = self._seq + 1
        if seq >= self._wake_at:
            self._backlog()

    def _known_param(self, key: str) -> str | None:
        if key in self._params:
            return self._params[key]
        if self._cache is None and not self.minted and ledger.run_commit(self.repo, self.run_id) is not None:
            self.flush()
        if self._cache is not None:
            value = self._cache.state.params.get(key)
            if value is not None:
                self._params[key] = value
            return value
        return None

    # committing ------------------------------------------------------------

    def _backlog(self) -> None:
        """MAX_PENDING more events wait in memory: have them committed, so memory stays bounded."""
        waiting = self._seq - self._committed_seq
        if self._wake is not None and waiting < 2 * MAX_PENDING:
            self._wake_at = self._seq + MAX_PENDING // 4  # asked again if the flusher has not run by then
            self._wake()
            return
        self._wake_at = self._seq + MAX_PENDING  # a flush that fails is not retried on every call
        try:
            self.flush()
        except Exception as e:  # noqa: BLE001 - as the background flusher: the events are in the live log
            log.warning("gitml: flush of run %s failed (%s); its events stay in its live log", self.run_id, e)

    @property
    def pending(self) -> bool:
        return self._seq != self._committed_seq

    def flush(self, *, close: bool = False, sync: bool = False) -> RunState | None:
        """Commit queued events to the run ref; ``close`` also retires the writer."""
        with self._flush_lock:
            if self.closed:
                return self._cache.state if self._cache else None
            with self._lock:
                metrics, self._metrics = self._metrics, {}
                events, self._events = self._events, []
                seq = self._seq
                logged = self.log.size()  # where the lines after ``seq`` begin
            if seq == self._committed_seq and not close and self._cache is not None:
                return self._cache.state
            if close and self._cache is not None:
                self._cache.state.chunks = None  # the last state (kept for the index) keeps no chunks
            try:
                self._cache = commit_events(
                    self.repo,
                    self.run_id,
                    events,
                    metrics=metrics,
                    writer=WriterMark(self.writer_id, seq, close),
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
            self._wake_at = seq + MAX_PENDING
            if not close:
                if self._cache.state.chunks is None:
                    self._cache.state.chunks = {}  # from now on each flush extends its own chunks
                if logged > ROTATE_BYTES:
                    self._rotate(seq, logged)
            if sync:
                self.log.sync()
            if close:
                self.log.close(remove=True)
                self.closed = True
                if RunStatus.is_terminated(str(self._cache.state.info.get("status"))):
                    fold_ledger(self.repo, [self.run_id])
            return self._cache.state

    def _rotate(self, committed: int, keep_from: int) -> None:
        """Start the live log again after its first ``committed`` events (which git holds now)."""
        with self._lock:
            if self.log.owed:
                return  # a torn line waits for its mark: keep the log as it is
            header = log_header(self.run_id, self.writer_id, os.getpid(), base=committed)
            try:
                self.log.rotate(header, keep_from)
            except OSError as e:
                log.warning("gitml: could not start run %s's live log again (%s); it keeps growing",
                            self.run_id, e)
                return
            self._fd = self.log.fd

    def discard(self) -> bool:
        """Retire the writer without a commit if it logged nothing since its last one; False (and
        nothing done) if it has events to commit."""
        with self._flush_lock:
            if self.closed:
                return True
            if self.pending:
                return False
            self.log.close(remove=True)
            self.closed = True
            return True

    def state(self) -> RunState:
        """The run as this process sees it now (flushes first)."""
        state = self.flush()
        assert state is not None
        return state

    def abandon(self) -> None:
        """Drop this writer in a forked child: close the child's copy of the log fd, commit nothing.

        The log and its lock stay the parent's: closing the copy keeps the
        parent's death visible (its ``flock`` goes when the parent's fd does).
        """
        try:
            os.close(self.log.fd)
        except OSError:
            pass
        self.log.fd = -1
        self.closed = True
