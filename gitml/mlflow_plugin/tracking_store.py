"""``GitmlTrackingStore``: MLflow's tracking store over a git repository (``gitml:`` URIs).

MLflow builds it through the ``mlflow.tracking_store`` entry point for any
tracking URI ``gitml:<repo>``, in a script (``MLFLOW_TRACKING_URI``) or behind
``mlflow server --backend-store-uri gitml:<repo>``. Each method is a call into
gitml's domain (``gitml.tracking``) plus a conversion of entities and errors
(``convert``), so a run logged through MLflow is the same refs, notes, index
rows and artifacts as one logged with ``import gitml``.

Logging goes through this process's ``RunWriter``, as gitml's own API does:
``log_metric`` appends a line to the run's live log and the run commit is
written on flush (a read, the background flusher, ``update_run_info`` to a
finished status, exit), never one git write per call. Other processes (or
server workers) logging to the same run have their own writers and meet in
the run ref's compare-and-swap.

MLflow 3 features with no home in a git repository yet (traces, assessments,
prompts, evaluation datasets, scorers) raise ``FEATURE_DISABLED``; their
searches answer empty, so MLflow's UI shows empty tabs rather than errors.
Logged models are directories of a run's artifacts (``tracking/logged_models.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlflow.entities import (
    DatasetInput,
    Experiment,
    ExperimentTag,
    LifecycleStage,
    LoggedModel,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInfo,
    RunOutputs,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchUtils

if TYPE_CHECKING:  # mlflow.models imports the tracking registry that is importing this module
    from mlflow.models import Model

from gitml.errors import RunNotFound
from gitml.mlflow_plugin import convert
from gitml.tracking import uri
from gitml.tracking import datasets as _datasets
from gitml.tracking import entities as g
from gitml.tracking import experiments, logged_models, process, runs, validation, writer

_MLFLOW_RUN_ID = re.compile(r"[a-zA-Z0-9][\w\-]{0,255}")  # MLflow's _validate_run_id
_GITML_RUN_ID = re.compile(r"[0-9a-f]{32}")
_RESULT_LIMIT = SEARCH_MAX_RESULTS_THRESHOLD
_TERMINAL = ("FINISHED", "FAILED", "KILLED")
PageToken = str | bytes | None  # MLflow's: base64 JSON {"offset": n}


def _max_results(value: Any, allow_null: bool = False) -> int | None:
    if value is None and allow_null:
        return None
    if type(value) is not int or value < 1 or value > _RESULT_LIMIT:
        raise MlflowException(f"Invalid value {value!r} for parameter 'max_results' supplied. It must be a positive "
                              f"integer of at most {_RESULT_LIMIT}", INVALID_PARAMETER_VALUE)
    return value


def _next_token(total: int, offset: int, limit: int | None) -> bytes | None:
    """MLflow's page token for the next page (base64 JSON offset), or None on the last page."""
    if limit is not None and offset + limit < total:
        return SearchUtils.create_page_token(offset + limit)
    return None


