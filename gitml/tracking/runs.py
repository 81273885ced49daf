"""The tracking domain: create, end, read, search, delete runs in a repository.

The fluent API (``gitml.start_run`` ...), ``gitml.Client`` and the CLI are all
thin shells over these functions.
"""

from __future__ import annotations

import getpass
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gitml import settings
from gitml.errors import AmbiguousRunId, CorruptRun, InvalidValue, RunNotActive, RunNotFound
from gitml.store import ledger, names
from gitml.store.repo import GitRepo
from gitml.tracking import experiments, notes, process, recovery, schema, writer
from gitml.tracking.commit import commit_events, live_dir
from gitml.tracking.entities import LifecycleStage, Metric, Run, RunStatus, ViewType
from gitml.tracking.ledger import fold_pending
from gitml.tracking.events import INFO, Event
from gitml.tracking.runfiles import (
    RUN_NAME_TAG,
    RunState,
    read_metric_columns,
    read_metric_history,
    read_metric_tokens,
    read_state,
)

if TYPE_CHECKING:
    import pandas

    from gitml.store.content import Progress
    from gitml.store.snapshot import Snapshot
    from gitml.tracking.index import RunIndex  # loaded by the first read: logging alone (the hook) needs no SQLite

#: MLflow's tag for a run's description (its UI's "Description" box).
DESCRIPTION_TAG = "mlflow.note.content"

_T = TypeVar("_T")

_repos: dict[tuple[str, int], GitRepo] = {}
_indexes: dict[tuple[str, int], RunIndex] = {}
_lock = threading.Lock()


_default_location: str | None = None


def set_default_location(path: str | None) -> None:
    """Where ``open_repo()`` looks when given no path (``set_tracking_uri``)."""
    global _default_location
    _default_location = path


def open_repo(path: str | os.PathLike[str] | None = None) -> GitRepo:
    """The repository gitml tracks into.

    ``path``, else the tracking URI set in this process, else $GITML_REPO,
    else the repository around the current directory.

    Raises:
        NotARepository: no git repository there.
    """
    settings.check_environment()
    if path is None:
        path = _default_location or settings.get("repo") or None
    start = str(Path(path).resolve()) if path is not None else os.getcwd()
    key = (start, os.getpid())
    repo = _repos.get(key)
    if repo is None:
        with _lock:
            repo = _repos.get(key) or GitRepo.discover(start)
            _repos[key] = repo
    return repo


def index_for(repo: GitRepo) -> RunIndex:
    key = (str(repo.git_dir), os.getpid())
    idx = _indexes.get(key)
    if idx is None:
        with _lock:
            from gitml.tracking.index import RunIndex

            idx = _indexes.get(key) or RunIndex(repo)
            _indexes[key] = idx
    return idx


_read_only: set[str] = set()


def open_read_only(path: str | os.PathLike[str] | None = None) -> GitRepo:
    """The repository for a reader that must not write to git (the web viewer).

    Reads through this process never recover dead runs: recovery turns a
    crashed run's live log into a run commit and a note, a write that the
    next gitml command that writes will do. Derived caches (the SQLite
    index) are still refreshed.
    """
    repo = open_repo(path)
    _read_only.add(str(repo.git_dir))
    return repo


def _recover(repo: GitRepo, run_id: str | None = None) -> None:
    if str(repo.git_dir) not in _read_only:
        recovery.recover(repo, run_id)


def has_live_writer(repo: GitRepo, run_id: str) -> bool:
    """True while some process holds a live log of the run open (it is being logged right now)."""
    from gitml.store import livelog

    return any(livelog.is_locked(p) for p in livelog.live_writers(live_dir(repo), run_id))


_synced: ContextVar[dict[str, RunIndex] | None] = ContextVar("gitml_synced_once", default=None)


def sync_index(repo: GitRepo) -> RunIndex:
    """Commit this process's pending events, recover dead runs, fold finished ones, refresh the index.

    Inside ``synced_once``, only the first call for a repository does that.
    """
    held = _synced.get()
    if held is not None and str(repo.git_dir) in held:
        return held[str(repo.git_dir)]
    process.flush_all(repo)
    _recover(repo)
    fold_pending(repo)
    idx = index_for(repo)
    idx.refresh()
    if held is not None:
        held[str(repo.git_dir)] = idx
    return idx


