"""The fluent tracking API with MLflow's names: ``import gitml as mlflow``.

The active run is a per-thread stack, as in MLflow; ``start_run(nested=True)``
pushes a child run linked to its parent. Logging with no active run starts
one, as MLflow does. At interpreter exit the runs still active are ended:
FINISHED, or FAILED if the program is dying of an uncaught exception.
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from gitml import settings
from gitml.errors import InvalidValue, NoActiveRun
from gitml.tracking import experiments as _experiments
from gitml.tracking import runs as _runs
from gitml.tracking import process as _process
from gitml.tracking import sysmetrics as _sysmetrics
from gitml.tracking import writer as _wr
from gitml.tracking.entities import Experiment, Run, RunStatus, ViewType

if TYPE_CHECKING:
    import pandas

    from gitml.store.repo import GitRepo

_local = threading.local()
_experiment_id: str | None = None
_last_run_id: str | None = None
_V = TypeVar("_V")


class RunBridge(Protocol):
    """Told as runs start and end here: with autologging on, MLflow's active run follows gitml's
    (``mlflow_plugin.autolog.MlflowBridge``)."""

    def started(self, run_id: str, experiment_id: str, nested: bool) -> None: ...

    def ending(self, run_id: str, status: str) -> None: ...


_bridge: RunBridge | None = None


def set_run_bridge(bridge: RunBridge | None) -> RunBridge | None:
    """Have ``bridge.started(run_id, experiment_id, nested)`` and ``bridge.ending(run_id, status)``
    called as runs start and end here (autologging keeps MLflow's active run in step); returns
    the bridge installed before."""
    global _bridge
    previous, _bridge = _bridge, bridge
    return previous


def run_bridge() -> RunBridge | None:
    """The bridge ``set_run_bridge`` installed, or None."""
    return _bridge


class ActiveRun(Run):
    """The object ``start_run`` returns: a Run that ends itself in a ``with`` block."""

    def __init__(self, run: Run) -> None:
        super().__init__(run.info, run.data, run.source, run.parent_run_id, run.commit, run.inputs)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        status = RunStatus.FINISHED if exc_type is None else RunStatus.FAILED
        end_run(status, _run_id=self.info.run_id)
        return False


class _Entry:
    __slots__ = ("run", "writer", "pid")

    def __init__(self, run: ActiveRun, writer: _wr.RunWriter) -> None:
        self.run = run
        self.writer = writer
        self.pid = os.getpid()  # a forked child must not end its parent's runs


_all_stacks: list[list[_Entry]] = []  # every thread's stack, for the exit hook


def _stack() -> list[_Entry]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
        _all_stacks.append(stack)
    return stack


def _repo() -> GitRepo:
    return _runs.open_repo()


# -- tracking location and experiments ------------------------------------------------


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Track into the git repository at ``uri`` (a path, ``file://`` or ``gitml:`` URI).

    Raises:
        UnsupportedTrackingUri: an MLflow server or database URI (``http://...``, ``sqlite:...``).
    """
    from gitml.tracking.location import repository_path

    _runs.set_default_location(repository_path(uri))


def get_tracking_uri() -> str:
    return str(_repo().workdir or _repo().git_dir)


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make an experiment active, creating it by name if needed."""
    global _experiment_id
    repo = _repo()
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidValue("set_experiment takes exactly one of experiment_name and experiment_id")
    if experiment_name is not None:
        exp = _experiments.get_or_create(repo, experiment_name)
    else:
        exp = _experiments.get_experiment(repo, str(experiment_id))
    _experiment_id = exp.experiment_id
    return exp


def _active_experiment_id() -> str:
    if _experiment_id is not None:
        return _experiment_id
    return _experiments.from_settings(_repo())


def create_experiment(name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None) -> str:
    return _experiments.create_experiment(_repo(), name, {k: str(v) for k, v in (tags or {}).items()})


def get_experiment(experiment_id: str) -> Experiment:
    return _experiments.get_experiment(_repo(), str(experiment_id))


def get_experiment_by_name(name: str) -> Experiment | None:
    return _experiments.get_experiment_by_name(_repo(), name)


def search_experiments(view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                       filter_string: str | None = None, order_by: list[str] | None = None,
                       **_: object) -> list[Experiment]:
    """MLflow's ``search_experiments``: the filter (``name LIKE 'x%'``, ``tags.team = 'a'``...) and order apply."""
    found = _experiments.search_experiments(_repo(), view_type, filter_string, order_by)
    return found[:max_results] if max_results else found


# -- runs --------------------------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
) -> ActiveRun:
    """Start a new run (or resume ``run_id``) and make it the active run.

    Raises:
        InvalidValue: a run is already active and ``nested`` is False.
    """
    global _last_run_id
    _install_exit_hooks()
    stack = _stack()
    repo = _repo()
    run_id = run_id or settings.get("run_id") or None
    if stack and not nested and not (run_id and stack[-1].run.info.run_id == run_id):
        raise InvalidValue(
            f"Run with UUID {stack[-1].run.info.run_id} is already active. To start a nested run, "
            "call start_run with nested=True"
        )
    system_metrics = _sysmetrics.enabled(repo, log_system_metrics)  # a bad setting fails before the run starts
    if run_id:
        w = _runs.resume_run(repo, run_id)
        if tags:
            for k, v in tags.items():
                w.set_tag(str(k), v)
        state = w.state()
    else:
        parent = parent_run_id or (stack[-1].run.info.run_id if stack and nested else None)
        exp_id = str(experiment_id) if experiment_id is not None else _active_experiment_id()
        w, state = _runs.start_new_run(repo, exp_id, run_name, tags, parent, description=description)
    if system_metrics:
        _sysmetrics.start(w, _sysmetrics.next_step({k: p[1] for k, p in state.summary.items()}))
    run = ActiveRun(state.to_run())
    stack.append(_Entry(run, w))
    _last_run_id = w.run_id
    if _bridge is not None:
        _bridge.started(w.run_id, run.info.experiment_id, nested=len(stack) > 1)
    return run


