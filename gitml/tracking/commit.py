"""Committing events to a run: the compare-and-swap loop on the run ref.

Several writers may log to one run (two processes, or a process and its
forked child). Each commit is a compare-and-swap of the run ref; a lost race
re-reads the run and re-applies the events, which are data, not a diff, so
re-applying them to the other writer's newer state merges them. Each run
commit records in ``Gitml-Writer`` trailers how many events of each writer's
live log it holds, the closing writer's included, which makes recovery of a
dead writer's log exact and idempotent: the events after that count are the
ones git does not have yet, even if the writer died between its last commit
and deleting its log.

This module also keeps the recent-state cache: the last state this process
wrote for each run, so the query index can take it instead of reading the
commit back from git.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from gitml.errors import ConcurrentUpdate, RunNotFound
from gitml.store import ledger, livelog, names
from gitml.store.repo import CAS_RETRIES, GitRepo
from gitml.tracking import notes
from gitml.tracking.entities import RunStatus
from gitml.tracking.events import INFO, Event
from gitml.tracking.runfiles import (
    PendingPoint,
    RunState,
    apply_events,
    apply_metrics,
    metric_chunk_changes,
    read_state,
)


class WriterMark(NamedTuple):
    """What a commit records for the writer making it (as its ``Gitml-Writer`` trailer)."""

    writer_id: str
    #: events of that writer's live log the commit holds
    seq: int
    #: the writer's last commit (its count is recorded all the same; see the module doc)
    closing: bool


class RunCommit(NamedTuple):
    """A run commit this process wrote: its oid, the state it holds, its tree."""

    commit: str
    state: RunState
    tree: str


def live_dir(repo: GitRepo) -> Path:
    """The directory of this repository's live logs."""
    return repo.git_dir / names.LIVE_DIR


def commit_events(
    repo: GitRepo,
    run_id: str,
    events: list[Event],
    *,
    metrics: dict[str, list[PendingPoint]] | None = None,
    writer: WriterMark | None = None,
    finalize: Callable[[RunState], None] | None = None,
    cache: RunCommit | None = None,
) -> RunCommit:
    """Apply ``events`` to run ``run_id`` and move its ref, compare-and-swap.

    ``metrics`` are more metric points by key, (value, timestamp, step,
    line) each, kept apart by the writer so that many points take the fast
    path. ``writer`` marks the commit with that writer's count of applied
    events. ``finalize`` may adjust the state after the events (recovery
    sets the final status there). ``cache`` is the commit this process last
    wrote; it saves re-reading git when nobody else wrote since.
    Returns the new commit.

    Raises:
        RunNotFound: the run does not exist and ``events`` do not create it.
        ConcurrentUpdate: the ref kept moving for every retry.
    """
    ref = names.run_ref(run_id)
    shard = names.ledger_ref(run_id)
    for _ in range(CAS_RETRIES):
        old = repo.ref_target(ref)
        shard_head = repo.ref_target(shard) if old is None else None
        # A run folded into the ledger gets its own ref again, based on its entry.
        base = old if old is not None else ledger.lookup(repo, shard_head, run_id) if shard_head else None
        if base is None:
            if not events or events[0].kind != INFO or "run_id" not in events[0].value:
                raise RunNotFound(f"Run {run_id!r} not found in {repo.git_dir}")
            state, base_tree = RunState(info={}), None
        elif cache is not None and cache.commit == base:
            state, base_tree = cache.state.copy(), cache.tree
        else:
            state, base_tree = read_state(repo, base, run_id)
        was = (state.info.get("status"), state.info.get("lifecycle_stage"))
        points = apply_events(state, events)
        if metrics:
            for key, new in apply_metrics(state, metrics).items():
                points.setdefault(key, []).extend(new)
        if finalize is not None:
            finalize(state)
        if writer is not None:
            state.writers[writer.writer_id] = writer.seq
        _prune_writers(repo, state, writer.writer_id if writer is not None else None)
        changes: dict[str, bytes | None] = dict(state.files())
        changes.update(metric_chunk_changes(repo, base_tree, points, state.chunks))
        source = state.info.get("source") or {}
        parents = [source["commit"]] if source.get("commit") else []
        straight = _straight_to_ledger(repo, state, old, writer)
        with repo.batch():  # the run's objects (and the ledger's) as one pack
            tree = repo.update_tree(base_tree, changes)
            commit = repo.write_commit(tree, parents, state.commit_message())
            if straight:
                # The last writer of a run that ends here and has no ref of its own: the commit
                # goes into the ledger directly (what creating the ref and folding it would do,
                # without writing and deleting the ref).
                folded = ledger.write(repo, shard_head, {run_id: commit}, "gitml: fold 1 run\n")
        if straight:
            moved = ledger.move(repo, shard, folded, shard_head)
        else:
            moved = repo.cas_ref(ref, commit, old)
        if moved:
            written = RunCommit(commit, state, tree)
            _remember(repo, run_id, written)
            now = (state.info.get("status"), state.info.get("lifecycle_stage"))
            if now != was and RunStatus.is_terminated(str(now[0])) or (
                now[1] != was[1] and was[1] is not None
            ):
                notes.queue_note(repo, state)
            return written
    raise ConcurrentUpdate(f"Gave up updating run {run_id} after {CAS_RETRIES} attempts")


def _straight_to_ledger(repo: GitRepo, state: RunState, own_ref: str | None, writer: WriterMark | None) -> bool:
    if own_ref is not None or writer is None or not writer.closing:
        return False
    if not RunStatus.is_terminated(str(state.info.get("status"))):
        return False
    mine = livelog.log_path(live_dir(repo), state.run_id, writer.writer_id)
    return all(p == mine for p in livelog.live_writers(live_dir(repo), state.run_id))


def _prune_writers(repo: GitRepo, state: RunState, keep: str | None) -> None:
    # A writer's count matters only while its log exists here; drop the
    # others so finished runs carry just the last writer's trailer.
    if len(state.writers) <= 1:
        return
    for writer_id in list(state.writers):
        if writer_id != keep and not livelog.log_path(live_dir(repo), state.run_id, writer_id).exists():
            del state.writers[writer_id]


# -- the recent-state cache ---------------------------------------------------------

# (git dir, run id) -> the last commit this process wrote for that run;
# bounded, oldest dropped.
_recent: dict[tuple[str, str], RunCommit] = {}
_RECENT_MAX = 50_000


def _remember(repo: GitRepo, run_id: str, written: RunCommit) -> None:
    if len(_recent) >= _RECENT_MAX:
        _recent.pop(next(iter(_recent)))
    _recent[(str(repo.git_dir), run_id)] = written


def known_state(repo: GitRepo, run_id: str, commit: str) -> RunState | None:
    """The state of run commit ``commit`` if this process wrote it, else None."""
    hit = _recent.get((str(repo.git_dir), run_id))
    return hit.state if hit is not None and hit.commit == commit else None


def _forget_recent() -> None:
    # A forked child's states are the parent's; the child's writes start afresh.
    _recent.clear()


os.register_at_fork(after_in_child=_forget_recent)