@contextmanager
def synced_once() -> Iterator[None]:
    """Sync the index once for several reads that make one answer (a page of the viewer asks the
    index for its runs, their nested runs and the keys: ~0.5 ms a sync at 10k runs). Reads only:
    a write inside the block is not seen by the reads after it."""
    token = _synced.set({})
    try:
        yield
    finally:
        _synced.reset(token)


# -- creating and ending runs -------------------------------------------------------

_ADJECTIVES = "amber bold brave calm clever eager fast gentle keen lucky merry noble quick quiet rare shy swift vivid warm wise".split()
_NOUNS = "ant bat bear crab deer dove eel fox frog hawk lark lynx moth newt owl seal slug swan toad wolf".split()


def generate_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(100, 999)}"


def _source_tags(repo: GitRepo, snap: Snapshot) -> dict[str, str]:
    tags = {
        "mlflow.user": _user(repo),
        "mlflow.source.name": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "<console>",
        "mlflow.source.type": "LOCAL",
    }
    if snap.head:
        tags["mlflow.source.git.commit"] = snap.head
    if snap.branch:
        tags["mlflow.source.git.branch"] = snap.branch
    tags["mlflow.source.git.dirty"] = "true" if snap.dirty else "false"
    if snap.commit:
        tags["gitml.source.snapshot"] = snap.commit
    return tags


def _user(repo: GitRepo) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return repo.user_name() or "unknown"


def start_new_run(
    repo: GitRepo,
    experiment_id: str,
    run_name: str | None = None,
    tags: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    start_time: int | None = None,
    description: str | None = None,
    snapshot: Snapshot | None = None,
    entry_point: str | None = None,
    user_id: str | None = None,
) -> tuple[writer.RunWriter, RunState]:
    """Create a run (status RUNNING); return this process's writer for it and its state.

    ``snapshot`` is the run's source (default: a snapshot of the work tree
    now); ``entry_point`` what ran (default: the script's name); ``user_id``
    who ran it (default: the ``mlflow.user`` tag, else this user).

    Raises:
        ExperimentNotFound; ExperimentNotActive (it is deleted);
        InvalidValue (``run_name`` and an ``mlflow.runName`` tag disagree, as in MLflow).
    """
    from gitml.store.snapshot import take_snapshot

    if experiment_id != experiments.DEFAULT_ID or experiments.exists(repo, experiment_id):
        exp = experiments.get_experiment(repo, experiment_id)  # raises ExperimentNotFound with the details
        if exp.lifecycle_stage != LifecycleStage.ACTIVE:
            raise experiments.ExperimentNotActive(
                f"Cannot start a run in experiment {experiment_id} ({exp.name!r}): it is deleted; restore it first")
    user_tags = {str(k): v for k, v in (tags or {}).items()}
    tag_name = user_tags.get("mlflow.runName")
    if run_name and tag_name is not None and str(tag_name) != run_name:
        from gitml.errors import InvalidValue

        raise InvalidValue(f"Both 'run_name' ({run_name!r}) and the 'mlflow.runName' tag ({tag_name!r}) are given, "
                           "with different values")
    snap = snapshot or take_snapshot(repo, settings.get("snapshot_max_file_size", repo))
    run_id = uuid.uuid4().hex
    run_name = run_name or tag_name or generate_run_name()
    all_tags: dict[str, Any] = _source_tags(repo, snap)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    if description:
        all_tags[DESCRIPTION_TAG] = description
    all_tags.update(user_tags)
    all_tags[RUN_NAME_TAG] = run_name
    info = {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "run_name": run_name,
        "status": RunStatus.RUNNING,
        "lifecycle_stage": LifecycleStage.ACTIVE,
        "user_id": user_id or all_tags["mlflow.user"],
        "start_time": start_time if start_time is not None else int(time.time() * 1000),
        "end_time": None,
        "parent_run_id": parent_run_id,
        "source": {
            "commit": snap.commit,
            "head": snap.head,
            "branch": snap.branch,
            "dirty": snap.dirty,
            "skipped": snap.skipped,
            "entry_point": entry_point or all_tags["mlflow.source.name"],
        },
    }
    return process.create_run(repo, info, all_tags)


