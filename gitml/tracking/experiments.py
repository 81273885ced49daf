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
from collections.abc import Callable
from typing import Any

from gitml import settings
from gitml.errors import ConcurrentUpdate, CorruptRun, ExperimentNotFound, GitmlError, InvalidName, NotFound
from gitml.store import names
from gitml.store.repo import CAS_RETRIES, GitRepo
from gitml.tracking import schema, validation
from gitml.tracking.entities import Experiment, LifecycleStage, ViewType

DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
FILE = "experiment.json"


class ExperimentExists(InvalidName):
    """Another experiment already has that name."""

    error_code = "RESOURCE_ALREADY_EXISTS"


class ExperimentNotActive(GitmlError):
    """The experiment is deleted (or, for a restore, not deleted)."""

    http_status = 400
    error_code = "INVALID_STATE"


def _derived_id(name: str, salt: int = 0) -> str:
    digest = hashlib.sha1(f"{name}\0{salt}".encode()).hexdigest()
    return str(int(digest[:15], 16))


def _default() -> Experiment:
    return Experiment(DEFAULT_ID, DEFAULT_NAME, "runs:/", creation_time=0, last_update_time=0)


def _from_json(data: dict[str, Any]) -> Experiment:
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
    return read_experiment(repo, old, experiment_id), old


def read_experiment(repo: GitRepo, commit: str, experiment_id: str) -> Experiment:
    """The experiment stored in ``commit``, checked like a run (it may come from another clone).

    Raises:
        CorruptRun: not a commit holding a well-formed experiment.json for ``experiment_id``.
    """
    def bad(problem: object) -> CorruptRun:
        return CorruptRun(f"Experiment {experiment_id} (commit {commit[:12]}) is malformed: {problem}")

    found = repo.read_commit_files(commit, (FILE,))
    if found is None or FILE not in found[2]:
        raise bad(f"it is not a commit holding {FILE}")
    try:
        data = schema.load_json(found[2][FILE], FILE)
        if type(data) is not dict or data.get("experiment_id") != experiment_id:
            raise schema.Problem(f"{FILE} does not name experiment {experiment_id}")
        validation.validate_experiment_name(data.get("name"))
        if data.get("lifecycle_stage", LifecycleStage.ACTIVE) not in (LifecycleStage.ACTIVE, LifecycleStage.DELETED):
            raise schema.Problem("lifecycle_stage must be 'active' or 'deleted'")
        schema.check_tags(data.get("tags") or {})
        for key in ("creation_time", "last_update_time"):
            if data.get(key) is not None and (type(data[key]) is not int or data[key] < 0):
                raise schema.Problem(f"{key} must be milliseconds or null")
        if type(data.get("artifact_location") or "") is not str:
            raise schema.Problem("artifact_location must be a string")
    except (schema.Problem, GitmlError) as e:
        raise bad(e) from None
    return _from_json(data)


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
    with repo.batch():
        tree = repo.update_tree(None, {FILE: blob})
        commit = repo.write_commit(tree, [old] if old else [], f"gitml experiment {exp.name}\n")
    return repo.cas_ref(names.experiment_ref(exp.experiment_id), commit, old)


def list_experiments(repo: GitRepo, view_type: int = ViewType.ACTIVE_ONLY) -> list[Experiment]:
    """Every experiment in the repository, Default first, then by name."""
    found: dict[str, Experiment] = {DEFAULT_ID: _default()}
    for ref, oid in repo.iter_refs(names.EXPERIMENTS_PREFIX):
        experiment_id = names.parse_experiment_ref(ref)
        if experiment_id is not None:
            try:
                found[experiment_id] = read_experiment(repo, oid, experiment_id)
            except CorruptRun as e:
                schema.warn_skipped(e, oid)
    stages = ViewType.stages(view_type)
    exps = [e for e in found.values() if e.lifecycle_stage in stages]
    return sorted(exps, key=lambda e: (e.experiment_id != DEFAULT_ID, e.name))


