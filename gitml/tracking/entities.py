"""Run, Experiment and Metric objects, shaped like MLflow's entities.

Scripts written against MLflow read ``run.info.run_id``, ``run.data.metrics``
and friends; these classes keep those attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class RunStatus:
    """Run status names, as MLflow spells them."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    ALL = (RUNNING, SCHEDULED, FINISHED, FAILED, KILLED)
    TERMINAL = (FINISHED, FAILED, KILLED)

    @staticmethod
    def is_terminated(status: str) -> bool:
        return status in RunStatus.TERMINAL


class LifecycleStage:
    ACTIVE = "active"
    DELETED = "deleted"


class ViewType:
    """Which runs a search returns (MLflow's ``ViewType``)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    @staticmethod
    def stages(view_type: int) -> list[str]:
        if view_type == ViewType.ACTIVE_ONLY:
            return [LifecycleStage.ACTIVE]
        if view_type == ViewType.DELETED_ONLY:
            return [LifecycleStage.DELETED]
        return [LifecycleStage.ACTIVE, LifecycleStage.DELETED]


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass
class RunData:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # key -> the latest point (value, step, timestamp) that ``metrics`` shows the value of
    latest_metrics: dict[str, Metric] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """A dataset as a run records it (MLflow's ``Dataset`` entity): text fields only.

    ``source``, ``schema`` and ``profile`` are JSON text, as MLflow stores them.
    """

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class InputTag:
    key: str
    value: str


@dataclass(frozen=True)
class DatasetInput:
    """A dataset used by a run, with its input tags (``mlflow.data.context``: train, eval...)."""

    dataset: Dataset
    tags: list[InputTag] = field(default_factory=list)


@dataclass
class RunInputs:
    dataset_inputs: list[DatasetInput] = field(default_factory=list)


@dataclass
class Run:
    """A run as stored in git: ``info``, ``data`` and where its code came from."""

    info: RunInfo
    data: RunData
    source: dict[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    commit: str | None = None  # the run commit (refs/gitml/runs/<id>)
    inputs: RunInputs = field(default_factory=RunInputs)

    def to_dictionary(self) -> dict[str, Any]:
        return {
            "info": dict(vars(self.info)),
            "data": {
                "metrics": dict(self.data.metrics),
                "params": dict(self.data.params),
                "tags": dict(self.data.tags),
            },
            "source": dict(self.source),
            "parent_run_id": self.parent_run_id,
            "commit": self.commit,
            "inputs": {"dataset_inputs": [
                {"dataset": dict(vars(i.dataset)), "tags": [dict(vars(t)) for t in i.tags]}
                for i in self.inputs.dataset_inputs
            ]},
        }


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str = LifecycleStage.ACTIVE
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None


class ActiveRun(Run):
    """The object ``start_run`` returns: a Run that ends itself in a ``with`` block."""

    def __init__(self, run: Run) -> None:
        super().__init__(run.info, run.data, run.source, run.parent_run_id, run.commit, run.inputs)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        from gitml.tracking import fluent

        status = RunStatus.FINISHED if exc_type is None else RunStatus.FAILED
        fluent.end_run(status, _run_id=self.info.run_id)
        return False