def resume_run(repo: GitRepo, run_id: str) -> writer.RunWriter:
    """Reopen an existing run for logging (status back to RUNNING, as MLflow does).

    Raises:
        RunNotFound, RunNotActive (the run is deleted).
    """
    run = _loggable_run(repo, run_id)
    w = process.get_writer(repo, run.info.run_id)
    if run.info.status != RunStatus.RUNNING:
        w.set_info(status=RunStatus.RUNNING, end_time=None)
        w.flush()
    return w


def end_run(repo: GitRepo, run_id: str, status: str = RunStatus.FINISHED, end_time: int | None = None) -> RunState | None:
    """Set a run's final status and commit everything this process logged to it; return the run as committed."""
    if status not in RunStatus.ALL:
        from gitml.errors import InvalidValue

        raise InvalidValue(f"Invalid run status {status!r}; expected one of {', '.join(RunStatus.ALL)}")
    w = process.local_writer(repo, run_id)  # ours already: no need to look it up (or flush)
    if w is None:
        run_id = resolve_run_id(repo, run_id)
        w = process.get_writer(repo, run_id)
    end = end_time if end_time is not None else int(time.time() * 1000)
    w.set_info(status=status, end_time=end if RunStatus.is_terminated(status) else None)
    recovery.recover(repo, run_id)  # fold in logs of dead helpers (e.g. forked workers) first
    return process.close_writer(repo, run_id)


def writer_for_existing(repo: GitRepo, run_id: str) -> writer.RunWriter:
    """This process's writer for a run that must already exist and not be deleted."""
    local = process.local_writer(repo, run_id)
    if local is not None:
        return local  # fast path: this process is already logging to it
    return process.get_writer(repo, _loggable_run(repo, run_id).info.run_id)


def _loggable_run(repo: GitRepo, run_id: str) -> Run:
    """Run ``run_id``, checked to be one logging may write to.

    Raises:
        RunNotFound, AmbiguousRunId, RunNotActive (the run is deleted).
    """
    run = get_run(repo, run_id)
    if run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise RunNotActive(f"Run {run.info.run_id} is deleted; restore it before logging to it")
    return run


def edit_run(repo: GitRepo, run_id: str, edit: Callable[[Run, writer.RunWriter], _T]) -> tuple[Run, _T]:
    """Change an existing run through this process's writer and commit the change to git now.

    ``edit`` gets the run as stored (to check the change against) and the
    writer, on which it logs as ``gitml.Client`` does; it should raise before
    it logs anything. A writer this process was already using for the run is
    flushed and kept; otherwise the writer is closed afterwards, as when a
    separate process logs to a run and exits (``gitml runs tag``). Returns
    the run as committed and what ``edit`` returned.

    Raises:
        RunNotFound, AmbiguousRunId, RunNotActive (the run is deleted), and what ``edit`` raises.
    """
    run = _loggable_run(repo, run_id)
    full = run.info.run_id
    kept = process.local_writer(repo, full) is not None
    w = process.get_writer(repo, full)
    try:
        result = edit(run, w)
    except BaseException:
        # A change refused before it was logged leaves no commit behind; one logged in part is
        # committed, as the same calls through gitml.Client would be.
        if not kept and not process.discard_writer(repo, full):
            process.close_writer(repo, full)
        raise
    if kept:
        w.flush()
    else:
        process.close_writer(repo, full)
    return get_run(repo, full), result


def set_run_tag(repo: GitRepo, run_id: str, key: str, value: object) -> Run:
    """Set tag ``key`` of a run and commit it (``Client.set_tag``, committed at once); return the run.

    Raises:
        RunNotFound, AmbiguousRunId, RunNotActive, InvalidName, InvalidValue.
    """
    return edit_run(repo, run_id, lambda run, w: w.set_tag(key, value))[0]


def delete_run_tag(repo: GitRepo, run_id: str, key: str) -> Run:
    """Delete tag ``key`` of a run and commit it (``Client.delete_tag``, committed at once); return the run.

    Raises:
        RunNotFound, AmbiguousRunId, RunNotActive, TagNotFound (the run has no such tag).
    """
    def delete(run: Run, w: writer.RunWriter) -> None:
        if key not in run.data.tags:
            raise experiments.TagNotFound(f"Run {run.info.run_id} has no tag {key!r}")
        w.delete_tag(key)

    return edit_run(repo, run_id, delete)[0]


