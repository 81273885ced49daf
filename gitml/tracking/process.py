"""This process's writers: the registry, the background flusher, fork and exit.

One ``RunWriter`` per (repository, run) per process, created on first use.
A daemon thread flushes writers with pending events every ``flush_interval``
seconds, or sooner when a writer has many events waiting (``RunWriter``
wakes it), and then writes the queued notes. Before a fork, pending events are
committed so the child finds the runs in git; the child drops the parent's
writers and gets its own on demand. At exit, the exit hooks run (the fluent
API ends its active runs), then every writer is flushed and closed and the
queued notes are written.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gitml import settings
from gitml.store.repo import GitRepo
from gitml.tracking import validation
from gitml.tracking.events import INFO, TAG, Event
from gitml.tracking.notes import write_notes
from gitml.tracking.runfiles import RunState, apply_events
from gitml.tracking.writer import RunWriter

log = logging.getLogger("gitml")

_writers: dict[tuple[str, str], RunWriter] = {}
_registry_lock = threading.Lock()
_flusher: threading.Thread | None = None
_wake = threading.Event()  # set: the flusher flushes now rather than at the end of its interval
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
            flusher = _flusher is not None and _flusher.is_alive()
            w = RunWriter(repo, run_id, wake=_wake.set if flusher else None)
            _writers[key] = w
        return w


def local_writer(repo: GitRepo, run_id: str) -> RunWriter | None:
    """This process's open writer for ``run_id``, if it has one."""
    w = _writers.get((str(repo.git_dir), run_id))
    return w if w is not None and not w.closed else None


def create_run(repo: GitRepo, info: dict[str, Any], tags: Mapping[str, object]) -> tuple[RunWriter, RunState]:
    """Start a run from its info and first tags.

    The run exists in its writer's live log at once and in git at the first
    flush (end_run, a read from this process, the background flusher, or a
    fork). Returns the writer and the run's state as created.
    """
    events: list[Event] = [Event(INFO, value=info)]
    for k, v in tags.items():  # all checked before anything is logged: a refused tag makes no run
        events.append(Event(TAG, validation.validate_tag_key(k), validation.validate_tag_value(k, v), 0))
    w = get_writer(repo, info["run_id"])
    w.minted = True
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


def discard_writer(repo: GitRepo, run_id: str) -> bool:
    """Retire this process's writer for ``run_id`` without a commit, if it logged nothing
    uncommitted (a change refused before it was logged); False if it has events to commit."""
    key = (str(repo.git_dir), run_id)
    w = _writers.get(key)
    if w is None:
        return True
    if not w.discard():
        return False
    _writers.pop(key, None)
    return True


def close_writers() -> None:
    """Flush and retire every writer of this process, leaving the registry empty.

    What a test calls between tests; the exit hook does the same and more.
    """
    for key, w in list(_writers.items()):
        if not w.closed:
            w.flush(close=True)
        _writers.pop(key, None)


def flush_all(repo: GitRepo | None = None) -> None:
    """Commit every pending event of this process (of one repo, or all)."""
    for (git_dir, _), w in list(_writers.items()):
        if repo is None or git_dir == str(repo.git_dir):
            if w.pending:
                w.flush()
    write_notes(repo)


# -- the background flusher --------------------------------------------------------


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
        _wake.wait(interval)
        _wake.clear()
        if _stopping:
            return  # the exit hook does the last flush
        for w in list(_writers.values()):
            if w.pending and not w.closed:
                try:
                    w.flush()
                except Exception as e:  # noqa: BLE001 - keep flushing others; data is in the live log
                    log.warning("gitml: background flush of run %s failed: %s", w.run_id, e)
        write_notes()


# -- fork and exit -------------------------------------------------------------------


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
    # The parent's writers, locks and flusher are not ours; the child gets
    # fresh writers on demand. (The note queue and the recent states reset
    # themselves: see notes.py and commit.py.)
    global _flusher, _registry_lock, _pid, _wake
    for w in _writers.values():
        w.abandon()
    _writers.clear()
    _flusher = None
    _wake = threading.Event()
    _registry_lock = threading.Lock()
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
