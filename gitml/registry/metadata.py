"""Registry metadata GTO has no tag for: model descriptions and tags, version descriptions and
tags, models with no version yet, deletions and renames.

Each model has an anchor: the blob ``gitml-model <name>\\n`` (``names.model_anchor``), whose oid
every clone computes from the name alone. The note on that oid in ``refs/notes/gitml-registry``
is the model's event log, one JSON object per line::

    {"time": 1712345678901, "model": "rf", "op": "create", "description": "..."}
    {"time": 1712345678902, "model": "rf", "op": "tag", "key": "k", "value": "v"}
    {"time": 1712345678950, "model": "rf", "op": "tag", "key": "k", "value": null}
    {"time": 1712345679001, "model": "rf", "op": "describe", "version": "v0.0.2", "value": "..."}

``time`` is epoch milliseconds (a writer makes it one more than the latest line of the note when
the clock has not moved on, so one clone's events keep their order). A change that sets several
things (a model created with tags) is several lines, one thing each, written in one notes commit:
a line stays below ``MAX_LINE`` whatever the tags hold. Lines are only ever
appended, and ``gitml pull``/``push`` merge two clones' notes as the union of their lines, so the
state is a fold over the lines sorted by (time, line): both clones compute the same state from the
same set of lines, whatever order the lines are in. Per key, the last event wins; ``create``,
``delete`` and ``rename`` reset the model's state.

What arrives by fetch is someone else's data: every line is checked (shape, types, MLflow's
limits, the model name matching the anchor); a bad line is skipped with one warning.
"""

from __future__ import annotations

import json
import logging
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import InvalidName, InvalidValue
from gitml.registry import tags as grammar
from gitml.store import names
from gitml.store.repo import GitRepo

log = logging.getLogger("gitml")

CREATE, DELETE, RENAME, DESCRIBE, TAG = "create", "delete", "rename", "describe", "tag"
OPS = frozenset({CREATE, DELETE, RENAME, DESCRIBE, TAG})

#: MLflow's limits for registry tags (mlflow/utils/validation.py).
MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
#: Descriptions: MLflow sets none for the registry; gitml keeps them below a note line's limit.
MAX_DESCRIPTION_LENGTH = 100_000
#: The longest line read back, and the longest note line ``gitml pull`` takes: one tag value or
#: description (100k characters) even if JSON escapes every character.
MAX_LINE = 1_000_000


@dataclass
class VersionMeta:
    """What events set on one version (by semver)."""

    description: str | None = None
    described: bool = False  # a describe event set ``description`` (else the tag message holds it)
    tags: dict[str, str | None] = field(default_factory=dict)  # None: deleted (hides a creation tag)
    updated: int = 0  # ms


@dataclass(frozen=True)
class MetaEvent:
    """One valid line of a model's log."""

    time: int  # ms
    op: str
    line: str  # the line as stored (the tie-breaker, and what history shows)
    data: Mapping[str, Any]


@dataclass
class ModelMeta:
    """A model's metadata as its log says now."""

    name: str
    exists: bool | None = None  # None: no create, delete or rename event
    after: str | None = None  # the deprecation tag a create came after (a re-created model)
    created: int = 0  # ms of the latest create
    updated: int = 0  # ms of the latest event
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    versions: dict[str, VersionMeta] = field(default_factory=dict)
    renamed_to: str | None = None
    renamed_from: str | None = None
    events: list[MetaEvent] = field(default_factory=list)

    def version(self, semver: str) -> VersionMeta:
        return self.versions.get(semver) or VersionMeta()


# -- reading -----------------------------------------------------------------------------------


def anchor(repo: GitRepo, name: str) -> str:
    """The oid whose note is ``name``'s log."""
    return repo.blob_id(names.model_anchor(name))


_warned: set[tuple[str, str]] = set()


def _warn(model: str, line: str, why: str) -> None:
    key = (model, line[:200])
    if key not in _warned:
        _warned.add(key)
        log.warning("gitml: warning: skipped a registry metadata line of model %r (%s): %.80s", model, why, line)


