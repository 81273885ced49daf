"""Registry state: every model's versions and stage holders, computed from tags.

Reading tags is the slow part (one object read per tag), so each tag
object's fields are cached in ``.git/gitml/registry-cache.json`` by object id.
A tag object never changes, so the cache can only miss, never lie; the set
of tags is re-listed on every call (a few milliseconds for thousands), and
only new tags are read. The cache is derived: delete it at will.

The rules are GTO's, so ``gto show`` agrees:

- events of a model are ordered by tag time, then by the event counter
  (events of the same second without a counter, such as registrations, by
  semver precedence, then by tag name);
- a version is active while its latest registration event is not a
  deregistration;
- a version holds a stage while its latest event for that stage is an
  assignment; if several active versions do, the highest semver wins (gitml
  itself unassigns the previous holder when it moves a stage, so there is
  only ever one);
- a model is deprecated while its latest event is a deprecation.

Version numbers (``models:/rf/3``) count registrations in order, from 1,
deregistered versions included, so a number keeps its meaning in one
repository. (Registrations made in two clones before they synced interleave
by time afterwards, which can shift the numbers of the later ones.)
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from gitml.registry import tags as grammar
from gitml.store.repo import GitRepo, TagInfo

CACHE_FILE = "registry-cache.json"
_CACHE_VERSION = 1
MODEL_PATH_TRAILER = "Gitml-Model-Path:"
RUN_TRAILER = "Gitml-Run:"
#: Set when a version is created through MLflow's API: the tags it was created with (a JSON
#: object on one line), the run link, and the source URI when it is not the run's (a copy's
#: ``models:/<name>/<version>``). In the tag, so they are written with the version or not at all.
TAGS_TRAILER = "Gitml-Tags:"
RUN_LINK_TRAILER = "Gitml-Run-Link:"
SOURCE_TRAILER = "Gitml-Source:"
TRAILERS = (MODEL_PATH_TRAILER, RUN_TRAILER, TAGS_TRAILER, RUN_LINK_TRAILER, SOURCE_TRAILER)


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
    def sort_key(self) -> tuple[int, int, tuple[Any, ...], str]:
        """(time, counter, version precedence, tag name). Events of one second without a
        counter (registrations) are ordered by semver, not by name (``v0.0.10`` > ``v0.0.2``)."""
        return (self.time, -1 if self.counter is None else self.counter,
                precedence(self.version) if self.version else (), self.tag)

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
    tags: dict[str, str] = field(default_factory=dict)  # as created (``Gitml-Tags:``)
    run_link: str | None = None
    source: str | None = None  # as given, when not runs:/<run_id>/<path>


@dataclass
class ModelState:
    """A model: its versions (by number), who holds which stage, its events."""

    name: str
    versions: list[VersionState] = field(default_factory=list)
    stages: dict[str, VersionState] = field(default_factory=dict)
    deprecated: bool = False
    events: list[Event] = field(default_factory=list)
    #: Every tag name of this model in the grammar, lightweight tags included.
    tag_names: set[str] = field(default_factory=set)

    @property
    def next_counter(self) -> int:
        """One more than the highest counter in any tag name of the model (GTO's rule: every
        tag name counts, even a lightweight tag or one whose object cannot be read)."""
        counters = [e.counter or 0 for e in self.events]
        for name in self.tag_names:
            parsed = grammar.parse(name)
            if parsed is not None and parsed.counter is not None:
                counters.append(parsed.counter)
        return max(counters, default=0) + 1

    def stage_name(self, stage: str) -> str:
        """How ``stage`` is spelled in this model's tags (stages match case-insensitively):
        the exact spelling if a tag uses it, else the spelling of the stage held now or
        of its latest event, else lower case (a new stage)."""
        spelled = {e.stage for e in self.events if e.stage}
        if stage in spelled:
            return stage
        same = [s for s in spelled if s.lower() == stage.lower()]
        if not same:
            return stage.lower()
        held = [s for s in same if s in self.stages]
        if held:
            return sorted(held)[0]
        return next(e.stage for e in reversed(self.events) if e.stage in same)

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
        return self._by_version.get(version)

    def by_commit(self, commit: str) -> VersionState | None:
        return self._by_commit.get(commit)

    def add_version(self, v: VersionState) -> None:
        self.versions.append(v)
        self._by_version[v.version] = v
        self._by_commit[v.commit] = v

    def __post_init__(self) -> None:
        self._by_version: dict[str, VersionState] = {}
        self._by_commit: dict[str, VersionState] = {}
        for v in self.versions:
            self._by_version[v.version] = v
            self._by_commit[v.commit] = v


def strip_trailers(message: str) -> str:
    lines = [ln for ln in message.strip().splitlines() if not ln.startswith(TRAILERS)]
    return "\n".join(lines).strip()


def _tags_trailer(message: str) -> dict[str, str]:
    """The ``Gitml-Tags:`` object of a tag message; {} if absent or malformed (a tag is
    someone else's data once fetched: a bad trailer costs its tags, not the version)."""
    raw = _trailer(message, TAGS_TRAILER)
    if raw is None:
        return {}
    try:
        tags = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        return {}
    return tags


def _trailer(message: str, key: str) -> str | None:
    for line in message.splitlines():
        if line.startswith(key):
            return line[len(key) :].strip() or None
    return None


@functools.lru_cache(maxsize=4096)
def precedence(version: str) -> tuple[Any, ...]:
    """SemVer 2 precedence as a plain tuple (comparable with any other version's)."""
    try:
        v = semver_key(version)
    except ValueError:
        return ()
    if v.prerelease is None:
        pre: tuple[Any, ...] = (1,)
    else:  # a pre-release sorts before its release; numeric identifiers before alphanumeric ones
        pre = (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.prerelease.split(".")))
    return (v.major, v.minor, v.patch, pre)


