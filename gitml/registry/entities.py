"""MLflow's registry entities (``ModelVersion``, ``RegisteredModel``) over the tags and the metadata log.

MLflow numbers versions 1, 2, 3; gitml's versions are semvers in tags. A
``ModelVersion``'s ``version`` is the number (so ``models:/rf/{mv.version}``
works as in MLflow) and ``semver`` is the tag's version.

How MLflow's fields map onto git:

- ``current_stage`` is the MLflow stage (Staging, Production, Archived) among the version's
  GTO stages, else ``"None"``; ``aliases`` are its other GTO stages. An alias and a stage are
  the same thing in git (a ``name#stage#n`` tag: one holder, a version may hold several).
- ``description``: the latest ``describe`` event of the metadata log, else the registration
  tag's message (None when it is the default "Registering model ..." text).
- ``tags``: the ``Gitml-Tags:`` trailer of the registration tag, then the log's tag events.

``dict(entity)`` gives MLflow's keys, as ``dict(mlflow_entity)`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gitml.registry.metadata import ModelMeta, VersionMeta
from gitml.registry.state import ModelState, VersionState
from gitml.tracking import filters

#: MLflow's stages (besides "None"), as gitml writes them in GTO stage tags.
MLFLOW_STAGES = ("production", "staging", "archived")
_DEFAULT_MESSAGE = re.compile(r"^Registering (?:model|artifact) \S+ version v\S+$")


def is_mlflow_stage(stage: str) -> bool:
    return stage.lower() in MLFLOW_STAGES


def current_stage(v: VersionState) -> str:
    """The version's MLflow stage: the first of Production, Staging, Archived it holds, else "None"."""
    held = {s.lower() for s in v.stages}
    return next((s.capitalize() for s in MLFLOW_STAGES if s in held), "None")


def description(v: VersionState, meta: VersionMeta | None = None) -> str | None:
    """The version's description: the latest one set, else its tag message (None if gitml's or GTO's default)."""
    if meta is not None and meta.described:
        return meta.description
    text = v.message.strip()
    return None if not text or _DEFAULT_MESSAGE.match(text) else text


def version_tags(v: VersionState, meta: VersionMeta | None = None) -> dict[str, str]:
    """Tags as created (the tag's trailer), then as set and deleted since (None = deleted)."""
    merged: dict[str, str | None] = {**v.tags, **(meta.tags if meta else {})}
    return {k: val for k, val in sorted(merged.items()) if val is not None}


_MV_KEYS = ("aliases", "creation_timestamp", "current_stage", "deployment_job_state", "description",
            "last_updated_timestamp", "metrics", "model_id", "name", "params", "run_id", "run_link", "source",
            "status", "status_message", "tags", "user_id", "version", "workspace")
_RM_KEYS = ("aliases", "creation_timestamp", "deployment_job_id", "deployment_job_state", "description",
            "last_updated_timestamp", "latest_versions", "name", "tags", "workspace")


@dataclass
class ModelVersion:
    name: str
    version: str
    semver: str
    creation_timestamp: int  # ms
    last_updated_timestamp: int
    description: str | None
    user_id: str
    current_stage: str
    source: str
    run_id: str | None
    status: str
    stages: list[str]
    aliases: list[str]
    commit: str
    tag: str
    deregistered: bool
    tags: dict[str, str] = field(default_factory=dict)
    comments: list[Any] = field(default_factory=list)
    run_link: str | None = None
    status_message: str | None = None
    model_id: str | None = None
    params: Any = None
    metrics: Any = None
    deployment_job_state: Any = None
    workspace: str = "default"

    @classmethod
    def of(cls, v: VersionState, comments: list[Any] | None = None, meta: VersionMeta | None = None,
           name: str | None = None) -> ModelVersion:
        return cls(
            name=name or v.model, version=str(v.number), semver=v.version,
            creation_timestamp=v.registered_at * 1000,
            last_updated_timestamp=max(v.updated_at * 1000, meta.updated if meta else 0),
            description=description(v, meta), user_id=v.author,
            current_stage=current_stage(v),
            source=v.source or (f"runs:/{v.run_id}/{v.path}" if v.run_id and v.path else v.commit),
            run_id=v.run_id, status="READY" if v.active else "DEREGISTERED",
            stages=list(v.stages), aliases=sorted(s for s in v.stages if not is_mlflow_stage(s)),
            commit=v.commit, tag=v.tag, deregistered=not v.active, tags=version_tags(v, meta),
            comments=list(comments or []), run_link=v.run_link,
        )

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """MLflow's keys, so ``dict(mv)`` is what ``dict()`` of MLflow's ``ModelVersion`` gives."""
        for key in _MV_KEYS:
            yield key, getattr(self, key)


