"""Run, Experiment and Metric objects, shaped like MLflow's entities.

Scripts written against MLflow read ``run.info.run_id``, ``run.data.metrics``
and friends; these classes keep those attribute names.
"""

from __future__ import annotations

import gc
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from gitml.errors import InvalidValue


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
    def is_terminated(status: str | int) -> bool:
        return RunStatus.to_string(status) in RunStatus.TERMINAL

    # MLflow's RunStatus members are numbers (RUNNING = 1 ... KILLED = 5) while a run's
    # ``info.status`` is the name; here both are the name, and MLflow's numbers are
    # accepted wherever a status is converted, so ``RunStatus.to_string(RunStatus.FINISHED)``
    # and ``RunStatus.from_string(run.info.status)`` compare as they do in MLflow.
    @staticmethod
    def to_string(status: str | int) -> str:
        """The status name (MLflow's number 1-5 or a name)."""
        if isinstance(status, int) and 1 <= status <= len(RunStatus.ALL):
            return RunStatus.ALL[status - 1]
        if status in RunStatus.ALL:
            return str(status)
        raise InvalidValue(f"Unknown run status {status!r}; expected one of {', '.join(RunStatus.ALL)}")

    @staticmethod
    def from_string(status: str) -> str:
        """The status name, checked (MLflow returns its number; gitml's members are the names)."""
        return RunStatus.to_string(status)

    @staticmethod
    def all_status() -> list[str]:
        return list(RunStatus.ALL)


class LifecycleStage:
    ACTIVE = "active"
    DELETED = "deleted"


class ViewType:
    """Which runs a search returns (MLflow's ``ViewType``)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    _NAMES = {"ACTIVE_ONLY": 1, "DELETED_ONLY": 2, "ALL": 3}

    @staticmethod
    def from_string(view_str: str) -> int:
        """MLflow's ``ViewType.from_string("active_only")``.

        Raises:
            InvalidValue: not one of ACTIVE_ONLY, DELETED_ONLY, ALL.
        """
        number = ViewType._NAMES.get(str(view_str).upper())
        if number is None:
            raise InvalidValue(f"Unknown view type {view_str!r}; expected ACTIVE_ONLY, DELETED_ONLY or ALL")
        return number

    @staticmethod
    def to_string(view_type: int) -> str:
        return next((name for name, number in ViewType._NAMES.items() if number == view_type), str(view_type))

    @staticmethod
    def stages(view_type: int) -> list[str]:
        if view_type == ViewType.ACTIVE_ONLY:
            return [LifecycleStage.ACTIVE]
        if view_type == ViewType.DELETED_ONLY:
            return [LifecycleStage.DELETED]
        return [LifecycleStage.ACTIVE, LifecycleStage.DELETED]


#: ViewType by the names the CLI's ``--view`` and the viewer's ``?view=`` take.
VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int


def metric_entities(key: str, steps: list[int], timestamps: list[int], values: list[float]) -> list[Metric]:
    """``Metric(key, value, timestamp, step)`` for each point of one key's history, in order.

    Histories of 100k points are common, and the frozen dataclass's
    ``__init__`` (four ``object.__setattr__`` calls) costs ~1 us a point.
    Here the objects are allocated, then each field set for all of them by
    ``map`` over the slot's descriptor: C loops, ~4x faster. The objects are
    the same in every way (fields, equality, hash, repr).
    """
    # 100k new objects set off the cyclic garbage collector ~140 times (a quarter of the time
    # here); these cannot form a cycle, so it waits until they are made.
    collecting = gc.isenabled()
    gc.disable()
    try:
        out: list[Metric] = list(map(object.__new__, repeat(Metric, len(steps))))
        sink: deque[None] = deque(maxlen=0)  # runs each map for its effect, keeping nothing
        sink.extend(map(_METRIC_KEY.__set__, out, repeat(key)))
        sink.extend(map(_METRIC_VALUE.__set__, out, values))
        sink.extend(map(_METRIC_TIMESTAMP.__set__, out, timestamps))
        sink.extend(map(_METRIC_STEP.__set__, out, steps))
    finally:
        if collecting:
            gc.enable()
    return out


# The slot descriptors of Metric's fields (set directly: the class is frozen).
_METRIC_KEY, _METRIC_VALUE, _METRIC_TIMESTAMP, _METRIC_STEP = (
    Metric.__dict__[name] for name in ("key", "value", "timestamp", "step"))


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