def enable_system_metrics_logging() -> None:
    """Log system metrics into every run this process starts (``start_run(log_system_metrics=False)`` opts out)."""
    os.environ[settings.SETTINGS["enable_system_metrics_logging"].env] = "true"


def disable_system_metrics_logging() -> None:
    """Stop logging system metrics into new runs by default (``log_system_metrics=True`` opts in)."""
    os.environ[settings.SETTINGS["enable_system_metrics_logging"].env] = "false"


def set_system_metrics_sampling_interval(interval: float | None) -> None:
    """Seconds between system metric samples (None: back to the default, 10)."""
    _set_env("system_metrics_sampling_interval", interval)


def set_system_metrics_samples_before_logging(samples: int | None) -> None:
    """How many samples are averaged into one logged point (None: back to the default, 1)."""
    _set_env("system_metrics_samples_before_logging", samples)


def set_system_metrics_node_id(node_id: str | None) -> None:
    """A name for this machine in system metric keys, ``system/<node_id>/...`` (None: none)."""
    _set_env("system_metrics_node_id", node_id)


def _set_env(name: str, value: object) -> None:
    env = settings.SETTINGS[name].env
    if value is None:
        os.environ.pop(env, None)
        return
    settings.parse(name, str(value), f"set_{name}({value!r})")  # refuse a bad value now, not in the thread
    os.environ[env] = str(value)


def active_run() -> ActiveRun | None:
    stack = _stack()
    return stack[-1].run if stack else None


def last_active_run() -> Run | None:
    if _stack():
        return _stack()[-1].run
    return get_run(_last_run_id) if _last_run_id else None


