"""gitml's entities and errors as MLflow's: the one place the plugin translates between them.

Every store and repository method of the plugin runs under ``errors()``
(``translated`` wraps a class's public methods in it), so a ``GitmlError``
reaches MLflow as an ``MlflowException`` with the matching error code
(``INVALID_PARAMETER_VALUE``, ``RESOURCE_DOES_NOT_EXIST``...), which MLflow's
client and server turn into the HTTP status and JSON error body they
always use. Only this package imports mlflow.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mlflow.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    ExperimentTag,
    InputTag,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunOutputs,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import FEATURE_DISABLED, ErrorCode

from gitml.errors import GitmlError, RunNotActive
from gitml.tracking import entities as g

T = TypeVar("T")

#: mlflow.server.constants.BACKEND_STORE_URI_ENV_VAR, set for the worker processes of `mlflow server`.
_SERVER_ENV = "_MLFLOW_SERVER_FILE_STORE"


def write_through() -> bool:
    """Inside `mlflow server`, where a client's next request may reach another worker process (which
    reads git), every write is committed before the answer. A script keeps gitml's buffered path."""
    return _SERVER_ENV in os.environ

#: gitml errors whose MLflow code differs from their own ``error_code``.
_CODE_FOR = {
    # MLflow refuses writes to a deleted run with INVALID_PARAMETER_VALUE
    RunNotActive: "INVALID_PARAMETER_VALUE",
}


def mlflow_error(error: GitmlError) -> MlflowException:
    """The ``MlflowException`` MLflow itself would raise for ``error``."""
    name = next((code for cls, code in _CODE_FOR.items() if isinstance(error, cls)), error.error_code)
    try:
        code = ErrorCode.Value(name)
    except ValueError:
        code = ErrorCode.Value("INTERNAL_ERROR")
    return MlflowException(error.message, error_code=code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn a ``GitmlError`` raised inside into MLflow's exception (cause kept)."""
    try:
        yield
    except GitmlError as e:
        raise mlflow_error(e) from e


def translated(cls: type[T]) -> type[T]:
    """Class decorator: every public method of ``cls`` (and ``_search_runs``) runs under ``errors()``."""
    for name, value in list(vars(cls).items()):
        if callable(value) and (not name.startswith("_") or name in ("_search_runs", "_download_file")):
            setattr(cls, name, _wrap(value))
    return cls


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with errors():
            return fn(*args, **kwargs)

    return wrapper


def unsupported(feature: str) -> MlflowException:
    """The error for an MLflow feature that has no home in a git repository yet."""
    return MlflowException(f"{feature} are not supported by the gitml store (MLflow tracking plugin "
                           "for git repositories): see docs/mlflow.md", error_code=FEATURE_DISABLED)


# -- entities ----------------------------------------------------------------------------------


def run_info(run: g.Run, artifact_uri: str) -> RunInfo:
    i = run.info
    return RunInfo(run_id=i.run_id, experiment_id=i.experiment_id, user_id=i.user_id, status=i.status,
                   start_time=i.start_time, end_time=i.end_time, lifecycle_stage=i.lifecycle_stage,
                   artifact_uri=artifact_uri, run_name=i.run_name)


def run(run: g.Run, artifact_uri: str, outputs: RunOutputs | None = None) -> Run:
    """MLflow's ``Run`` for a gitml run; metrics carry their step and timestamp."""
    d = run.data
    metrics = [Metric(m.key, m.value, m.timestamp, m.step) for m in d.latest_metrics.values()]
    if len(metrics) != len(d.metrics):  # a Run built without the points: value only
        metrics = [Metric(k, v, 0, 0) for k, v in d.metrics.items()]
    data = RunData(metrics=metrics,
                   params=[Param(k, v) for k, v in d.params.items()],
                   tags=[RunTag(k, v) for k, v in d.tags.items()])
    return Run(run_info(run, artifact_uri), data, inputs(run.inputs), outputs)


def inputs(value: g.RunInputs) -> RunInputs:
    return RunInputs(dataset_inputs=[
        DatasetInput(Dataset(**vars(i.dataset)), [InputTag(t.key, t.value) for t in i.tags])
        for i in value.dataset_inputs
    ], model_inputs=[])


def experiment(exp: g.Experiment, artifact_location: str) -> Experiment:
    return Experiment(exp.experiment_id, exp.name, artifact_location, exp.lifecycle_stage,
                      [ExperimentTag(k, v) for k, v in exp.tags.items()], exp.creation_time, exp.last_update_time)


def metric(m: g.Metric) -> Metric:
    return Metric(m.key, m.value, m.timestamp, m.step)
