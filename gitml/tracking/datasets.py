"""Datasets a run used: recorded in the run tree's ``inputs.json`` (MLflow's run inputs).

A dataset is described, not stored: its name, a digest (a short hash of the
content, or a DVC file's md5), where it came from (``source_type`` and
``source``, JSON text) and optionally its schema and profile (JSON text), as
MLflow's ``Dataset`` entity holds them. Input tags say how the run used it
(``mlflow.data.context``: ``train``, ``eval``...).

``inputs.json`` is a sorted JSON list, one entry per (name, digest)::

    [{"dataset": {"digest": "…", "name": "…", "profile": "…", "schema": "…",
                  "source": "…", "source_type": "…"},
      "tags": {"mlflow.data.context": "train"}}]

As in MLflow, a run records each (name, digest) once: logging the same
dataset again keeps the first entry. The limits are MLflow's. The entries are
logged as ``N`` events through the run's writer, so they cost no git write
of their own and merge across clones as a union (``tracking/merge.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypedDict, cast

from gitml.errors import InvalidValue
from gitml.tracking.entities import Dataset, DatasetInput, InputTag, RunInputs


INPUTS_FILE = "inputs.json"
CONTEXT_TAG = "mlflow.data.context"

# MLflow 3's limits (mlflow/utils/validation.py).
MAX_NAME = 500
MAX_DIGEST = 36
MAX_SOURCE_TYPE = 36
MAX_SOURCE = 65535
MAX_SCHEMA = 1048575
MAX_PROFILE = 16777215
MAX_TAG_KEY = 255
MAX_TAG_VALUE = 500
MAX_PER_BATCH = 1000


class DatasetFields(TypedDict):
    """A dataset as ``inputs.json`` records it (the fields of ``entities.Dataset``)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None
    profile: str | None


class InputEntry(TypedDict):
    """One ``inputs.json`` entry, as ``entry`` makes it."""

    dataset: DatasetFields
    tags: dict[str, str]


# field -> (limit, may be null)
_FIELDS: dict[str, tuple[int, bool]] = {
    "name": (MAX_NAME, False),
    "digest": (MAX_DIGEST, False),
    "source_type": (MAX_SOURCE_TYPE, False),
    "source": (MAX_SOURCE, False),
    "schema": (MAX_SCHEMA, True),
    "profile": (MAX_PROFILE, True),
}


def entry(dataset: Mapping[str, object], tags: Mapping[str, object] | None = None) -> InputEntry:
    """The ``inputs.json`` entry for one dataset input, checked against MLflow's rules.

    ``dataset`` holds name, digest, source_type, source and optionally schema
    and profile (strings); ``tags`` the input tags.

    Raises:
        InvalidValue: a field is missing, not text, or over MLflow's limit.
    """
    if not isinstance(dataset, Mapping):
        raise InvalidValue(f"A dataset must be a mapping of its fields, not {type(dataset).__name__}")
    unknown = sorted(set(dataset) - set(_FIELDS))
    if unknown:
        raise InvalidValue(f"Unknown dataset field {unknown[0]!r}; a dataset has {', '.join(_FIELDS)}")
    clean: dict[str, str | None] = {}
    for name, (limit, nullable) in _FIELDS.items():
        value = dataset.get(name)
        if value is None:
            if not nullable:
                raise InvalidValue(f"Dataset {name} cannot be None")
            clean[name] = None
            continue
        if type(value) is not str:
            raise InvalidValue(f"Dataset {name} must be a string, not {type(value).__name__}")
        _check_length(f"dataset {name}", value, limit)
        clean[name] = value
    if not clean["name"]:
        raise InvalidValue("Dataset name cannot be empty")
    out_tags: dict[str, str] = {}
    for key, value in (tags or {}).items():
        if type(key) is not str or not key:
            raise InvalidValue(f"Input tag key must be a non-empty string, not {key!r}")
        if value is None:
            raise InvalidValue(f"Input tag {key!r} has no value")
        _check_length("input tag key", key, MAX_TAG_KEY)
        _check_length(f"input tag {key!r}", str(value), MAX_TAG_VALUE)
        out_tags[key] = str(value)
    return {"dataset": cast(DatasetFields, clean), "tags": out_tags}