@dataclass
class RegisteredModel:
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None
    latest_versions: list[ModelVersion]
    aliases: dict[str, str]  # alias (a GTO stage other than MLflow's) -> version number
    deprecated: bool
    tags: dict[str, str] = field(default_factory=dict)
    deployment_job_id: str | None = None
    deployment_job_state: Any = None
    workspace: str = "default"

    @classmethod
    def of(cls, m: ModelState | None, meta: ModelMeta | None = None, name: str | None = None) -> RegisteredModel:
        meta = meta or ModelMeta(name or (m.name if m else ""))
        events = m.events if m is not None else []
        first = events[0].time * 1000 if events else 0
        made = meta.created if meta.exists else 0
        # a model re-created after its deletion was made then; else by its first trace in git
        created = made if meta.after else min((t for t in (made, first) if t), default=0)
        return cls(
            name=name or meta.name,
            creation_timestamp=created,
            last_updated_timestamp=max((m.last_time * 1000 if m else 0), meta.updated, created),
            description=meta.description,
            latest_versions=latest_versions(m, meta=meta) if m is not None else [],
            aliases={stage: str(v.number) for stage, v in sorted(m.stages.items()) if not is_mlflow_stage(stage)}
            if m is not None else {},
            deprecated=bool(m and m.deprecated),
            tags={k: v for k, v in sorted(meta.tags.items()) if v is not None},
        )

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """MLflow's keys, so ``dict(rm)`` is what ``dict()`` of MLflow's ``RegisteredModel`` gives."""
        for key in _RM_KEYS:
            yield key, getattr(self, key)


def latest_versions(m: ModelState, stages: list[str] | None = None, meta: ModelMeta | None = None) -> list[ModelVersion]:
    """MLflow's ``get_latest_versions``: for each MLflow stage (or each of ``stages``), the active
    version with the highest number in it. A stage that is not one of MLflow's (an alias)
    gives the version holding it."""
    wanted = None if not stages else {s.lower() for s in stages}
    best: dict[str, VersionState] = {}
    for v in m.active_versions():
        stage = current_stage(v).lower()
        if wanted is None or stage in wanted:
            if stage not in best or v.number > best[stage].number:
                best[stage] = v
    for stage, v in m.stages.items():
        if wanted is not None and stage.lower() in wanted and not is_mlflow_stage(stage) and stage.lower() != "none":
            best[stage.lower()] = v
    seen: set[int] = set()
    out = []
    for v in sorted(best.values(), key=lambda v: v.number):
        if v.number not in seen:
            seen.add(v.number)
            out.append(ModelVersion.of(v, meta=meta.version(v.version) if meta else None))
    return out


# -- filters -----------------------------------------------------------------------------------


def version_record(mv: ModelVersion) -> dict[str, Any]:
    """What a model version filter compares (``filters.MODEL_VERSIONS``): its fields by filter key,
    its stages as a list (any may match; ``["none"]`` without one), its tags."""
    return {"name": mv.name, "run_id": mv.run_id or "", "version_number": int(mv.version), "semver": mv.semver,
            "stage": list(mv.stages) or ["none"], "source": mv.source, "source_path": mv.source, "tags": mv.tags}


def matches_version(mv: ModelVersion, comparisons: list[filters.Comparison]) -> bool:
    """True if ``mv`` passes every comparison; stages compare case-insensitively, whatever the operator."""
    return filters.match_record(comparisons, version_record(mv), filters.MODEL_VERSIONS)


def matches_model(rm: RegisteredModel, comparisons: list[filters.Comparison]) -> bool:
    """True if ``rm`` passes every comparison of a ``filters.REGISTERED_MODELS`` filter."""
    return filters.match_record(comparisons, {"name": rm.name, "tags": rm.tags}, filters.REGISTERED_MODELS)