@convert.translated
class GitmlTrackingStore(AbstractStore):
    """MLflow's tracking store whose database is a git repository."""

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__()
        with convert.errors():
            self.repo_path = uri.repo_path(store_uri or "gitml:.")
            self.repo = runs.open_repo(self.repo_path)
        # A server proxying artifacts hands us its root (mlflow-artifacts:/); else the repository.
        self.artifact_root = (artifact_uri or "").rstrip("/") or uri.tracking_uri(self.repo.workdir or self.repo.git_dir)
        self.write_through = convert.write_through()

    # -- helpers ------------------------------------------------------------------------------

    def _run_uri(self, run_id: str) -> str:
        return uri.run_artifact_uri(self.artifact_root, run_id)

    def _run_id(self, run_id: Any) -> str:
        """MLflow's run-id rules: bad characters are INVALID_PARAMETER_VALUE, any other id that is
        not a full gitml run id (32 hex) does not exist (no prefixes through MLflow)."""
        if not isinstance(run_id, str) or not _MLFLOW_RUN_ID.fullmatch(run_id):
            raise MlflowException(f"Invalid run ID: {run_id!r}", INVALID_PARAMETER_VALUE)
        if not _GITML_RUN_ID.fullmatch(run_id):
            raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
        return run_id

    def _writer(self, run_id: str) -> writer.RunWriter:
        return runs.writer_for_existing(self.repo, self._run_id(run_id))

    @contextmanager
    def _logging(self, run_id: str) -> Iterator[writer.RunWriter]:
        """This process's writer for the run; committed afterwards when ``write_through``."""
        w = self._writer(run_id)
        yield w
        if self.write_through:
            w.flush()

    def _committed(self, run_id: str) -> None:
        if self.write_through:
            self._writer(run_id).flush()

    def _outputs(self, run: g.Run) -> RunOutputs:
        models = logged_models.of_run(run.data.tags, run.info.run_id, run.info.experiment_id)
        return RunOutputs([LoggedModelOutput(m.model_id, m.step) for m in models])

    def _mlflow_run(self, run: g.Run) -> Run:
        return convert.run(run, self._run_uri(run.info.run_id), self._outputs(run))

    # -- experiments ----------------------------------------------------------------------------

    def search_experiments(self, view_type: int = ViewType.ACTIVE_ONLY, max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
                           filter_string: str | None = None, order_by: list[str] | None = None,
                           page_token: PageToken = None) -> PagedList:
        limit = _max_results(max_results)
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
        found = experiments.search_experiments(self.repo, view_type, filter_string, order_by)
        page = found[offset : offset + limit]
        return PagedList([convert.experiment(e, self.artifact_root) for e in page],
                         _next_token(len(found), offset, limit))

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: list[ExperimentTag] | None = None) -> str:
        if artifact_location and artifact_location.rstrip("/") != self.artifact_root:
            raise MlflowException(
                f"artifact_location {artifact_location!r}: the gitml store keeps every run's artifacts in the "
                f"repository's content store ({self.artifact_root}); leave artifact_location empty",
                INVALID_PARAMETER_VALUE)
        return experiments.create_experiment(self.repo, name, {t.key: t.value for t in tags or []})

    def get_experiment(self, experiment_id: str) -> Experiment:
        return convert.experiment(experiments.get_experiment(self.repo, str(experiment_id)), self.artifact_root)

    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        exp = experiments.get_experiment_by_name(self.repo, experiment_name)
        return convert.experiment(exp, self.artifact_root) if exp is not None else None

    def delete_experiment(self, experiment_id: str) -> None:
        runs.set_experiment_lifecycle(self.repo, str(experiment_id), LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id: str) -> None:
        runs.set_experiment_lifecycle(self.repo, str(experiment_id), LifecycleStage.ACTIVE)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        experiments.rename_experiment(self.repo, str(experiment_id), new_name)

    def set_experiment_tag(self, experiment_id: str, tag: ExperimentTag) -> None:
        experiments.set_experiment_tag(self.repo, str(experiment_id), tag.key, tag.value)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        experiments.delete_experiment_tag(self.repo, str(experiment_id), key)

    # -- runs -----------------------------------------------------------------------------------

    def create_run(self, experiment_id: str, user_id: str | None, start_time: int | None,
                   tags: list[RunTag] | None, run_name: str | None) -> Run:
        tag_map = {t.key: t.value for t in tags or []}
        parent = tag_map.get("mlflow.parentRunId")
        if parent is not None and not _GITML_RUN_ID.fullmatch(parent):
            parent = None  # MLflow keeps any text in the tag; gitml links only real run ids
        w, state = runs.start_new_run(self.repo, str(experiment_id), run_name or None, tag_map, parent,
                                      start_time=start_time, user_id=user_id or None)
        if self.write_through:  # the client's next request may reach another worker
            w.flush()
        return convert.run(state.to_run(), self._run_uri(state.run_id), RunOutputs([]))

    def get_run(self, run_id: str) -> Run:
        return self._mlflow_run(runs.get_run(self.repo, self._run_id(run_id)))

    def update_run_info(self, run_id: str, run_status: int | str | None, end_time: int | None,
                        run_name: str | None) -> RunInfo:
        w = self._writer(run_id)
        if run_name:
            w.set_tag("mlflow.runName", run_name)
        status = RunStatus.to_string(run_status) if isinstance(run_status, int) else run_status
        if status in _TERMINAL:  # commits everything this process logged to the run before returning
            state = runs.end_run(self.repo, w.run_id, status, end_time)
            if state is not None:
                return convert.run_info(state.to_run(), self._run_uri(w.run_id))
        else:  # as MLflow: a given status or end time replaces the old one, the rest stays
            fields = {k: v for k, v in (("status", status), ("end_time", end_time)) if v is not None}
            if fields:
                w.set_info(**fields)
            w.flush()
        return convert.run_info(runs.get_run(self.repo, w.run_id), self._run_uri(w.run_id))

    def delete_run(self, run_id: str) -> None:
        run_id = self._run_id(run_id)
        process.close_writer(self.repo, run_id)  # commits what we logged; later logging must see the deletion
        runs.set_lifecycle(self.repo, run_id, LifecycleStage.DELETED)

    def restore_run(self, run_id: str) -> None:
        runs.set_lifecycle(self.repo, self._run_id(run_id), LifecycleStage.ACTIVE)

    def _search_runs(self, experiment_ids: list[str], filter_string: str | None, run_view_type: int,
                     max_results: int | None, order_by: list[str] | None,
                     page_token: PageToken) -> tuple[list[Run], bytes | None]:
        limit = _max_results(max_results, allow_null=True)
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
        total, found = runs.search_runs_page(self.repo, [str(e) for e in experiment_ids or []], filter_string,
                                             run_view_type or ViewType.ACTIVE_ONLY, order_by, offset,
                                             limit if limit is not None else _RESULT_LIMIT)
        return [self._mlflow_run(r) for r in found], _next_token(total, offset, limit)

    # -- logging --------------------------------------------------------------------------------

    def log_metric(self, run_id: str, metric: Metric) -> None:
        if metric.model_id is not None:
            self.log_batch(run_id, [metric], [], [])
            return
        with self._logging(run_id) as w:
            w.log_metric(metric.key, metric.value, metric.step, metric.timestamp)

    def log_param(self, run_id: str, param: Param) -> None:
        with self._logging(run_id) as w:
            w.log_param(param.key, param.value)

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        with self._logging(run_id) as w:
            w.set_tag(tag.key, tag.value)

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._logging(run_id) as w:
            if key not in w.state().tags:
                raise MlflowException(f"No tag with name: {key} in run with id {w.run_id}", RESOURCE_DOES_NOT_EXIST)
            w.delete_tag(key)

    def log_batch(self, run_id: str, metrics: list[Metric] | None, params: list[Param] | None,
                  tags: list[RunTag] | None) -> None:
        metrics, params, tags = list(metrics or []), list(params or []), list(tags or [])
        validation.validate_batch_limits(len(metrics), len(params), len(tags))
        keys = [p.key for p in params]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise MlflowException(f"Duplicate parameter keys have been submitted: {dup}. Please ensure the "
                                  "request contains only one param value per param key.", INVALID_PARAMETER_VALUE)
        with self._logging(run_id) as w:
            self._log_batch(w, metrics, params, tags)

    def _log_batch(self, w: writer.RunWriter, metrics: list[Metric], params: list[Param], tags: list[RunTag]) -> None:
        # every value checked before any is logged: a refused batch logs nothing, as in MLflow
        for p in params:
            w.check_param(p.key, p.value)
        for t in tags:
            validation.validate_tag_key(t.key)
            validation.validate_tag_value(t.key, t.value)
        for m in metrics:
            validation.validate_metric_key(m.key)
            validation.validate_metric_value(m.key, m.value)
            validation.validate_metric_step(m.step)
            validation.validate_timestamp(m.timestamp)
        for p in params:
            w.log_param(p.key, p.value)
        for t in tags:
            w.set_tag(t.key, t.value)
        linked = [m for m in metrics if getattr(m, "model_id", None) is not None]
        if linked:  # MLflow re-logs a run's metrics with the model's id on log_model: keep one copy of a point
            metrics = [m for m in metrics if m not in linked] + self._new_points(w, linked)
        for m in metrics:
            w.log_metric(m.key, m.value, m.step, m.timestamp)

    def _new_points(self, w: writer.RunWriter, metrics: list[Metric]) -> list[Metric]:
        seen: dict[str, set[tuple[float, int, int]]] = {}
        out = []
        for m in metrics:
            if m.key not in seen:
                w.flush()
                seen[m.key] = {(p.value, p.step, p.timestamp) for p in runs.metric_history(self.repo, w.run_id, m.key)}
            point = (float(m.value), int(m.step), int(m.timestamp))
            if point not in seen[m.key]:
                seen[m.key].add(point)
                out.append(m)
        return out

    def get_metric_history(self, run_id: str, metric_key: str, max_results: int | None = None,
                           page_token: PageToken = None) -> PagedList:
        try:
            found = runs.metric_history(self.repo, self._run_id(run_id), metric_key)
        except RunNotFound:
            found = []  # as MLflow's SQL store: no history, not an error
        points = sorted(found, key=lambda m: (m.timestamp, m.step, m.value))  # MLflow's order
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
        page = points[offset : offset + max_results] if max_results is not None else points[offset:]
        return PagedList([convert.metric(m) for m in page], _next_token(len(points), offset, max_results))

    def log_inputs(self, run_id: str, datasets: list[DatasetInput] | None = None,
                   models: list[LoggedModelInput] | None = None) -> None:
        if datasets is not None and not isinstance(datasets, list):
            raise TypeError(f"Argument 'datasets' should be a list, got '{type(datasets)}'")
        with self._logging(run_id) as w:
            for model_input in models or []:
                logged_models.get(self.repo, model_input.model_id)  # must exist; model inputs are not kept
            _datasets.log_inputs(w, [_datasets.input_of(d.dataset, tags={t.key: t.value for t in d.tags or []})
                                     for d in datasets or []])

    def log_outputs(self, run_id: str, models: list[LoggedModelOutput]) -> None:
        run_id = self._run_id(run_id)
        for output in models or []:
            model = logged_models.get(self.repo, output.model_id)
            if model.run_id != run_id:
                raise MlflowException(f"Logged model {output.model_id} belongs to run {model.run_id}, not {run_id}: "
                                      "in the gitml store a model is a directory of its run's artifacts",
                                      INVALID_PARAMETER_VALUE)
            model.step = int(output.step or 0)
            logged_models.save(self.repo, model)
        self._committed(run_id)

    def record_logged_model(self, run_id: str, mlflow_model: Model) -> None:
        with self._logging(run_id) as w:
            history = w.state().tags.get("mlflow.log-model.history")
            entries = json.loads(history) if history else []
            entries.append(mlflow_model.get_tags_dict())
            w.set_tag("mlflow.log-model.history", json.dumps(entries))

    # -- logged models (directories of a run's artifacts) ----------------------------------------

    def _logged_model(self, model: logged_models.LoggedModel) -> LoggedModel:
        run = runs.get_run(self.repo, model.run_id)
        return LoggedModel(
            experiment_id=model.experiment_id, model_id=model.model_id, name=model.name,
            artifact_location=f"{self._run_uri(model.run_id)}/{model.name}",
            creation_timestamp=model.created, last_updated_timestamp=model.updated,
            model_type=model.model_type, source_run_id=model.run_id,
            status=LoggedModelStatus(model.status),
            tags=[LoggedModelTag(k, v) for k, v in model.tags.items()],
            params=[LoggedModelParameter(k, v) for k, v in run.data.params.items()],
        )

    def create_logged_model(self, experiment_id: str, name: str | None = None, source_run_id: str | None = None,
                            tags: list[LoggedModelTag] | None = None,
                            params: list[LoggedModelParameter] | None = None,
                            model_type: str | None = None) -> LoggedModel:
        if source_run_id is None:
            raise convert.unsupported("Logged models without a run (start a run first: a model is a "
                                      "directory of its run's artifacts)")
        run = runs.get_run(self.repo, self._run_id(source_run_id))
        if run.info.experiment_id != str(experiment_id):
            raise MlflowException(f"Run {source_run_id} is in experiment {run.info.experiment_id}, not "
                                  f"{experiment_id}", INVALID_PARAMETER_VALUE)
        model = logged_models.create(self.repo, run.info.run_id, name or runs.generate_run_name(),
                                     model_type, {t.key: t.value for t in tags or []})
        self._committed(model.run_id)
        return self._logged_model(model)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self._logged_model(logged_models.get(self.repo, model_id, allow_deleted))

    def finalize_logged_model(self, model_id: str, status: LoggedModelStatus | str) -> LoggedModel:
        model = logged_models.get(self.repo, model_id)
        model.status = LoggedModelStatus(status).value
        logged_models.save(self.repo, model)
        self._committed(model.run_id)
        return self._logged_model(model)

    def set_logged_model_tags(self, model_id: str, tags: list[LoggedModelTag]) -> None:
        model = logged_models.get(self.repo, model_id)
        model.tags.update({t.key: str(t.value) for t in tags})
        logged_models.save(self.repo, model)
        self._committed(model.run_id)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        model = logged_models.get(self.repo, model_id)
        if key not in model.tags:
            raise MlflowException(f"No tag with key {key!r} on logged model {model_id}", RESOURCE_DOES_NOT_EXIST)
        del model.tags[key]
        logged_models.save(self.repo, model)
        self._committed(model.run_id)

    def delete_logged_model(self, model_id: str) -> None:
        model = logged_models.get(self.repo, model_id)
        model.deleted = True
        logged_models.save(self.repo, model)
        self._committed(model.run_id)

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None = None,
                             datasets: Any = None, max_results: int | None = None, order_by: Any = None,
                             page_token: PageToken = None) -> PagedList:
        wanted = _logged_model_filter(filter_string)
        if datasets:
            raise convert.unsupported("Logged model searches by dataset")
        found = _order_logged_models(logged_models.search(self.repo, [str(e) for e in experiment_ids], **wanted),
                                     order_by)
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
        limit = max_results or 100
        page = found[offset : offset + limit]
        return PagedList([self._logged_model(m) for m in page], _next_token(len(found), offset, limit))

    # -- what a git repository does not hold (yet) -------------------------------------------------

    def link_traces_to_run(self, trace_ids: list[str], run_id: str) -> None:
        raise convert.unsupported("Traces")

    def start_trace(self, trace_info: Any) -> Any:
        raise convert.unsupported("Traces")

    def log_spans(self, location: str, spans: list[Any], tracking_uri: Any = None) -> Any:
        raise convert.unsupported("Traces")

    def search_traces(self, *args: Any, **kwargs: Any) -> tuple[list[Any], None]:
        return [], None  # no traces in a git repository: an empty result, not an error page

    def query_trace_metrics(self, *args: Any, **kwargs: Any) -> PagedList:
        return PagedList([], None)  # the experiment overview's trace charts: empty, not an error

    def _search_datasets(self, experiment_ids: list[str]) -> list[Any]:
        """The datasets the runs of these experiments logged (MLflow's UI lists them beside the runs)."""
        from mlflow.entities.dataset_summary import _DatasetSummary

        return [_DatasetSummary(experiment_id=e, name=n, digest=d, context=c)
                for e, n, d, c in runs.dataset_summaries(self.repo, experiment_ids)]

    def get_trace_info(self, trace_id: str) -> Any:
        raise MlflowException(f"Trace with ID {trace_id} not found (the gitml store holds no traces)",
                              RESOURCE_DOES_NOT_EXIST)

    def get_trace(self, trace_id: str, *, allow_partial: bool = False) -> Any:
        return self.get_trace_info(trace_id)

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        raise convert.unsupported("Traces")

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        raise convert.unsupported("Traces")

    def create_assessment(self, assessment: Any) -> Any:
        raise convert.unsupported("Assessments")

    def get_assessment(self, trace_id: str, assessment_id: str) -> Any:
        raise convert.unsupported("Assessments")

    def update_assessment(self, *args: Any, **kwargs: Any) -> Any:
        raise convert.unsupported("Assessments")

    def delete_assessment(self, trace_id: str, assessment_id: str) -> None:
        raise convert.unsupported("Assessments")

    def link_prompts_to_trace(self, trace_id: str, prompt_versions: list[Any]) -> None:
        raise convert.unsupported("Prompts")