def rename_run(repo: GitRepo, run_id: str, name: str) -> Run:
    """Rename a run (its ``mlflow.runName`` tag, as ``Client.update_run(name=...)``); return the run.

    The note on the run's source commit shows the new name at once.

    Raises:
        RunNotFound, AmbiguousRunId, RunNotActive, InvalidValue (an empty name).
    """
    if not str(name).strip():
        raise InvalidValue("A run name cannot be empty")
    run, _ = edit_run(repo, run_id, lambda run, w: w.set_tag(RUN_NAME_TAG, name))
    if run.commit is not None and RunStatus.is_terminated(run.info.status):
        # A finished run's note line holds its name; live runs get theirs when they end.
        notes.queue_note(repo, read_state(repo, run.commit, run.info.run_id)[0])
        notes.write_notes(repo)
    return run


def describe_run(repo: GitRepo, run_id: str, text: str) -> Run:
    """Set a run's description (MLflow's ``mlflow.note.content`` tag); ``""`` removes it. Returns the run.

    Raises:
        RunNotFound, AmbiguousRunId, RunNotActive, InvalidValue (too long).
    """
    def describe(run: Run, w: writer.RunWriter) -> None:
        if text:
            w.set_tag(DESCRIPTION_TAG, text)
        elif DESCRIPTION_TAG in run.data.tags:
            w.delete_tag(DESCRIPTION_TAG)

    return edit_run(repo, run_id, describe)[0]


def set_lifecycle(repo: GitRepo, run_id: str, stage: str) -> None:
    """Soft-delete (``deleted``) or restore (``active``) a run, as MLflow does."""
    run_id = resolve_run_id(repo, run_id)
    process.flush_all(repo)
    # lifecycle_time lets a merge of two clones' copies keep the later change
    event = Event(INFO, value={"lifecycle_stage": stage, "lifecycle_time": int(time.time() * 1000)})
    commit_events(repo, run_id, [event])
    notes.write_notes(repo)


def set_experiment_lifecycle(repo: GitRepo, experiment_id: str, stage: str) -> int:
    """Delete (``deleted``) or restore (``active``) an experiment and every run in it, as MLflow does.

    Returns how many runs changed.

    Raises:
        ExperimentNotFound: no such experiment, or it is in ``stage`` already.
    """
    experiments.set_lifecycle(repo, experiment_id, stage)
    idx, ids = _search_ids(repo, [str(experiment_id)], None, ViewType.ALL, None)
    changed = 0
    now = int(time.time() * 1000)
    for run in idx.load(ids):
        if run.info.lifecycle_stage != stage:
            commit_events(repo, run.info.run_id, [Event(INFO, value={"lifecycle_stage": stage, "lifecycle_time": now})])
            changed += 1
    notes.write_notes(repo)
    return changed


# -- reading -------------------------------------------------------------------------


def resolve_run_id(repo: GitRepo, run_id: str) -> str:
    """The full run id for ``run_id`` or a unique prefix of it (at least 4 chars).

    Raises:
        RunNotFound, AmbiguousRunId.
    """
    run_id = str(run_id).strip().lower()
    if names.RUN_ID_RE.match(run_id):
        local = process.local_writer(repo, run_id)
        if local is not None:
            local.flush()  # a run this process started may not be in git yet
        if ledger.run_commit(repo, run_id) is None:
            _recover(repo)
            if ledger.run_commit(repo, run_id) is None:
                raise RunNotFound(f"Run {run_id!r} not found in {repo.git_dir}")
        return run_id
    if len(run_id) < 4 or any(c not in "0123456789abcdef" for c in run_id):
        raise RunNotFound(f"Run {run_id!r} not found: a run id is 32 hex digits (or a unique prefix of 4+)")
    matches = sync_index(repo).run_ids_with_prefix(run_id)
    if not matches:
        raise RunNotFound(f"Run {run_id!r} not found in {repo.git_dir}")
    if len(matches) > 1:
        raise AmbiguousRunId(f"Run id prefix {run_id!r} matches {len(matches)} runs: {', '.join(m[:12] for m in matches[:5])}...")
    return matches[0]