def search_experiments(
    repo: GitRepo,
    view_type: int = ViewType.ACTIVE_ONLY,
    filter_string: str | None = None,
    order_by: list[str] | None = None,
) -> list[Experiment]:
    """Experiments matching an MLflow ``search_experiments`` filter, in ``order_by`` order
    (default: newest first, then by id, as MLflow).

    Raises:
        InvalidFilter: the filter or order_by does not parse.
    """
    from gitml.tracking import filters  # searches only: creating runs (the hook) does not load it

    comparisons = filters.parse_experiment_filter(filter_string)
    keys = filters.parse_experiment_order_by(order_by)
    found = [(vars(e), e) for e in list_experiments(repo, view_type)]
    kept = {id(d): e for d, e in found if filters.match_experiment(comparisons, d)}
    return [kept[id(d)] for d in filters.sort_experiments([d for d, e in found if id(d) in kept], keys)]


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
        try:
            exp, _ = _read(repo, _derived_id(name, salt))
        except CorruptRun:
            continue  # a malformed experiment holds this id: the name takes the next salt
        if exp is None:
            break
        if exp.name == name:
            return exp
    # renamed experiments keep their old id: fall back to a scan
    for exp in list_experiments(repo, ViewType.ALL):
        if exp.name == name:
            return exp
    return None


def find_experiment(repo: GitRepo, name_or_id: str) -> Experiment:
    """The experiment named ``name_or_id``, else the one with that id (what the CLI's EXP arguments take).

    Raises:
        ExperimentNotFound: neither a name nor an id of an experiment (deleted ones included).
    """
    exp = get_experiment_by_name(repo, name_or_id)
    if exp is not None:
        return exp
    try:
        return get_experiment(repo, name_or_id)
    except ExperimentNotFound:
        raise ExperimentNotFound(f"No experiment named or numbered {name_or_id!r} in {repo.git_dir}") from None


def create_experiment(repo: GitRepo, name: str, tags: dict[str, str] | None = None) -> str:
    """Create experiment ``name`` and return its id.

    Raises:
        InvalidName: the name is invalid or already used.
    """
    name = validation.validate_experiment_name(name)
    for key, value in (tags or {}).items():
        _check_tag(key, value)
    if get_experiment_by_name(repo, name) is not None:
        raise ExperimentExists(f"Experiment {name!r} already exists")
    # Ids derive from names, so they cannot break a tie between two experiments created in the
    # same millisecond the way MLflow's sequential ids do: keep creation times strictly increasing
    # instead, and "newest first" stays creation order. Not past a minute ahead of this clock:
    # one experiment dated in the future (another machine's clock) must not date every later one.
    now = int(time.time() * 1000)
    newest = max((e.creation_time or 0 for e in list_experiments(repo, ViewType.ALL)), default=0)
    if now <= newest < now + 60_000:
        now = newest + 1
    for salt in range(8):
        experiment_id = _derived_id(name, salt)
        exp = Experiment(experiment_id, name, "runs:/", tags=dict(tags or {}), creation_time=now, last_update_time=now)
        if _write(repo, exp, None):
            return experiment_id
        try:
            other, _ = _read(repo, experiment_id)
        except CorruptRun:
            continue
        if other is not None and other.name == name:
            return experiment_id  # another process created it at the same time
    raise ConcurrentUpdate(f"Could not find a free id for experiment {name!r}")


def get_or_create(repo: GitRepo, name: str) -> Experiment:
    exp = get_experiment_by_name(repo, name)
    if exp is None:
        exp = get_experiment(repo, create_experiment(repo, name))
    return exp


def from_settings(repo: GitRepo) -> str:
    """The id of the experiment the settings name: ``experiment_id``, else ``experiment_name``
    (created if needed), else the default experiment. Read at each call.
    """
    experiment_id = settings.get("experiment_id")
    if experiment_id:
        return str(experiment_id)
    name = settings.get("experiment_name")
    return get_or_create(repo, name).experiment_id if name else DEFAULT_ID


