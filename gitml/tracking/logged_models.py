"""MLflow 3's logged models, as directories of a run's artifacts.

MLflow 3 gives every ``log_model`` a *logged model* entity (id ``m-<32 hex>``)
with its own artifact location. In gitml a model is a directory of the run's
artifacts (``<run>/model/MLmodel``...), as ``gitml.sklearn.log_model`` writes
it, so a logged model is that directory plus a small record: its id, name,
type, status, tags and the step it was logged at. The record is a run tag,
``gitml.model.<model_id>`` = sorted JSON, so it travels, merges (per key, last
writer wins) and is found through the query index like any tag, and nothing
new is added to the run tree::

    gitml.model.m-0f3c…  {"created": 1718000000000, "model_type": null, "name": "model",
                          "status": "PENDING", "step": 0, "tags": {}, "updated": 1718000000000}

A logged model cannot exist without its run here (MLflow allows that); its
params and metrics are the run's.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml.errors import InvalidValue, NotFound, RunNotFound
from gitml.tracking import validation

if TYPE_CHECKING:  # the store loads libgit2's binding; models/ import this module
    from gitml.store.repo import GitRepo

TAG_PREFIX = "gitml.model."
MODEL_ID_RE = re.compile(r"m-[0-9a-f]{32}")
STATUSES = ("PENDING", "READY", "FAILED")
#: The file that makes a directory of a run's artifacts a model (``gitml.models.mlmodel.MLMODEL``).
MLMODEL_FILE = "MLmodel"


class LoggedModelNotFound(NotFound):
    """No logged model with that id in the repository."""


# The ids gitml's own ``log_model`` derives for a run's model directory (see ``gitml/models/logged.py``).
_ID = re.compile(r"m-([0-9a-f]{32})-([0-9a-f]{8})")


def model_id_for(run_id: str, artifact_path: str) -> str:
    """The id of the model logged by run ``run_id`` at ``artifact_path``."""
    return f"m-{run_id}-{_path_hash(artifact_path)}"


def parse_model_id(text: str) -> tuple[str, str] | None:
    """``(run_id, path hash)`` if ``text`` is a logged-model id gitml made, else None."""
    m = _ID.fullmatch(text)
    return (m.group(1), m.group(2)) if m else None


def _path_hash(path: str) -> str:
    return hashlib.sha256(path.strip("/").encode()).hexdigest()[:8]


def locate(repo: GitRepo, model_id: str) -> tuple[str, str]:
    """``(run_id, artifact path)`` of logged model ``model_id``.

    Raises:
        LoggedModelNotFound: not an id gitml makes, no such run, or no model
            directory in that run with this id.
    """
    from gitml.tracking import artifacts  # here: models/ import this module; artifacts loads the index

    parsed = parse_model_id(model_id)
    if parsed is None:
        # An id MLflow's client made through the store plugin (m-<32 hex>): a record in a run tag.
        record = get(repo, model_id)
        return record.run_id, record.name
    run_id, digest = parsed
    try:
        manifest = artifacts.manifest(repo, run_id)
    except RunNotFound as e:
        raise LoggedModelNotFound(f"Logged model {model_id!r} not found: its run {run_id} is not in this "
                                  "repository (pull it first?)") from e
    suffix = "/" + MLMODEL_FILE
    paths = [p[: -len(suffix)] for p in manifest if p.endswith(suffix) and _path_hash(p[: -len(suffix)]) == digest]
    if len(paths) != 1:
        raise LoggedModelNotFound(f"Logged model {model_id!r} not found in run {run_id}"
                                  + (f" (ambiguous: {paths})" if paths else ""))
    return run_id, paths[0]


@dataclass
class LoggedModel:
    """One logged model: a directory ``name`` of run ``run_id``'s artifacts."""

    model_id: str
    name: str
    run_id: str
    experiment_id: str
    created: int
    updated: int
    status: str = "PENDING"
    model_type: str | None = None
    step: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False

    def record(self) -> str:
        """The JSON the run's tag holds."""
        data: dict[str, Any] = {"created": self.created, "model_type": self.model_type, "name": self.name,
                                "status": self.status, "step": self.step, "tags": self.tags,
                                "updated": self.updated}
        if self.deleted:
            data["deleted"] = True
        return json.dumps(data, sort_keys=True, ensure_ascii=False)


def tag_key(model_id: str) -> str:
    return TAG_PREFIX + model_id