def _text(value: Any, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    if len(value) > limit:
        raise ValueError(f"{what} is over {limit} characters")
    return value


def _tag_key(key: Any) -> str:
    from gitml.tracking.validation import validate_tag_key

    _text(key, MAX_TAG_KEY_LENGTH, "tag key")
    try:
        return validate_tag_key(key)
    except (InvalidName, InvalidValue) as e:
        raise ValueError(str(e)) from None


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value is None else _text(value, MAX_DESCRIPTION_LENGTH, key)


def _semver(value: Any) -> str:
    if not isinstance(value, str) or not grammar.VERSION_RE.match(value):
        raise ValueError("version is not a semver")
    return value


def _check(name: str, data: Any) -> MetaEvent:
    """The event a decoded line holds, checked.

    Raises:
        ValueError: naming what is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    t, op = data.get("time"), data.get("op")
    if type(t) is not int or not 0 <= t < 2**53:
        raise ValueError("time is not a whole number of milliseconds")
    if op not in OPS:
        raise ValueError(f"unknown op {str(op)[:40]!r}")
    if data.get("model") != name:
        raise ValueError("names another model than its anchor")
    for key in ("author", "email"):
        if data.get(key) is not None:
            _text(data[key], 1000, key)
    if "version" in data and op in (DESCRIBE, TAG):
        _semver(data["version"])
    if op == CREATE:
        _optional_text(data, "description")
        for key in ("after", "from"):
            if data.get(key) is not None:
                _text(data[key], 1000, key)
    elif op == RENAME:
        grammar.check_model_ref(_text(data.get("to"), 1000, "to"))
    elif op == DESCRIBE:
        _optional_text(data, "value")
    elif op == TAG:
        _tag_key(data.get("key"))
        if data.get("value") is not None:
            _text(data["value"], MAX_TAG_VALUE_LENGTH, "tag value")
    return MetaEvent(t, op, "", data)


def parse(name: str, text: str | None) -> list[MetaEvent]:
    """The valid events of a model's note, in fold order (time, then the line itself)."""
    out = []
    for line in (text or "").split("\n"):
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE:
                raise ValueError("line too long")
            event = _check(name, json.loads(line))
        except (ValueError, RecursionError, InvalidName) as e:
            _warn(name, line, str(e) or type(e).__name__)
            continue
        out.append(MetaEvent(event.time, event.op, line, event.data))
    out.sort(key=lambda e: (e.time, e.line))
    return out


def fold(name: str, events: Iterable[MetaEvent]) -> ModelMeta:
    """The model's metadata after ``events`` (in fold order)."""
    meta = ModelMeta(name)
    for e in events:
        d = e.data
        meta.events.append(e)
        meta.updated = max(meta.updated, e.time)
        if e.op in (CREATE, DELETE, RENAME):
            kept = meta.events
            meta = ModelMeta(name, events=kept, updated=e.time)
            if e.op == CREATE:
                meta.exists, meta.created, meta.after = True, e.time, d.get("after")
                meta.renamed_from = d.get("from")
                meta.description = d.get("description")
            else:
                meta.exists = False
                meta.renamed_to = d.get("to") if e.op == RENAME else None
            continue
        target: ModelMeta | VersionMeta = meta
        if "version" in d:
            target = meta.versions.setdefault(d["version"], VersionMeta())
            target.updated = e.time
        if e.op == DESCRIBE:
            target.description = d.get("value")
            if isinstance(target, VersionMeta):
                target.described = True
        elif d.get("value") is None and isinstance(target, ModelMeta):
            target.tags.pop(d["key"], None)
        else:  # a version's deletion stays as None: it hides a tag the version was created with
            target.tags[d["key"]] = d.get("value")  # type: ignore[assignment]  # None only for a version
    return meta


def read(repo: GitRepo, model_names: Iterable[str], notes: Mapping[str, str] | None = None) -> dict[str, ModelMeta]:
    """Name -> metadata for these models (an empty ``ModelMeta`` for a model with no log)."""
    from gitml.registry.state import registry_notes

    notes = registry_notes(repo) if notes is None else notes
    return {name: fold(name, parse(name, notes.get(anchor(repo, name)))) for name in model_names}


def read_all(repo: GitRepo, notes: Mapping[str, str] | None = None) -> dict[str, ModelMeta]:
    """Every model that has a log, by the name its lines give (checked against the anchor)."""
    from gitml.registry.state import registry_notes

    notes = registry_notes(repo) if notes is None else notes
    out = {}
    for oid, text in notes.items():
        if '"op"' not in text:  # comments on versions, not a model's log
            continue
        for line in text.split("\n"):
            try:
                name = json.loads(line).get("model") if len(line) <= MAX_LINE else None
            except (ValueError, RecursionError, AttributeError):
                continue
            if isinstance(name, str) and name not in out and _is_name(name) and anchor(repo, name) == oid:
                out[name] = fold(name, parse(name, text))
                break
    return out


def _is_name(name: str) -> bool:
    try:
        grammar.check_model_ref(name)
    except InvalidName:
        return False
    return True


# -- writing -----------------------------------------------------------------------------------


def event(name: str, op: str, **fields: Any) -> dict[str, Any]:
    """A new line's content for ``name`` (``time`` is set when it is written)."""
    return {"model": name, "op": op, **{k: v for k, v in fields.items() if v is not None or k == "value"}}


def check_tag(key: Any, value: Any) -> tuple[str, str]:
    """A registry tag as MLflow allows it (key rules and lengths).

    Raises:
        InvalidName, InvalidValue
    """
    from gitml.tracking.validation import validate_tag_key

    if not isinstance(key, str) or len(key) > MAX_TAG_KEY_LENGTH:
        raise InvalidName(f"Invalid tag key {str(key)[:60]!r}: a registry tag key is a string of at most "
                          f"{MAX_TAG_KEY_LENGTH} characters")
    validate_tag_key(key)
    if not isinstance(value, str):
        value = str(value)
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise InvalidValue(f"Tag {key!r} has a value of {len(value)} characters, over the limit of "
                           f"{MAX_TAG_VALUE_LENGTH}")
    return key, value


def check_description(text: Any) -> str | None:
    """A description (None clears it).

    Raises:
        InvalidValue
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidValue(f"A description is a string, not {type(text).__name__}")
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidValue(f"The description has {len(text)} characters, over the limit of {MAX_DESCRIPTION_LENGTH}")
    return text


_DAY = 86_400_000


def _appender(lines: list[dict[str, Any]], now: int) -> Any:
    def edit(old: str | None) -> str:
        # after the note's latest event, so one clone's events keep their order; a line dated
        # far ahead (a wrong clock, or someone else's data) wins its own keys but cannot drag
        # every later event past it
        last = max((e.time for e in _times(old) if e.time <= now + _DAY), default=-1)
        t = max(now, last + 1)
        new = [json.dumps({"time": t + i, **line}, ensure_ascii=False, separators=(", ", ": "))
               for i, line in enumerate(lines)]
        base = (old or "").rstrip("\n")
        return (base + "\n" if base else "") + "\n".join(new) + "\n"
    return edit


@dataclass(frozen=True)
class _Time:
    time: int


def _times(text: str | None) -> list[_Time]:
    out = []
    for line in (text or "").split("\n"):
        try:
            t = json.loads(line).get("time") if line.strip() and len(line) <= MAX_LINE else None
        except (ValueError, RecursionError, AttributeError):
            continue
        if type(t) is int:
            out.append(_Time(t))
    return out


def append(repo: GitRepo, lines: Mapping[str, list[dict[str, Any]]], message: str,
           extra: Mapping[str, Any] | None = None) -> None:
    """Append events to models' logs (and apply ``extra`` note edits) in one notes commit.

    ``lines`` maps a model name to its new events (``event(...)``). The anchor blobs are
    written too, so ``git notes --ref=gitml-registry show <anchor>`` finds them.
    """
    now = int(_time.time() * 1000)
    edits: dict[str, Any] = dict(extra or {})
    sig = repo.signature()
    for name, new in lines.items():
        if new:
            signed = [{**line, "author": sig.name, "email": sig.email} for line in new]
            edits[repo.write_blob(names.model_anchor(name))] = _appender(signed, now)
    if edits:
        repo.update_notes(names.REGISTRY_NOTES_REF, edits, message)