def update_experiment(repo: GitRepo, experiment_id: str, **changes: object) -> Experiment:
    """Change name, lifecycle_stage or tags of an experiment, compare-and-swap."""
    def apply(exp: Experiment) -> None:
        for key, value in changes.items():
            if key == "tags":
                exp.tags.update(value)  # type: ignore[call-overload]
            else:
                setattr(exp, key, value)

    return _update(repo, experiment_id, apply)


def _update(repo: GitRepo, experiment_id: str, apply: Callable[[Experiment], None]) -> Experiment:
    """Apply ``apply`` to the experiment as stored, compare-and-swap with retry (``apply`` may raise)."""
    for _ in range(CAS_RETRIES):
        exp, old = _read(repo, str(experiment_id)) if names.EXPERIMENT_ID_RE.match(str(experiment_id)) else (None, None)
        if exp is None:
            raise ExperimentNotFound(f"No experiment with id {experiment_id!r} in {repo.git_dir}")
        apply(exp)
        exp.last_update_time = int(time.time() * 1000)
        if _write(repo, exp, old):
            return exp
    raise ConcurrentUpdate(f"Gave up updating experiment {experiment_id}")


def _check_tag(key: object, value: object) -> str:
    validation.validate_tag_key(key)
    return validation.validate_tag_value(key, value)


def _active(exp: Experiment, action: str) -> None:
    if exp.lifecycle_stage != LifecycleStage.ACTIVE:
        raise ExperimentNotActive(f"Cannot {action} experiment {exp.experiment_id} ({exp.name!r}): it is deleted")


def rename_experiment(repo: GitRepo, experiment_id: str, new_name: str) -> Experiment:
    """Rename an active experiment; the id stays.

    Raises:
        ExperimentNotFound, ExperimentNotActive, InvalidName, ExperimentExists.
    """
    name = validation.validate_experiment_name(new_name)
    other = get_experiment_by_name(repo, name)
    if other is not None and other.experiment_id != str(experiment_id):
        raise ExperimentExists(f"Experiment {name!r} already exists")

    def apply(exp: Experiment) -> None:
        _active(exp, "rename")
        exp.name = name

    return _update(repo, experiment_id, apply)


def set_experiment_tag(repo: GitRepo, experiment_id: str, key: str, value: object) -> Experiment:
    """Set a tag of an active experiment (MLflow's rules; values up to gitml's 8000 characters).

    Raises:
        ExperimentNotFound, ExperimentNotActive, InvalidName, InvalidValue.
    """
    text = _check_tag(key, value)

    def apply(exp: Experiment) -> None:
        _active(exp, "set a tag on")
        exp.tags[key] = text

    return _update(repo, experiment_id, apply)


def delete_experiment_tag(repo: GitRepo, experiment_id: str, key: str) -> Experiment:
    """Delete a tag of an active experiment.

    Raises:
        ExperimentNotFound, ExperimentNotActive, TagNotFound.
    """
    def apply(exp: Experiment) -> None:
        _active(exp, "delete a tag of")
        if key not in exp.tags:
            raise TagNotFound(f"No tag with name: {key!r} in experiment with id {exp.experiment_id}")
        del exp.tags[key]

    return _update(repo, experiment_id, apply)


class TagNotFound(NotFound):
    """The experiment (or run) has no tag of that name."""


def set_lifecycle(repo: GitRepo, experiment_id: str, stage: str) -> Experiment:
    """Delete (``deleted``) an active experiment or restore (``active``) a deleted one (its runs
    are the caller's: ``runs.delete_experiment``).

    Raises:
        ExperimentNotFound: no such experiment, or it is already in ``stage`` (as MLflow).
    """
    def apply(exp: Experiment) -> None:
        if exp.lifecycle_stage == stage:
            state = "deleted" if stage == LifecycleStage.DELETED else "active"
            raise ExperimentNotFound(f"No {'active' if state == 'deleted' else 'deleted'} experiment with id "
                                     f"{experiment_id!r} in {repo.git_dir} (it is {state} already)")
        exp.lifecycle_stage = stage

    return _update(repo, experiment_id, apply)