_LOGGED_MODEL_ORDER = {"creation_timestamp": "created", "creation_time": "created",
                       "last_updated_timestamp": "updated", "last_updated_time": "updated", "name": "name",
                       "model_id": "model_id"}


def _order_logged_models(models: list[logged_models.LoggedModel], order_by: Any) -> list[logged_models.LoggedModel]:
    """MLflow's ``order_by`` for logged models ([{"field_name", "ascending"}]); default newest first."""
    for clause in reversed(list(order_by or [])):
        field = clause.get("field_name") if isinstance(clause, dict) else getattr(clause, "field_name", None)
        ascending = clause.get("ascending", True) if isinstance(clause, dict) else getattr(clause, "ascending", True)
        attr = _LOGGED_MODEL_ORDER.get(str(field))
        if attr is None:
            raise convert.unsupported(f"Ordering logged models by {field!r}")
        models = sorted(models, key=lambda m: getattr(m, attr), reverse=not ascending)
    return models


def _logged_model_filter(filter_string: str | None) -> dict[str, str]:
    """The filters MLflow's own code sends (``name = '...'``, ``source_run_id = '...'``, joined by AND)."""
    wanted: dict[str, str] = {}
    for clause in [c.strip() for c in (filter_string or "").split(" AND ") if c.strip()]:
        field, sep, value = clause.partition("=")
        field, value = field.strip(), value.strip()
        if not sep or field not in ("name", "source_run_id") or len(value) < 2 or value[0] != value[-1] \
                or value[0] not in "'\"":
            raise convert.unsupported(f"Logged model filters other than name = '...' and source_run_id = '...' "
                                      f"({clause!r})")
        wanted["run_id" if field == "source_run_id" else "name"] = value[1:-1]
    return wanted