def end_run(status: str = RunStatus.FINISHED, _run_id: str | None = None) -> None:
    """End the active run (or, inside ``with``, that block's run) with ``status``."""
    stack = _stack()
    if not stack:
        return
    pos = len(stack) - 1
    if _run_id is not None:
        pos = next((i for i in range(len(stack) - 1, -1, -1) if stack[i].run.info.run_id == _run_id), -1)
        if pos < 0:
            return
    entry = stack.pop(pos)
    _sysmetrics.stop(entry.run.info.run_id)  # its last points go into the run's final commit
    if _bridge is not None:
        _bridge.ending(entry.run.info.run_id, status)
    _runs.end_run(entry.writer.repo, entry.run.info.run_id, status)


def active_writer() -> _wr.RunWriter:
    """The writer of this thread's active run, starting a run if there is none (as ``log_metric`` does).

    For code above the tracking layer that logs into the active run (``log_model``).
    """
    stack = _stack()
    if stack:
        w = stack[-1].writer
        if not w.closed:
            return w
        stack[-1].writer = w = _runs.writer_for_existing(w.repo, w.run_id)
        return w
    start_run()
    return _stack()[-1].writer


def _writer_for(run_id: str | None) -> _wr.RunWriter:
    if run_id is None:
        return active_writer()
    return _runs.writer_for_existing(_repo(), run_id)


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    **_: object,
) -> None:
    """Log a metric point; costs a few microseconds (no git write)."""
    stack = getattr(_local, "stack", None) if run_id is None else None
    if stack:  # the hot path: a loop logging into the active run
        w = stack[-1].writer
        if not w.closed:
            w.log_metric(key, value, step, timestamp)
            if synchronous:
                w.flush()
            return
    w = active_writer() if run_id is None else _writer_for(run_id)
    w.log_metric(key, value, step, timestamp)
    if synchronous:
        w.flush()


def log_metrics(
    metrics: dict[str, float],
    step: int | None = None,
    timestamp: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    **_: object,
) -> None:
    w = _writer_for(run_id)
    for key, value in metrics.items():
        w.log_metric(key, value, step, timestamp)
    if synchronous:
        w.flush()


def log_param(key: str, value: _V, synchronous: bool | None = None) -> _V:
    """Log a param (write-once: the same value again is fine, another is an error)."""
    active_writer().log_param(key, value)
    return value


def log_params(params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None) -> None:
    w = _writer_for(run_id)
    for key, value in params.items():
        w.log_param(key, value)


def set_tag(key: str, value: object, synchronous: bool | None = None) -> None:
    active_writer().set_tag(key, value)


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    w = active_writer()
    for key, value in tags.items():
        w.set_tag(key, value)


def delete_tag(key: str) -> None:
    active_writer().delete_tag(key)


def log_input(dataset: object, context: str | None = None, tags: dict[str, Any] | None = None,
              run_id: str | None = None, **_: object) -> None:
    """Record a dataset the run used (``gitml.data.from_pandas(...)``, an MLflow dataset, or a dict
    of its fields); ``context`` ("train", "eval"...) becomes the ``mlflow.data.context`` input tag."""
    from gitml.tracking import datasets

    datasets.log_inputs(_writer_for(run_id), [datasets.input_of(dataset, context, tags)])


# -- artifacts ------------------------------------------------------------------------------


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None, run_id: str | None = None) -> None:
    """Store a file with the run (content-addressed, DVC cache layout)."""
    from gitml.tracking import artifacts

    w = _writer_for(run_id)
    artifacts.log_artifact(w.repo, w, local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None, run_id: str | None = None) -> None:
    """Store every file of a directory with the run."""
    from gitml.tracking import artifacts

    w = _writer_for(run_id)
    artifacts.log_artifacts(w.repo, w, local_dir, artifact_path)


def log_dict(dictionary: object, artifact_file: str, run_id: str | None = None) -> None:
    """Store a dict as JSON (or YAML for .yaml/.yml) artifact."""
    from gitml.tracking import artifacts

    w = _writer_for(run_id)
    artifacts.log_dict(w.repo, w, dictionary, artifact_file)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    """Store a string as a text artifact."""
    from gitml.tracking import artifacts

    w = _writer_for(run_id)
    artifacts.log_bytes(w.repo, w, text.encode("utf-8"), artifact_file)