@functools.lru_cache(maxsize=4096)
def semver_key(version: str) -> Any:
    """A sortable semantic version (``v1.2.0`` or ``1.2.0``), per the SemVer 2 precedence rules."""
    import semver

    return semver.Version.parse(version[1:] if version.startswith("v") else version)


# -- reading tags, with the cache --------------------------------------------------------------


class Cache:
    """``.git/gitml/registry-cache.json``: fields of tag objects by oid, run metrics by commit.

    Both are keyed by immutable object ids, so an entry is never wrong, only
    missing; entries for objects no longer referenced are dropped on save.
    """

    def __init__(self, repo: GitRepo) -> None:
        self.path = os.path.join(repo.state_dir, CACHE_FILE)
        self.tags: dict[str, list[Any] | None] = {}
        self.metrics: dict[str, dict[str, float]] = {}
        self.notes: dict[str, Any] = {}  # {"commit": notes ref oid, "notes": {tag oid: text}}
        self.dirty = False
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if data.get("version") == _CACHE_VERSION:
                self.tags, self.metrics, self.notes = dict(data["tags"]), dict(data["metrics"]), dict(data["notes"])
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass  # missing or damaged: rebuilt from the tags

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"  # the viewer saves from several threads
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"version": _CACHE_VERSION, "tags": self.tags, "metrics": self.metrics, "notes": self.notes}, f,
                          separators=(",", ":"))
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


_MISSING: Any = object()


def _valid_row(row: Any) -> bool:
    """A cached tag row as ``read_events`` writes it: None (not a tag object) or
    [target, tagger, email, time, offset, message]. Anything else is a miss."""
    if row is None:
        return True
    return (isinstance(row, list) and len(row) == 6
            and isinstance(row[0], str) and isinstance(row[1], str) and isinstance(row[2], str)
            and type(row[3]) is int and type(row[4]) is int and isinstance(row[5], str))


def valid_metrics(entry: Any) -> bool:
    """A cached metrics entry: {name: number}."""
    return isinstance(entry, dict) and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in entry.items())


def valid_notes(section: Any) -> bool:
    """The cached notes section: {"commit": notes commit, "notes": {tag oid: text}}."""
    if not isinstance(section, dict) or not isinstance(section.get("commit"), str):
        return False
    notes = section.get("notes")
    return isinstance(notes, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in notes.items())


def read_events(repo: GitRepo, model: str | None = None, cache: Cache | None = None,
                refs: dict[str, str] | None = None) -> list[Event]:
    """The registry events in the repository's tags (of one model, or all), oldest first.

    Lightweight tags are ignored, as GTO does. ``refs``: the tag refs, if
    the caller listed them already (``GitRepo.tag_refs``).
    """
    refs = repo.tag_refs() if refs is None else refs
    own = cache is None
    cache = cache or Cache(repo)
    events = []
    live = set()
    for name, oid in refs.items():
        parsed = grammar.parse(name)
        if parsed is None:
            continue
        live.add(oid)
        if model is not None and parsed.model != model:
            continue
        row = cache.tags.get(oid, _MISSING)
        if row is _MISSING or not _valid_row(row):
            info: TagInfo | None = repo.read_tag(oid)
            row = None if info is None else [info.target, info.tagger, info.email, info.time, info.offset, info.message]
            cache.tags[oid] = row
            cache.dirty = True
        if row is None:
            continue
        target, author, email, when, offset, message = row
        events.append(Event(name, oid, parsed.model, parsed.action, parsed.version, parsed.stage,
                            parsed.counter, target, author, email, when, offset, message))
    stale = [oid for oid in cache.tags if oid not in live]
    for oid in stale:
        del cache.tags[oid]
    cache.dirty |= bool(stale)
    if own:
        cache.save()
    events.sort(key=lambda e: e.sort_key)
    return events