def get_run(repo: GitRepo, run_id: str) -> Run:
    """The run as stored in git, including what this process has not flushed yet.

    Raises:
        RunNotFound, AmbiguousRunId.
    """
    run_id = resolve_run_id(repo, run_id)
    commit = ledger.run_commit(repo, run_id)
    if commit is None:
        raise RunNotFound(f"Run {run_id!r} not found in {repo.git_dir}")
    return read_state(repo, commit, run_id)[0].to_run(commit)


def metric_history(repo: GitRepo, run_id: str, key: str) -> list[Metric]:
    """Every point logged for metric ``key`` of the run."""
    run = get_run(repo, run_id)
    return read_metric_history(repo, repo.commit_info(run.commit).tree, key)  # type: ignore[arg-type]


def metric_tokens(repo: GitRepo, run: Run, key: str) -> tuple[list[str], list[str], list[str]]:
    """The history of ``key`` as (steps, timestamps, values) text tokens, in logging order.

    The tokens are what gitml writes: integers, and ``repr(float)`` values
    (JSON numbers, or ``nan``/``inf``/``-inf``). Stored text in another form
    is parsed and written out that way.

    Raises:
        InvalidValue: a stored line is not three numbers.
    """
    tree = repo.commit_info(run.commit).tree  # type: ignore[arg-type]
    tokens = read_metric_tokens(repo, tree, key)
    if tokens is None:
        steps, times, values = read_metric_columns(repo, tree, key)
        tokens = [str(x) for x in steps], [str(x) for x in times], [repr(x) for x in values]
    return tokens


def search_runs(
    repo: GitRepo,
    experiment_ids: list[str] | None = None,
    filter_string: str | None = None,
    view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    order_by: list[str] | None = None,
) -> list[Run]:
    """Runs matching an MLflow filter string, in ``order_by`` order.

    Raises:
        InvalidFilter: the filter or order_by does not parse.
    """
    idx, ids = _search_ids(repo, experiment_ids, filter_string, view_type, order_by, max_results)
    return idx.load(ids)


_SQLITE_MAX_INT = 2**63 - 1


def _search_ids(repo: GitRepo, experiment_ids: list[str] | None, filter_string: str | None, view_type: int,
                order_by: list[str] | None, limit: int | None = None,
                offset: int = 0) -> tuple[RunIndex, list[str]]:
    """The synced index and the ids of the matching runs, in order (``limit`` of them from ``offset``)."""
    from gitml.tracking import search

    sql, params = search.compile_search(
        filter_string,
        order_by,
        experiment_ids=[str(e) for e in experiment_ids] if experiment_ids is not None else None,
        lifecycle_stages=ViewType.stages(view_type),
    )
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"  # more than SQLite can count is no limit
        params = [*params, min(int(limit if limit is not None else _SQLITE_MAX_INT), _SQLITE_MAX_INT),
                  min(int(offset), _SQLITE_MAX_INT)]
    idx = sync_index(repo)
    return idx, idx.query_ids(sql, params)


def search_runs_page(
    repo: GitRepo,
    experiment_ids: list[str] | None = None,
    filter_string: str | None = None,
    view_type: int = ViewType.ACTIVE_ONLY,
    order_by: list[str] | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[Run]]:
    """One page of a search: (how many runs match, the runs at ``offset``..``offset+limit``).

    Only the page's runs are loaded, so a page of 10k matching runs costs
    a count (no sort), one id query for the page and 50 loads.

    Raises:
        InvalidFilter: the filter or order_by does not parse.
    """
    from gitml.tracking import search

    sql, params = search.compile_count(
        filter_string,
        experiment_ids=[str(e) for e in experiment_ids] if experiment_ids is not None else None,
        lifecycle_stages=ViewType.stages(view_type),
    )
    idx, ids = _search_ids(repo, experiment_ids, filter_string, view_type, order_by, limit, offset)
    return idx.query_count(sql, params), idx.load(ids)


def child_runs(repo: GitRepo, parent_ids: list[str], view_type: int = ViewType.ACTIVE_ONLY) -> dict[str, list[Run]]:
    """Parent run id -> its nested runs (newest first), for the parents in ``parent_ids`` that have any."""
    idx = sync_index(repo)
    ids = idx.children(parent_ids, ViewType.stages(view_type))
    loaded = {r.info.run_id: r for r in idx.load([c for cs in ids.values() for c in cs])}
    return {p: [loaded[c] for c in cs if c in loaded] for p, cs in ids.items()}