def _check_length(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidValue(f"Invalid {what}: it is {len(value)} characters long; the limit is {limit}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidValue(f"Invalid {what}: it is not valid Unicode text ({e.reason})") from None


def key_of(item: InputEntry) -> tuple[str, str]:
    """What makes an entry unique in a run: (name, digest)."""
    return item["dataset"]["name"], item["dataset"]["digest"]


def add(entries: list[InputEntry], new: InputEntry) -> None:
    """Add ``new`` unless the run already records its (name, digest) (MLflow keeps the first)."""
    wanted = key_of(new)
    if all(key_of(e) != wanted for e in entries):
        entries.append(new)


def canonical(entries: Iterable[InputEntry]) -> list[InputEntry]:
    """Entries in the order ``inputs.json`` keeps them: by (name, digest)."""
    return sorted(entries, key=lambda e: (key_of(e), json.dumps(e, sort_keys=True)))


def merge(ours: list[InputEntry], theirs: list[InputEntry]) -> list[InputEntry]:
    """The union of two copies' entries; of two entries for one (name, digest), the larger JSON.

    Symmetric and idempotent, like every run merge rule.
    """
    chosen: dict[tuple[str, str], InputEntry] = {}
    for e in [*ours, *theirs]:
        k = key_of(e)
        if k not in chosen or json.dumps(e, sort_keys=True) > json.dumps(chosen[k], sort_keys=True):
            chosen[k] = e
    return canonical(chosen.values())


def to_inputs(entries: Iterable[InputEntry]) -> RunInputs:
    """The ``RunInputs`` entity of stored entries."""
    return RunInputs([
        DatasetInput(Dataset(**e["dataset"]), [InputTag(k, v) for k, v in sorted(e["tags"].items())])
        for e in entries
    ])


def input_of(dataset: object, context: str | None = None, tags: Mapping[str, object] | None = None,
             ) -> tuple[Mapping[str, object], dict[str, object]]:
    """(dataset fields, input tags) for ``log_inputs``, from a gitml ``Dataset``, anything with
    MLflow's ``to_dict()`` (an ``mlflow.data`` dataset) or a mapping of the fields."""
    if isinstance(dataset, Mapping):
        fields: Mapping[str, object] = dataset
    elif hasattr(dataset, "digest") and hasattr(dataset, "source_type"):  # gitml's or MLflow's entity
        fields = {f: getattr(dataset, f, None) for f in _FIELDS}
    elif callable(to_dict := getattr(dataset, "to_dict", None)):  # an mlflow.data dataset: its schema, profile are JSON there
        full = to_dict()
        fields = {f: full.get(f) for f in _FIELDS}
    else:
        raise InvalidValue(f"Cannot log {type(dataset).__name__} as a dataset: use gitml.data.from_pandas, "
                           "from_numpy or from_dvc")
    all_tags: dict[str, object] = {str(k): v for k, v in (tags or {}).items()}
    if context is not None:
        all_tags[CONTEXT_TAG] = context
    return fields, all_tags


class InputSink(Protocol):
    """Where ``log_inputs`` puts checked entries: a run's writer (``writer.RunWriter``), which sits above."""

    def add_input(self, entry: InputEntry) -> None: ...


def log_inputs(writer: InputSink, items: Sequence[tuple[Mapping[str, object], Mapping[str, object] | None]]) -> None:
    """Record dataset inputs (dataset fields, input tags) with the run; all checked before any is logged.

    Raises:
        InvalidValue: a bad field, or more than 1000 datasets in one call.
    """
    if len(items) > MAX_PER_BATCH:
        raise InvalidValue(f"Invalid batch: {len(items)} datasets; one call may log at most {MAX_PER_BATCH}")
    for e in [entry(d, t) for d, t in items]:
        writer.add_input(e)
