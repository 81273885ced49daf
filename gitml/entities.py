"""``mlflow.entities`` for ``import gitml as mlflow``: the objects runs, experiments and models come back as."""

from gitml.models.logged import LoggedModel
from gitml.tracking.artifacts import FileInfo
from gitml.tracking.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)

__all__ = ["Experiment", "FileInfo", "LifecycleStage", "LoggedModel", "Metric", "Param", "Run", "RunData",
           "RunInfo", "RunStatus", "RunTag", "ViewType"]
