"""MLflow 3's logged models, in git: a logged model is a model directory in a run's artifacts.

Two kinds of id resolve here. A model logged through MLflow's own client
(the store plugin) gets MLflow's ``m-<32 hex>`` id, recorded in a run tag by
``tracking/logged_models.py``. A model gitml's own ``log_model`` writes has
a derived id, below.

MLflow 3 gives every ``log_model`` call a LoggedModel entity with an id
(``m-<hex>``), and ``models:/<model_id>`` loads it. MLflow keeps that entity
in its database. gitml has no second database: the model directory the run
logged *is* the logged model, and its id is derived from where it lives::

    m-<run_id>-<first 8 hex of sha256(artifact path)>

Why derived, and why these parts:

- a run id and an artifact path name one model directory for good: the run
  commit pins the directory's bytes, and the run's ref is the only place
  that names it, so nothing new is stored, pushed, indexed or kept in sync
  (no ref namespace, no tag, no table);
- the full run id inside makes ``models:/m-...`` resolve with one ref lookup
  in any clone that has the run, with no index and no scan: the path part
  is then matched against the run's few ``*/MLmodel`` entries;
- every clone computes the same id for the same model, as it does for
  experiments (name-derived ids).

The id is written into the model's MLmodel (``model_id``, as MLflow writes
it), and ``get_logged_model(id)`` reads the entity back from the run: its
name (the artifact path), source run, experiment, the run's params and
metrics (MLflow 3 merges the run's params into a logged model's too), and
the ``params``/``tags``/``model_type`` given to ``log_model``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml.models.mlmodel import MLMODEL, Model
from gitml.tracking.logged_models import (  # noqa: F401 - the ids are defined with the records, re-exported here
    LoggedModelNotFound,
    locate,
    model_id_for,
    parse_model_id,
)

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo


@dataclass
class LoggedModel:
    """MLflow 3's ``mlflow.entities.LoggedModel``, read from a run's model directory."""

    model_id: str
    name: str
    experiment_id: str
    source_run_id: str
    artifact_location: str
    model_uri: str
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    model_type: str | None = None
    status: str = "READY"
    status_message: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[Any] | None = None
    flavors: dict[str, Any] = field(default_factory=dict)

    def to_dictionary(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["metrics"] = [vars(m) for m in self.metrics or []]
        return out


def get_logged_model(model_id: str) -> LoggedModel:
    """MLflow 3's ``mlflow.get_logged_model``: the model a run logged, by its id (``ModelInfo.model_id``),
    in the repository gitml tracks into.

    Raises:
        LoggedModelNotFound, and the artifact cache's MissingObject/CorruptObject.
    """
    from gitml.tracking import runs

    return read_logged_model(runs.open_repo(), model_id)


def read_logged_model(repo: GitRepo, model_id: str) -> LoggedModel:
    """The LoggedModel for ``model_id``, read from its run in ``repo``.

    Raises:
        LoggedModelNotFound, and the artifact cache's MissingObject/CorruptObject.
    """
    from gitml.tracking import artifacts, runs

    run_id, path = locate(repo, model_id)
    run = runs.get_run(repo, run_id)
    meta = Model.from_yaml(artifacts.read_artifact(repo, run_id, f"{path}/{MLMODEL}"),
                           f"runs:/{run_id}/{path}/{MLMODEL}")
    extra = meta.logged_model or {}
    created = _ms(meta.utc_time_created)
    params = {**run.data.params, **{str(k): str(v) for k, v in (extra.get("params") or {}).items()}}
    return LoggedModel(
        model_id=model_id, name=path, experiment_id=run.info.experiment_id, source_run_id=run_id,
        artifact_location=f"runs:/{run_id}/{path}", model_uri=f"models:/{model_id}",
        creation_timestamp=created, last_updated_timestamp=created,
        model_type=extra.get("model_type"), tags={str(k): str(v) for k, v in (extra.get("tags") or {}).items()},
        params=params, metrics=[m for key in sorted(run.data.metrics)
                                for m in runs.metric_history(repo, run_id, key)[-1:]],
        flavors=meta.flavors,
    )


def _ms(utc: str) -> int | None:
    try:
        when = dt.datetime.strptime(utc, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        return None
    return int(when.timestamp() * 1000)