def log_figure(figure: object, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None) -> None:
    """Store a matplotlib or plotly figure."""
    from gitml.tracking import artifacts

    w = active_writer()
    artifacts.log_figure(w.repo, w, figure, artifact_file, save_kwargs)


def log_image(image: object, artifact_file: str | None = None, key: str | None = None, step: int | None = None,
              timestamp: int | None = None, synchronous: bool | None = None, **_: object) -> None:
    """Store a numpy array or PIL image as an image artifact; with ``key`` and ``step``, as MLflow's
    time-stepped images (the viewer shows them with a step slider)."""
    from gitml.tracking import artifacts

    w = active_writer()
    artifacts.log_image(w.repo, w, image, artifact_file, key, step, timestamp)


def log_table(data: pandas.DataFrame | dict[str, Any], artifact_file: str, run_id: str | None = None) -> None:
    """Store a DataFrame or dict of columns as a table artifact in MLflow's JSON format (appending rows)."""
    from gitml.tracking import tables

    w = _writer_for(run_id)
    tables.log_table(w.repo, w, data, artifact_file)


def load_table(artifact_file: str, run_ids: list[str] | None = None,
               extra_columns: list[str] | None = None) -> pandas.DataFrame:
    """The rows of a table logged with ``log_table``, from ``run_ids`` or every run of the active experiment."""
    from gitml.tracking import tables

    repo = _repo()
    ids = list(run_ids) if run_ids else tables.runs_with_table(repo, [_active_experiment_id()], artifact_file)
    return tables.load_table(repo, ids, artifact_file, extra_columns)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """``runs:/<active run id>/<artifact_path>``."""
    run = active_run()
    if run is None:
        raise NoActiveRun("get_artifact_uri needs an active run")
    return f"runs:/{run.info.run_id}/{artifact_path or ''}"


def flush() -> None:
    """Commit everything logged so far in this process to git now."""
    _process.flush_all()


def get_run(run_id: str) -> Run:
    return _runs.get_run(_repo(), run_id)


def delete_run(run_id: str) -> None:
    _runs.set_lifecycle(_repo(), run_id, "deleted")


def search_runs(
    experiment_ids: list[str] | None = None,
    filter_string: str = "",
    run_view_type: int = ViewType.ACTIVE_ONLY,
    max_results: int = 100000,
    order_by: list[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: list[str] | None = None,
) -> pandas.DataFrame | list[Run]:
    """Search runs with MLflow's filter syntax; a DataFrame (default) or a list of Runs."""
    repo = _repo()
    ids: list[str] | None
    if experiment_names:
        ids = list(experiment_ids or [])
        for name in experiment_names:
            exp = _experiments.get_experiment_by_name(repo, name)
            if exp is not None:
                ids.append(exp.experiment_id)
    elif experiment_ids:
        ids = [str(e) for e in experiment_ids]
    elif search_all_experiments:
        ids = None
    else:
        ids = [_active_experiment_id()]
    if output_format == "list":
        return _runs.search_runs(repo, ids, filter_string, run_view_type, max_results, order_by)
    if output_format != "pandas":
        raise InvalidValue(f"Unsupported output_format {output_format!r}; use 'pandas' or 'list'")
    return _runs.search_frame(repo, ids, filter_string, run_view_type, max_results, order_by)


# -- exit handling -------------------------------------------------------------------------

_hooks_installed = False
_uncaught = False


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        global _uncaught
        _uncaught = True
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    _process.on_exit(_end_active_runs)


def _end_active_runs() -> None:
    # Runs still active in any thread of this process end with the process.
    status = RunStatus.FAILED if _uncaught else RunStatus.FINISHED
    pid = os.getpid()
    for stack in list(_all_stacks):
        while stack:
            entry = stack.pop()
            if entry.pid == pid:
                _runs.end_run(entry.writer.repo, entry.run.info.run_id, status)
