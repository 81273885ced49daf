"""Experiments: a named group of runs, stored as ``refs/gitml/experiments/<id>``.

The ref points at a commit whose tree holds ``experiment.json``; each change
is a new commit on top, compare-and-swap. The id is derived from the name
(digits, as MLflow ids are), so two clones that create the same experiment
agree on its id and their runs meet in one experiment after a fetch. The
"Default" experiment (id "0") always exists, as in MLflow.
"""

from __future__ import annotations

import hashlib
import json
import time

from gitml.errors import ConcurrentUpdate, ExperimentNotFound, InvalidName
from gitml.store import names
from gitml.store.repo import CAS_RETRIES, GitRepo
from gitml.tracking import validation
from gitml.tracking.entities import Experiment, LifecycleStage, ViewType

DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
FILE = "experiment.json"


def _derived_id(name: str, salt: int = 0) -> str:
    digest = hashlib.sha1(f"{name}\0{salt}".encode()).hexdigest()
    return str(int(digest[:15], 16))


def _default() -> Experiment:
    return Experiment(DEFAULT_ID, DEFAULT_NAME, "runs:/", creation_time=0, last_update_time=0)


def _from_json(data: dict) -> Experiment:
    return Experiment(
        experiment_id=data["experiment_id"],
        name=data["name"],
        artifact_location=data.get("artifact_location") or "runs:/",
        lifecycle_stage=data.get("lifecycle_stage", LifecycleStage.ACTIVE),
        tags=dict(data.get("tags") or {}),
        creation_time=data.get("creation_time"),
        last_update_time=data.get("last_update_time"),
    )


def _read(repo: GitRepo, experiment_id: str) -> tuple[Experiment | None, str | None]:
    old = repo.ref_target(names.experiment_ref(experiment_id))
    if old is None:
        return (_default() if experiment_id == DEFAULT_ID else None), None
    raw = repo.read_path(repo.commit_info(old).tree, FILE)
    return _from_json(json.loads(raw or b"{}")), old


def _write(repo: GitRepo, exp: Experiment, old: str | None) -> bool:
    data = {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "artifact_location": exp.artifact_location,
        "lifecycle_stage": exp.lifecycle_stage,
        "tags": exp.tags,
        "creation_time": exp.creation_time,
        "last_update_time": exp.last_update_time,
    }
    blob = (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    tree = repo.update_tree(None, {FILE: blob})
    commit = repo.write_commit(tree, [old] if old else [], f"gitml experiment {exp.name}\n")
    return repo.cas_ref(names.experiment_ref(exp.experiment_id), commit, old)


def list_experiments(repo: GitRepo, view_type: int = ViewType.ACTIVE_ONLY) -> list[Experiment]:
    """Every experiment in the repository, Default first, then by name."""
    found: dict[str, Experiment] = {DEFAULT_ID: _default()}
    for ref, _ in repo.iter_refs(names.EXPERIMENTS_PREFIX):
        experiment_id = names.parse_experiment_ref(ref)
        if experiment_id is not None:
            exp, _ = _read(repo, experiment_id)
            if exp is not None:
                found[experiment_id] = exp
    stages = ViewType.stages(view_type)
    exps = [e for e in found.values() if e.lifecycle_stage in stages]
    return sorted(exps, key=lambda e: (e.experiment_id != DEFAULT_ID, e.name))


def exists(repo: GitRepo, experiment_id: str) -> bool:
    """True if the experiment exists (cheap: one ref lookup)."""
    return experiment_id == DEFAULT_ID or repo.ref_target(names.experiment_ref(str(experiment_id))) is not None


def get_experiment(repo: GitRepo, experiment_id: str) -> Experiment:
    """Raises: ExperimentNotFound."""
    exp, _ = _read(repo, str(experiment_id)) if names.EXPERIMENT_ID_RE.match(str(experiment_id)) else (None, None)
    if exp is None:
        raise ExperimentNotFound(f"No experiment with id {experiment_id!r} in {repo.git_dir}")
    return exp


def get_experiment_by_name(repo: GitRepo, name: str) -> Experiment | None:
    if name == DEFAULT_NAME:
        exp, _ = _read(repo, DEFAULT_ID)
        if exp is not None and exp.name == DEFAULT_NAME:
            return exp
    for salt in range(8):
        exp, _ = _read(repo, _derived_id(name, salt))
        if exp is None:
            break
        if exp.name == name:
            return exp
    # renamed experiments keep their old id: fall back to a scan
    for exp in list_experiments(repo, ViewType.ALL):
        if exp.name == name:
            return exp
    return None


def create_experiment(repo: GitRepo, name: str, tags: dict[str, str] | None = None) -> str:
    """Create experiment ``name`` and return its id.

    Raises:
        InvalidName: the name is invalid or already used.
    """
    name = validation.validate_experiment_name(name)
    if get_experiment_by_name(repo, name) is not None:
        raise InvalidName(f"Experiment {name!r} already exists")
    now = int(time.time() * 1000)
    for salt in range(8):
        experiment_id = _derived_id(name, salt)
        exp = Experiment(experiment_id, name, "runs:/", tags=dict(tags or {}), creation_time=now, last_update_time=now)
        if _write(repo, exp, None):
            return experiment_id
        other, _ = _read(repo, experiment_id)
        if other is not None and other.name == name:
            return experiment_id  # another process created it at the same time
    raise ConcurrentUpdate(f"Could not find a free id for experiment {name!r}")


def get_or_create(repo: GitRepo, name: str) -> Experiment:
    exp = get_experiment_by_name(repo, name)
    if exp is None:
        exp = get_experiment(repo, create_experiment(repo, name))
    return exp


def update_experiment(repo: GitRepo, experiment_id: str, **changes: object) -> Experiment:
    """Change name, lifecycle_stage or tags of an experiment, compare-and-swap."""
    for _ in range(CAS_RETRIES):
        exp, old = _read(repo, str(experiment_id))
        if exp is None:
            raise ExperimentNotFound(f"No experiment with id {experiment_id!r} in {repo.git_dir}")
        for key, value in changes.items():
            if key == "tags":
                exp.tags.update(value)  # type: ignore[arg-type]
            else:
                setattr(exp, key, value)
        exp.last_update_time = int(time.time() * 1000)
        if _write(repo, exp, old):
            return exp
    raise ConcurrentUpdate(f"Gave up updating experiment {experiment_id}")
