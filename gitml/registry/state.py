"""Registry state: every model's versions and stage holders, computed from tags.

Reading tags is the slow part (one object read per tag), so each tag
object's fields are cached in ``.git/gitml/registry-cache.json`` by object id.
A tag object never changes, so the cache can only miss, never lie; the set
of tags is re-listed on every call (a few milliseconds for thousands), and
only new tags are read. The cache is derived: delete it at will.

The rules are GTO's, so ``gto show`` agrees:

- events of a model are ordered by tag time, then by the event counter;
- a version is active while its latest registration event is not a
  deregistration;
- a version holds a stage while its latest event for that stage is an
  assignment; if several active versions do, the highest semver wins (gitml
  itself unassigns the previous holder when it moves a stage, so there is
  only ever one);
- a model is deprecated while its latest event is a deprecation.

Version numbers (``models:/rf/3``) count registrations in order, from 1,
deregistered versions included, so a number never changes its meaning.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from gitml.registry import tags as grammar
from gitml.store.repo import GitRepo, TagInfo

CACHE_FILE = "registry-cache.json"
_CACHE_VERSION = 1
MODEL_PATH_TRAILER = "Gitml-Model-Path:"
RUN_TRAILER = "Gitml-Run:"


@dataclass(frozen=True)
class Event:
    """One registry tag, read."""

    tag: str
    oid: str
    model: str
    action: str
    version: str | None
    stage: str | None
    counter: int | None
    commit: str
    author: str
    email: str
    time: int  # epoch seconds
    offset: int
    message: str

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (self.time, -1 if self.counter is None else self.counter, self.tag)

    @property
    def text(self) -> str:
        """The message without gitml's trailers."""
        return strip_trailers(self.message)


@dataclass
class VersionState:
    """One registered version of a model, as the tags say now."""

    model: str
    version: str  # semver with a leading v, e.g. v1.2.0
    number: int  # registration order, from 1
    commit: str
    tag: str
    tag_oid: str
    registered_at: int
    author: str
    email: str
    message: str
    path: str | None
    run_id: str | None
    active: bool = True
    stages: list[str] = field(default_factory=list)
    updated_at: int = 0


@dataclass
class ModelState:
    """A model: its versions (by number), who holds which stage, its events."""

    name: str
    versions: list[VersionState] = field(default_factory=list)
    stages: dict[str, VersionState] = field(default_factory=dict)
    deprecated: bool = False
    events: list[Event] = field(default_factory=list)

    @property
    def next_counter(self) -> int:
        return max((e.counter or 0 for e in self.events), default=0) + 1

    @property
    def last_time(self) -> int:
        return max((e.time for e in self.events), default=0)

    def active_versions(self) -> list[VersionState]:
        return [v for v in self.versions if v.active]

    def latest(self) -> VersionState | None:
        """The highest semver among active versions (GTO's ``@latest``)."""
        active = self.active_versions()
        return max(active, key=lambda v: semver_key(v.version)) if active else None

    def by_version(self, version: str) -> VersionState | None:
        return next((v for v in self.versions if v.version == version), None)

    def by_commit(self, commit: str) -> VersionState | None:
        found = [v for v in self.versions if v.commit == commit]
        return found[-1] if found else None


def strip_trailers(message: str) -> str:
    lines = [ln for ln in message.strip().splitlines()
             if not ln.startswith((MODEL_PATH_TRAILER, RUN_TRAILER))]
    return "\n".join(lines).strip()


def _trailer(message: str, key: str) -> str | None:
    for line in message.splitlines():
        if line.startswith(key):
            return line[len(key) :].strip() or None
    return None


def semver_key(version: str) -> Any:
    import semver

    return semver.Version.parse(version[1:] if version.startswith("v") else version)


# -- reading tags, with the cache --------------------------------------------------------------


def _cache_path(repo: GitRepo) -> str:
    return os.path.join(repo.state_dir, CACHE_FILE)


def _load_cache(repo: GitRepo) -> dict[str, list[Any] | None]:
    try:
        with open(_cache_path(repo), encoding="utf-8") as f:
            data = json.load(f)
        if data.get("version") == _CACHE_VERSION and isinstance(data.get("tags"), dict):
            return data["tags"]
    except (OSError, ValueError, AttributeError):
        pass
    return {}


def _save_cache(repo: GitRepo, entries: dict[str, list[Any] | None]) -> None:
    path = _cache_path(repo)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(repo.state_dir, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": _CACHE_VERSION, "tags": entries}, f, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def read_events(repo: GitRepo) -> list[Event]:
    """Every registry event in the repository's tags (lightweight tags are ignored, as GTO does)."""
    refs = repo.tag_refs()
    cache = _load_cache(repo)
    fresh: dict[str, list[Any] | None] = {}
    events = []
    for name, oid in refs.items():
        parsed = grammar.parse(name)
        if parsed is None:
            continue
        if oid in cache:
            row = cache[oid]
        else:
            info: TagInfo | None = repo.read_tag(oid)
            row = None if info is None else [info.target, info.tagger, info.email, info.time, info.offset, info.message]
        fresh[oid] = row
        if row is None:
            continue
        target, author, email, when, offset, message = row
        events.append(Event(name, oid, parsed.model, parsed.action, parsed.version, parsed.stage,
                            parsed.counter, target, author, email, when, offset, message))
    if fresh.keys() != cache.keys():
        _save_cache(repo, fresh)
    events.sort(key=lambda e: e.sort_key)
    return events


# -- computing the state ----------------------------------------------------------------------


def build(events: list[Event]) -> dict[str, ModelState]:
    """Model name -> state, from events sorted by ``Event.sort_key``."""
    models: dict[str, ModelState] = {}
    for e in events:
        models.setdefault(e.model, ModelState(e.model)).events.append(e)
    for model in models.values():
        _apply(model)
    return models


def _apply(model: ModelState) -> None:
    holds: dict[tuple[str, str], bool] = {}  # (version, stage) -> assigned now
    for e in model.events:
        if e.action == grammar.REGISTER and e.version:
            v = model.by_version(e.version)
            if v is None:
                model.versions.append(VersionState(
                    model=model.name, version=e.version, number=len(model.versions) + 1, commit=e.commit,
                    tag=e.tag, tag_oid=e.oid, registered_at=e.time, author=e.author, email=e.email,
                    message=e.text, path=_trailer(e.message, MODEL_PATH_TRAILER),
                    run_id=_trailer(e.message, RUN_TRAILER), updated_at=e.time,
                ))
            else:
                v.active, v.updated_at = True, e.time
        elif e.action == grammar.DEREGISTER and e.version:
            v = model.by_version(e.version)
            if v is not None:
                v.active, v.updated_at = False, e.time
        elif e.action in (grammar.ASSIGN, grammar.UNASSIGN) and e.stage:
            v = model.by_commit(e.commit)
            if v is not None:  # a stage on a commit with no registered version: history only
                holds[(v.version, e.stage)] = e.action == grammar.ASSIGN
                v.updated_at = e.time
    for (version, stage), held in holds.items():
        v = model.by_version(version)
        if not held or v is None or not v.active:
            continue
        current = model.stages.get(stage)
        if current is None or semver_key(v.version) > semver_key(current.version):
            model.stages[stage] = v
    for stage, v in sorted(model.stages.items()):
        v.stages.append(stage)
    model.deprecated = bool(model.events) and model.events[-1].action == grammar.DEPRECATE


def load(repo: GitRepo) -> dict[str, ModelState]:
    """The registry as the repository's tags say now."""
    return build(read_events(repo))
