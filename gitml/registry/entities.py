"""MLflow's registry entities (``ModelVersion``, ``RegisteredModel``) over the tag state.

MLflow numbers versions 1, 2, 3; gitml's versions are semvers in tags. A
``ModelVersion``'s ``version`` is the number (so ``models:/rf/{mv.version}``
works as in MLflow) and ``semver`` is the tag's version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import InvalidFilter
from gitml.registry.state import ModelState, VersionState

#: The order in which a version's stages name its MLflow ``current_stage``.
_STAGE_RANK = ("production", "staging", "archived")


@dataclass
class ModelVersion:
    name: str
    version: str
    semver: str
    creation_timestamp: int  # ms
    last_updated_timestamp: int
    description: str
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

    @classmethod
    def of(cls, v: VersionState, comments: list[Any] | None = None) -> ModelVersion:
        ranked = sorted(v.stages, key=lambda s: (_STAGE_RANK.index(s.lower()) if s.lower() in _STAGE_RANK else 99, s))
        return cls(
            name=v.model, version=str(v.number), semver=v.version,
            creation_timestamp=v.registered_at * 1000, last_updated_timestamp=v.updated_at * 1000,
            description=v.message, user_id=v.author,
            current_stage=ranked[0].capitalize() if ranked else "None",
            source=f"runs:/{v.run_id}/{v.path}" if v.run_id and v.path else v.commit,
            run_id=v.run_id, status="READY" if v.active else "DEREGISTERED",
            stages=list(v.stages), aliases=list(v.stages), commit=v.commit, tag=v.tag,
            deregistered=not v.active, comments=list(comments or []),
        )


@dataclass
class RegisteredModel:
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str
    latest_versions: list[ModelVersion]
    aliases: dict[str, str]  # stage -> version number, as MLflow's alias map
    deprecated: bool
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, m: ModelState) -> RegisteredModel:
        return cls(
            name=m.name,
            creation_timestamp=m.events[0].time * 1000 if m.events else 0,
            last_updated_timestamp=m.last_time * 1000,
            description="",
            latest_versions=latest_versions(m),
            aliases={stage: str(v.number) for stage, v in sorted(m.stages.items())},
            deprecated=m.deprecated,
        )


def latest_versions(m: ModelState, stages: list[str] | None = None) -> list[ModelVersion]:
    """MLflow's ``get_latest_versions``: the holder of each stage, and the latest version in no stage."""
    wanted = None if stages is None else {s.lower() for s in stages}
    out: dict[str, VersionState] = {}
    for stage, v in m.stages.items():
        if wanted is None or stage.lower() in wanted:
            out[stage] = v
    if wanted is None or "none" in wanted:
        loose = [v for v in m.active_versions() if not v.stages]
        if loose:
            out["none"] = loose[-1]
    seen, result = set(), []
    for v in sorted(out.values(), key=lambda v: v.number):
        if v.number not in seen:
            seen.add(v.number)
            result.append(ModelVersion.of(v))
    return result


_CLAUSE = re.compile(
    r"\s*(?P<key>name|run_id|version|semver|stage|source)\s*"
    r"(?P<op>=|!=|LIKE|ILIKE|IN)\s*"
    r"(?P<value>'[^']*'|\"[^\"]*\"|\(\s*(?:'[^']*'|\"[^\"]*\")(?:\s*,\s*(?:'[^']*'|\"[^\"]*\"))*\s*\))\s*",
    re.IGNORECASE,
)


def parse_version_filter(filter_string: str | None) -> list[tuple[str, str, Any]]:
    """``name='rf' AND run_id IN ('a','b')`` -> [(key, op, value)].

    Raises:
        InvalidFilter: anything else, naming the part that does not parse.
    """
    if not filter_string or not filter_string.strip():
        return []
    out = []
    for part in re.split(r"\s+AND\s+", filter_string.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise InvalidFilter(
                f"Invalid model version filter {part.strip()!r}: use name, run_id, version, semver, "
                "stage or source with =, !=, LIKE, ILIKE or IN, joined with AND"
            )
        raw = m["value"]
        value: Any = tuple(re.findall(r"'([^']*)'|\"([^\"]*)\"", raw)) if raw.startswith("(") else raw[1:-1]
        if isinstance(value, tuple):
            value = tuple(a or b for a, b in value)
        out.append((m["key"].lower(), m["op"].upper(), value))
    return out


def _like(value: str, pattern: str, ignore_case: bool) -> bool:
    from gitml.tracking.search import _like as like

    return like(value.lower(), pattern.lower()) if ignore_case else like(value, pattern)


def matches(mv: ModelVersion, clauses: list[tuple[str, str, Any]]) -> bool:
    """True if ``mv`` passes every clause. Stages compare case-insensitively, whatever the operator."""
    for key, op, value in clauses:
        fields = {"name": [mv.name], "run_id": [mv.run_id or ""], "version": [mv.version],
                  "semver": [mv.semver], "stage": mv.stages or ["none"], "source": [mv.source]}[key]
        if key == "stage":
            fields = [f.lower() for f in fields]
            value = tuple(x.lower() for x in value) if isinstance(value, tuple) else value.lower()
        if op == "IN":
            ok = any(f in value for f in fields)
        elif op in ("LIKE", "ILIKE"):
            ok = any(_like(f, value, op == "ILIKE") for f in fields)
        elif op == "=":
            ok = value in fields
        else:
            ok = value not in fields
        if not ok:
            return False
    return True