def _parse(run_id: str, experiment_id: str, key: str, value: str) -> LoggedModel | None:
    """The record of tag ``key`` (None if it is not one gitml writes: a tag is anyone's to set)."""
    model_id = key[len(TAG_PREFIX):]
    if not MODEL_ID_RE.fullmatch(model_id):
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or data.get("status") not in STATUSES:
        return None
    tags = data.get("tags") or {}
    times = [data.get("created"), data.get("updated"), data.get("step", 0)]
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()) \
            or not all(type(t) is int for t in times) or not isinstance(data.get("model_type") or "", str):
        return None
    return LoggedModel(model_id, data["name"], run_id, experiment_id, data["created"], data["updated"],
                       data["status"], data.get("model_type"), data.get("step", 0), dict(tags),
                       bool(data.get("deleted")))


def create(repo: GitRepo, run_id: str, name: str, model_type: str | None = None,
           tags: dict[str, str] | None = None) -> LoggedModel:
    """Record a new logged model ``name`` (a directory of the run's artifacts) for run ``run_id``.

    Raises:
        RunNotFound, RunNotActive (deleted run), InvalidName (a name that is not an artifact path).
    """
    from gitml.tracking import runs  # here: models/ import this module; runs loads the index

    path = validation.validate_artifact_path(name, "model name")
    if not path:
        raise InvalidValue("A logged model needs a name: the directory of the run's artifacts that holds it")
    w = runs.writer_for_existing(repo, run_id)
    experiment_id = runs.get_run(repo, w.run_id).info.experiment_id
    now = int(time.time() * 1000)
    model = LoggedModel(f"m-{uuid.uuid4().hex}", path, w.run_id, experiment_id, now, now, model_type=model_type,
                        tags={str(k): str(v) for k, v in (tags or {}).items()})
    w.set_tag(tag_key(model.model_id), model.record())
    return model


def get(repo: GitRepo, model_id: str, allow_deleted: bool = False) -> LoggedModel:
    """The logged model ``model_id``.

    Raises:
        LoggedModelNotFound.
    """
    from gitml.tracking import runs  # here: models/ import this module; runs loads the index

    if isinstance(model_id, str) and MODEL_ID_RE.fullmatch(model_id):
        idx = runs.sync_index(repo)
        for run_id, key, value in idx.tags_with_prefix(tag_key(model_id)):
            found = idx.load([run_id])
            model = _parse(run_id, found[0].info.experiment_id if found else "0", key, value)
            if model is not None and key == tag_key(model_id) and (allow_deleted or not model.deleted):
                return model
    raise LoggedModelNotFound(f"Logged model with ID {model_id!r} not found in {repo.git_dir}")


def save(repo: GitRepo, model: LoggedModel) -> None:
    """Write ``model``'s record back to its run (status, tags, step changed)."""
    from gitml.tracking import runs  # here: models/ import this module; runs loads the index

    model.updated = int(time.time() * 1000)
    runs.writer_for_existing(repo, model.run_id).set_tag(tag_key(model.model_id), model.record())


def search(repo: GitRepo, experiment_ids: list[str] | None, name: str | None = None,
           run_id: str | None = None) -> list[LoggedModel]:
    """Logged models of runs in ``experiment_ids`` (None: all), newest first; optionally by name and run."""
    from gitml.tracking import runs  # here: models/ import this module; runs loads the index

    idx = runs.sync_index(repo)
    rows = idx.tags_with_prefix(TAG_PREFIX, experiment_ids)
    experiments = {r.info.run_id: r.info.experiment_id for r in idx.load(sorted({row[0] for row in rows}))}
    out = []
    for rid, key, value in rows:
        model = _parse(rid, experiments.get(rid, "0"), key, value)
        if model is None or model.deleted or (name is not None and model.name != name) \
                or (run_id is not None and rid != run_id):
            continue
        out.append(model)
    return sorted(out, key=lambda m: (-m.created, m.model_id))


def of_run(state_tags: dict[str, str], run_id: str, experiment_id: str) -> list[LoggedModel]:
    """The logged models a run's tags record (for the run's outputs)."""
    found = [_parse(run_id, experiment_id, k, v) for k, v in state_tags.items() if k.startswith(TAG_PREFIX)]
    return sorted((m for m in found if m is not None and not m.deleted), key=lambda m: (m.created, m.model_id))