def run_keys(repo: GitRepo, experiment_ids: list[str] | None = None) -> dict[str, list[str]]:
    """The param, metric and tag keys the runs of these experiments (default: all) have, sorted."""
    return sync_index(repo).keys([str(e) for e in experiment_ids] if experiment_ids is not None else None)


def dataset_summaries(repo: GitRepo, experiment_ids: list[str]) -> list[tuple[str, str, str, str | None]]:
    """(experiment_id, name, digest, context) of each dataset the active runs of these experiments logged."""
    return sync_index(repo).dataset_summaries([str(e) for e in experiment_ids])


def search_frame(
    repo: GitRepo,
    experiment_ids: list[str] | None = None,
    filter_string: str | None = None,
    view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    order_by: list[str] | None = None,
) -> pandas.DataFrame:
    """``search_runs`` as MLflow's DataFrame, built from the index's columns (no Run objects).

    Raises:
        InvalidFilter: the filter or order_by does not parse.
    """
    idx, ids = _search_ids(repo, experiment_ids, filter_string, view_type, order_by, max_results)
    return _frame(idx.columns(ids))


def _frame(columns: dict[str, list[Any]]) -> pandas.DataFrame:
    import pandas as pd

    columns = dict(columns)
    for name in ("start_time", "end_time"):
        columns[name] = pd.to_datetime(columns[name], unit="ms", utc=True)
    return pd.DataFrame(columns)


def runs_to_dataframe(runs: list[Run]) -> pandas.DataFrame:
    """MLflow's ``search_runs`` DataFrame: one row per run, metrics./params./tags. columns."""
    metric_keys = sorted({k for r in runs for k in r.data.metrics})
    param_keys = sorted({k for r in runs for k in r.data.params})
    tag_keys = sorted({k for r in runs for k in r.data.tags})
    columns: dict[str, list[Any]] = {
        "run_id": [r.info.run_id for r in runs],
        "experiment_id": [r.info.experiment_id for r in runs],
        "status": [r.info.status for r in runs],
        "artifact_uri": [r.info.artifact_uri for r in runs],
        "start_time": [r.info.start_time for r in runs],
        "end_time": [r.info.end_time for r in runs],
    }
    for k in metric_keys:
        columns[f"metrics.{k}"] = [r.data.metrics.get(k) for r in runs]
    for k in param_keys:
        columns[f"params.{k}"] = [r.data.params.get(k) for r in runs]
    for k in tag_keys:
        columns[f"tags.{k}"] = [r.data.tags.get(k) for r in runs]
    return _frame(columns)


def runs_of_commits(repo: GitRepo, commits: list[str]) -> dict[str, list[Run]]:
    """Active runs whose source is each commit (HEAD-based, dirty or not)."""
    idx = sync_index(repo)
    ids = idx.runs_for_commits(commits)
    loaded = {r.info.run_id: r for r in idx.load([r for v in ids.values() for r in v])}
    return {
        c: [loaded[r] for r in rs if r in loaded and loaded[r].info.lifecycle_stage == LifecycleStage.ACTIVE]
        for c, rs in ids.items()
    }


def readable_states(repo: GitRepo) -> Iterator[RunState]:
    """The state of every run in the repository; a malformed run is skipped with a warning."""
    for run_id, oid in ledger.all_run_commits(repo).items():
        try:
            yield read_state(repo, oid, run_id)[0]
        except CorruptRun as e:
            schema.warn_skipped(e, oid)


def reindex(repo: GitRepo, progress: Progress | None = None) -> tuple[int, int]:
    """Rebuild the query index and the git notes from the run refs.

    Returns (runs indexed, commits with notes). ``progress`` hears the
    phases "recover", "index" and "notes" (runs read for the notes).
    """
    process.flush_all(repo)
    recovery.recover(repo, progress=progress)
    count = index_for(repo).rebuild(progress)
    states = []
    for state in readable_states(repo):
        states.append(state)
        if progress is not None and len(states) % 100 == 0:
            progress("notes", len(states), count)
    noted = notes.rebuild_notes(repo, states, settings.get("note_metrics", repo))
    return count, noted