def registry_notes(repo: GitRepo) -> dict[str, str]:
    """Every note in ``refs/notes/gitml-registry``: annotated oid -> text (comments on
    registration tags, models' metadata logs), cached by the notes commit."""
    from gitml.store import names

    refs = repo.file_refs("refs/notes/")
    head = refs.get(names.REGISTRY_NOTES_REF) if refs is not None else repo.ref_target(names.REGISTRY_NOTES_REF)
    if head is None:
        return {}
    cache = Cache(repo)
    if not valid_notes(cache.notes) or cache.notes["commit"] != head:
        cache.notes = {"commit": head, "notes": dict(repo.note_targets(names.REGISTRY_NOTES_REF))}
        cache.dirty = True
        cache.save()
    return cache.notes["notes"]


def run_metrics(repo: GitRepo, versions: list[VersionState]) -> dict[str, dict[str, float]]:
    """Tag -> the latest metrics of the version's run, as the run is now (else as registered)."""
    from gitml.store import ledger

    cache = Cache(repo)
    out = {}
    for v in versions:
        commit = ledger.run_commit(repo, v.run_id) if v.run_id else None
        commit = commit or v.commit
        if not valid_metrics(cache.metrics.get(commit)):
            from gitml.errors import CorruptRun
            from gitml.tracking.runfiles import read_state

            try:
                state, _ = read_state(repo, commit)
                cache.metrics[commit] = {k: value for k, (value, _, _) in state.summary.items()}
            except CorruptRun:  # not a run commit (GTO can tag a tree or a blob), or a malformed one
                cache.metrics[commit] = {}
            cache.dirty = True
        out[v.tag] = cache.metrics[commit]
    if len(cache.metrics) > 20000:  # keep the file small: drop what this call did not need
        cache.metrics = {c: m for c, m in cache.metrics.items() if m in out.values()}
    cache.save()
    return out


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
    holds: dict[tuple[str, str], bool] = {}  # (commit, stage) -> assigned now
    for e in model.events:
        if e.action == grammar.REGISTER and e.version:
            v = model.by_version(e.version)
            if v is None:
                model.add_version(VersionState(
                    model=model.name, version=e.version, number=len(model.versions) + 1, commit=e.commit,
                    tag=e.tag, tag_oid=e.oid, registered_at=e.time, author=e.author, email=e.email,
                    message=e.text, path=_trailer(e.message, MODEL_PATH_TRAILER),
                    run_id=_trailer(e.message, RUN_TRAILER), updated_at=e.time,
                    tags=_tags_trailer(e.message), run_link=_trailer(e.message, RUN_LINK_TRAILER),
                    source=_trailer(e.message, SOURCE_TRAILER),
                ))
            else:
                v.active, v.updated_at = True, e.time
        elif e.action == grammar.DEREGISTER and e.version:
            v = model.by_version(e.version)
            if v is not None:
                v.active, v.updated_at = False, e.time
        elif e.action in (grammar.ASSIGN, grammar.UNASSIGN) and e.stage:
            # By commit: a stage tag dated before its version's registration (another
            # tool's, in the same second) still counts once the commit is registered.
            holds[(e.commit, e.stage)] = e.action == grammar.ASSIGN
            v = model.by_commit(e.commit)
            if v is not None:
                v.updated_at = e.time
    for (commit, stage), held in holds.items():
        v = model.by_commit(commit)  # a stage on a commit with no registered version: history only
        if not held or v is None or not v.active:
            continue
        current = model.stages.get(stage)
        if current is None or semver_key(v.version) > semver_key(current.version):
            model.stages[stage] = v
    for stage, v in sorted(model.stages.items()):
        v.stages.append(stage)
    model.deprecated = bool(model.events) and model.events[-1].action == grammar.DEPRECATE


def load(repo: GitRepo, model: str | None = None) -> dict[str, ModelState]:
    """The registry as the repository's tags say now (only ``model``'s, if given)."""
    refs = repo.tag_refs()
    models = build(read_events(repo, model, refs=refs))
    _add_tag_names(models, refs)
    return models


def load_model_for_write(repo: GitRepo, model: str) -> ModelState:
    """One model's state (empty if it has no events) with every tag name it has, for
    choosing the names of new tags."""
    refs = repo.tag_refs()
    models = build(read_events(repo, model, refs=refs))
    models.setdefault(model, ModelState(model))
    _add_tag_names(models, refs)
    return models[model]


def _add_tag_names(models: dict[str, ModelState], refs: dict[str, str]) -> None:
    if not models:
        return
    for name in refs:
        if "@" in name or "#" in name:
            parsed = grammar.parse(name)
            if parsed is not None and parsed.model in models:
                models[parsed.model].tag_names.add(name)
