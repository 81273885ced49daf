"""``gitml.Client``: MLflow's ``MlflowClient`` over a git repository.

Every method names its run explicitly; nothing depends on an active run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gitml.tracking import experiments as _experiments
from gitml.tracking import runs as _runs
from gitml.tracking import process as _process
from gitml.tracking.entities import Experiment, Metric, Param, Run, RunStatus, RunTag, ViewType

if TYPE_CHECKING:
    import pandas

    from gitml.store.repo import GitRepo
    from gitml.tracking.artifacts import FileInfo

_V = TypeVar("_V")


class Client:
    """Low-level tracking API over the repository at ``tracking_uri`` (default: cwd's)."""

    def __init__(self, tracking_uri: str | os.PathLike[str] | None = None) -> None:
        from gitml.tracking.location import repository_path

        self._uri = repository_path(tracking_uri)

    @property
    def repo(self) -> GitRepo:
        return _runs.open_repo(self._uri)

    # experiments
    def create_experiment(self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None) -> str:
        return _experiments.create_experiment(self.repo, name, {k: str(v) for k, v in (tags or {}).items()})

    def get_experiment(self, experiment_id: str) -> Experiment:
        return _experiments.get_experiment(self.repo, str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return _experiments.get_experiment_by_name(self.repo, name)

    def search_experiments(self, view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
                           filter_string: str | None = None, order_by: list[str] | None = None,
                           **_: object) -> list[Experiment]:
        """Experiments matching MLflow's filter (``name LIKE 'x%'``, ``tags.team = 'a'``...), in ``order_by`` order."""
        found = _experiments.search_experiments(self.repo, view_type, filter_string, order_by)
        return found[:max_results] if max_results else found

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        _experiments.rename_experiment(self.repo, experiment_id, new_name)

    def set_experiment_tag(self, experiment_id: str, key: str, value: object) -> None:
        _experiments.set_experiment_tag(self.repo, experiment_id, key, value)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        _experiments.delete_experiment_tag(self.repo, experiment_id, key)

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark the experiment and its runs deleted, as MLflow does (restore brings them back)."""
        _runs.set_experiment_lifecycle(self.repo, experiment_id, "deleted")

    def restore_experiment(self, experiment_id: str) -> None:
        _runs.set_experiment_lifecycle(self.repo, experiment_id, "active")

    # runs
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        _, state = _runs.start_new_run(self.repo, str(experiment_id), run_name, tags, start_time=start_time,
                                       parent_run_id=(tags or {}).get("mlflow.parentRunId"))
        return state.to_run()

    def get_run(self, run_id: str) -> Run:
        return _runs.get_run(self.repo, run_id)

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None, step: int | None = None, **_: object) -> None:
        _runs.writer_for_existing(self.repo, run_id).log_metric(key, value, step, timestamp)

    def log_param(self, run_id: str, key: str, value: _V, **_: object) -> _V:
        _runs.writer_for_existing(self.repo, run_id).log_param(key, value)
        return value

    def set_tag(self, run_id: str, key: str, value: object, **_: object) -> None:
        _runs.writer_for_existing(self.repo, run_id).set_tag(key, value)

    def delete_tag(self, run_id: str, key: str) -> None:
        _runs.writer_for_existing(self.repo, run_id).delete_tag(key)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        **_: object,
    ) -> None:
        from gitml.tracking.validation import validate_batch_limits

        validate_batch_limits(len(metrics), len(params), len(tags))
        w = _runs.writer_for_existing(self.repo, run_id)
        for p in params:
            w.log_param(p.key, p.value)
        for t in tags:
            w.set_tag(t.key, t.value)
        for m in metrics:
            w.log_metric(m.key, m.value, m.step, m.timestamp)

    def log_inputs(self, run_id: str, datasets: Sequence[object] | None = None, **_: object) -> None:
        """Record datasets the run used: ``DatasetInput``s (gitml's or MLflow's) or gitml ``Dataset``s."""
        from gitml.tracking import datasets as _datasets

        items: list[tuple[Mapping[str, object], Mapping[str, object] | None]] = []
        for item in datasets or []:
            if hasattr(item, "dataset") and hasattr(item, "tags"):  # a DatasetInput
                fields, _ = _datasets.input_of(item.dataset)
                items.append((fields, {t.key: t.value for t in item.tags}))
            else:
                items.append(_datasets.input_of(item))
        _datasets.log_inputs(_runs.writer_for_existing(self.repo, run_id), items)

    def set_terminated(self, run_id: str, status: str = RunStatus.FINISHED, end_time: int | None = None) -> None:
        _runs.end_run(self.repo, _runs.resolve_run_id(self.repo, run_id), status or RunStatus.FINISHED, end_time)

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        w = _runs.writer_for_existing(self.repo, run_id)
        if name:
            w.set_tag("mlflow.runName", name)
        if status:
            self.set_terminated(run_id, status)
        else:
            w.flush()

    def delete_run(self, run_id: str) -> None:
        _runs.set_lifecycle(self.repo, run_id, "deleted")

    def restore_run(self, run_id: str) -> None:
        _runs.set_lifecycle(self.repo, run_id, "active")

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return _runs.metric_history(self.repo, run_id, key)

    def search_runs(
        self,
        experiment_ids: list[str] | str | None = None,
        filter_string: str = "",
        run_view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        **_: object,
    ) -> list[Run]:
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        return _runs.search_runs(self.repo, experiment_ids, filter_string, run_view_type, max_results, order_by)

    # artifacts
    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        from gitml.tracking import artifacts

        w = _runs.writer_for_existing(self.repo, run_id)
        artifacts.log_artifact(self.repo, w, local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        from gitml.tracking import artifacts

        w = _runs.writer_for_existing(self.repo, run_id)
        artifacts.log_artifacts(self.repo, w, local_dir, artifact_path)

    def log_dict(self, run_id: str, dictionary: object, artifact_file: str) -> None:
        from gitml.tracking import artifacts

        artifacts.log_dict(self.repo, _runs.writer_for_existing(self.repo, run_id), dictionary, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        from gitml.tracking import artifacts

        artifacts.log_bytes(self.repo, _runs.writer_for_existing(self.repo, run_id), text.encode(), artifact_file)

    def log_table(self, run_id: str, data: pandas.DataFrame | dict[str, Any], artifact_file: str) -> None:
        from gitml.tracking import tables

        tables.log_table(self.repo, _runs.writer_for_existing(self.repo, run_id), data, artifact_file)

    def load_table(self, experiment_id: str, artifact_file: str, run_ids: list[str] | None = None,
                   extra_columns: list[str] | None = None) -> pandas.DataFrame:
        from gitml.tracking import tables

        repo = self.repo
        ids = list(run_ids) if run_ids else tables.runs_with_table(repo, [str(experiment_id)], artifact_file)
        return tables.load_table(repo, ids, artifact_file, extra_columns)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        from gitml.tracking import artifacts

        return artifacts.list_artifacts(self.repo, run_id, path)

    def download_artifacts(self, run_id: str, path: str = "", dst_path: str | None = None) -> str:
        from gitml.tracking import artifacts

        return artifacts.download_artifacts(self.repo, run_id, path, dst_path)

    def flush(self) -> None:
        """Commit everything this process logged to git now."""
        _process.flush_all(self.repo)


def __getattr__(name: str) -> Any:
    # ``from mlflow.tracking.client import MlflowClient`` is MLflow's whole client (registry
    # calls too): gitml.Client, which sits above this layer, so it is named lazily.
    if name == "MlflowClient":
        from gitml.client import Client as FullClient

        return FullClient
    raise AttributeError(f"module 'gitml.tracking.client' has no attribute {name!r}")
