"""Folding finished runs into the ledger, so a repository has a few run refs, not one per run.

A run has its own ref (``refs/gitml/runs/<id>``) while it is live: created,
logged to, flushed, as before. When its last writer closes and its status
is terminal, :func:`fold` moves it into its ledger shard
(:mod:`gitml.store.ledger`) with a compare-and-swap of the shard ref, then
deletes the run ref (compare-and-swap too: a ref that moved meanwhile
stays, for the next fold). Changing a folded run (a tag, a rename, a
delete) gives it its own ref again, based on its ledger entry, until that
writer closes and folds it back.

An entry is replaced by the join of the ledger's copy and the ref's copy
(:func:`gitml.tracking.merge.merge_runs`), which is the ref's own commit
whenever the ref already holds everything the entry has, so a fold never
loses what a pull merged into the ledger meanwhile.

Every step is idempotent: a process killed between the shard's CAS and the
ref's deletion leaves both, readers prefer the ref (the same run), and the
next fold (every search runs one, :func:`fold_pending`) deletes it. That
same function migrates a repository written before the ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from gitml.errors import ConcurrentUpdate, CorruptRun
from gitml.store import ledger as store_ledger
from gitml.store import livelog, names
from gitml.store.repo import CAS_RETRIES, GitRepo
from gitml.tracking import schema
from gitml.tracking.commit import known_state, live_dir
from gitml.tracking.entities import RunStatus
from gitml.tracking.merge import merge_runs
from gitml.tracking.runfiles import read_state

# (git dir, run id) -> a run ref already judged not foldable (live, running or malformed)
# at that commit, so each search does not re-read it.
_judged: dict[tuple[str, str], str] = {}
_judged_lock = threading.Lock()


def fold(repo: GitRepo, run_ids: Iterable[str] | None = None) -> list[str]:
    """Fold the finished runs among ``run_ids`` (all run refs if None) into the ledger.

    A run is folded when no writer on this machine has a live log of it
    and its status is terminal (or the ledger has it already). Returns
    the runs folded.

    Raises:
        ConcurrentUpdate: a ledger shard kept moving for every retry.
    """
    if run_ids is None:
        refs = store_ledger.own_refs(repo)
    else:  # one ref read each, not a listing of every run ref
        refs = {r: oid for r in set(run_ids) if (oid := repo.ref_target(names.run_ref(r))) is not None}
    by_shard: dict[str, dict[str, str]] = {}
    for run_id, oid in refs.items():
        if _foldable(repo, run_id, oid):
            by_shard.setdefault(names.ledger_ref(run_id), {})[run_id] = oid
    folded = []
    for shard, group in sorted(by_shard.items()):
        _fold_shard(repo, shard, group)
        for run_id, oid in sorted(group.items()):
            if repo.cas_ref(names.run_ref(run_id), None, oid):
                folded.append(run_id)
    return folded


def fold_pending(repo: GitRepo) -> list[str]:
    """Fold every run ref that can be folded (and migrate a repository from before the ledger).

    Cheap when there is nothing to do: the run refs that are left are live
    ones, and a run ref already judged at its commit is not read again.
    """
    try:
        put_back(repo)
        return fold(repo)
    except ConcurrentUpdate:
        return []  # another process is folding the same shard; the next call finishes


def put_back(repo: GitRepo) -> list[str]:
    """Runs of this clone that a forced update of a ledger shard dropped, put back; their ids.

    ``git fetch +refs/gitml/*:refs/gitml/*`` replaces a shard with the
    remote's copy, which lacks the runs this clone folded since it last
    synced. Each shard's last own write is kept in a local-only ref
    (``refs/gitml-local/ledger/<h>``); when that is no longer in the
    shard's history, its entries are joined back in (the remote's stay),
    with a warning. A fast-forward (a pull, a plain fetch) needs nothing.
    """
    import logging

    restored: list[str] = []
    for ref, mine in store_ledger.mine_refs(repo).items():
        shard = names.LEDGER_PREFIX + ref[len(names.LEDGER_MINE_PREFIX) :]
        for _ in range(CAS_RETRIES):
            head = repo.ref_target(shard)
            if head == mine or not repo.has_object(mine) or (head is not None and repo.is_ancestor(mine, head)):
                break
            lost = {r: oid for r, oid in store_ledger.changed_entries(repo, head, mine).items() if oid is not None}
            changes = _joined(repo, head, lost)
            commit = store_ledger.write(repo, head, changes, "gitml: put back runs a forced update dropped\n", [mine])
            if store_ledger.move(repo, shard, commit, head):
                if changes:
                    logging.getLogger("gitml").warning(
                        "gitml: warning: %s was replaced by a forced update (git fetch +refs/gitml/*?); "
                        "%d run%s of this clone put back", shard, len(changes), "" if len(changes) == 1 else "s")
                restored += sorted(changes)
                break
    return restored


def _foldable(repo: GitRepo, run_id: str, oid: str) -> bool:
    key = (str(repo.git_dir), run_id)
    if _judged.get(key) == oid:
        return False
    if livelog.live_writers(live_dir(repo), run_id):
        return False  # a writer may still log; it folds the run when it closes
    state = known_state(repo, run_id, oid)
    if state is None:
        try:
            state = read_state(repo, oid, run_id)[0]
        except CorruptRun as e:
            schema.warn_skipped(e, oid, "left out of the ledger")
            state = None
    # A run still RUNNING with no writer here stays a ref (its process may be logging on
    # another machine), unless the ledger has it already (a stale copy: the join decides).
    if state is None or not (RunStatus.is_terminated(str(state.info.get("status")))
                             or store_ledger.lookup_folded(repo, run_id) is not None):
        with _judged_lock:
            if len(_judged) > 10_000:
                _judged.clear()
            _judged[key] = oid
        return False
    return True


def _fold_shard(repo: GitRepo, shard: str, group: dict[str, str]) -> None:
    for _ in range(CAS_RETRIES):
        head = repo.ref_target(shard)
        changes = _joined(repo, head, group)
        if not changes:
            return
        n = len(changes)
        commit = store_ledger.write(repo, head, changes, f"gitml: fold {n} run{'s' if n != 1 else ''}\n")
        if store_ledger.move(repo, shard, commit, head):
            return
    raise ConcurrentUpdate(f"Gave up updating {shard} after {CAS_RETRIES} attempts")


def _joined(repo: GitRepo, head: str | None, runs: dict[str, str]) -> dict[str, str | None]:
    """The entries that change when ``runs`` (run id -> commit) are joined into shard commit ``head``."""
    changes: dict[str, str | None] = {}
    for run_id, oid in sorted(runs.items()):
        current = store_ledger.lookup(repo, head, run_id) if head else None
        new = oid if current is None else _join(repo, run_id, current, oid)
        if new != current:
            changes[run_id] = new
    return changes


def _join(repo: GitRepo, run_id: str, entry: str, ref: str) -> str:
    """The ledger entry for a run whose ledger copy is ``entry`` and whose own ref is at ``ref``."""
    if entry == ref:
        return ref
    try:
        return merge_runs(repo, entry, ref, run_id)
    except CorruptRun:
        return ref  # the ledger's copy is the malformed one (ours were checked): the ref repairs it


def forget() -> None:
    """Drop the judgements (tests reset between repositories with the same paths)."""
    with _judged_lock:
        _judged.clear()
