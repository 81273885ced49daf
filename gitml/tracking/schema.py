"""The shapes of the files in a run tree, checked on every read.

A run commit can come from anyone who can push to a shared remote (``gitml
pull``, or a plain ``git fetch``), so nothing in it is trusted until it has
the shape gitml writes: JSON objects of the right types, keys that pass the
logging rules, values within MLflow's limits, artifact paths inside the run
and artifact hashes that are md5s. A file that fails raises ``CorruptRun``
naming the run and the problem; readers of many runs skip that run with a
warning (``warn_skipped``), so one bad run never costs a whole command.

The checks are what the logging path already guarantees for runs written
here, so they cost a few microseconds per run and refuse nothing gitml wrote.
The module imports only the standard library, ``validation`` and ``datasets``
(whose entry check is the rule for ``inputs.json``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypedDict, TypeGuard

from gitml.errors import CorruptRun, GitmlError
from gitml.tracking import datasets, validation
from gitml.tracking.entities import LifecycleStage, RunStatus

log = logging.getLogger("gitml")

#: The run tree's files (``runfiles`` writes them; their shapes are checked here).
RUN_FILE = "run.json"
PARAMS_FILE = "params.json"
ARTIFACTS_FILE = "artifacts.json"
TAGS_FILE = "tags.json"
CLOCK_FILE = "clock.json"

#: Largest run file (run.json, params.json, ...) read at all.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Longest free-text field of run.json (user, branch, entry point) and run name.
MAX_TEXT = 8000

_INT64_MAX = 2**63 - 1
_OID_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_RUN_ID_RE = re.compile(r"[0-9a-f]{32}")
_EXPERIMENT_ID_RE = re.compile(r"[0-9]{1,20}")
_STAGES = (LifecycleStage.ACTIVE, LifecycleStage.DELETED)
_FLOAT_WORDS = ("NaN", "Infinity", "-Infinity")
#: Sections of clock.json: when each tag, deletion or artifact entry was last written (ms).
CLOCK_SECTIONS = ("tags", "tags_deleted", "artifacts")


class ArtifactEntry(TypedDict):
    """One ``artifacts.json`` entry: the content's md5 (a ``.dir`` object's for a directory) and size."""

    md5: str
    size: int


class Problem(ValueError):
    """What is wrong with one field (turned into ``CorruptRun`` with the run's id)."""


def load_json(raw: bytes, name: str) -> object:
    """Parse one JSON file of a run tree.

    Raises:
        Problem: too large, not UTF-8, not JSON, or nested too deeply.
    """
    if len(raw) > MAX_FILE_BYTES:
        raise Problem(f"{name} is {len(raw)} bytes (the limit is {MAX_FILE_BYTES})")
    try:
        # gitml writes UTF-8 without a BOM; decoding here skips json.loads's encoding sniffing,
        # a tenth of reading a run when the index is built
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise Problem(f"{name} is not JSON ({str(e)[:80]})") from None


def _is_int(value: object, low: int = 0) -> TypeGuard[int]:
    return type(value) is int and low <= value <= _INT64_MAX


def _is_number(value: object) -> TypeGuard[float | str]:
    """A JSON number, or one of the words ``encode_float`` writes for NaN and infinities."""
    return type(value) in (int, float) or value in _FLOAT_WORDS


def _text(value: object, field: str, limit: int = MAX_TEXT, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not str or len(value) > limit:
        raise Problem(f"{field} must be a string of at most {limit} characters, not {_kind(value)}")


def _kind(value: object) -> str:
    if isinstance(value, str):
        return f"a string of {len(value)} characters" if len(value) > 40 else repr(value)
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return repr(value)[:40]


def _object(value: object, name: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise Problem(f"{name} must be a JSON object, not {_kind(value)}")
    return value


def check_info(info: object, run_id: str | None, partial: bool = False) -> dict[str, Any]:
    """Check run.json's fields (``partial``: only those present, for a live-log INFO event).

    Raises:
        Problem.
    """
    info = _object(info, RUN_FILE)
    if not partial or "run_id" in info:
        if type(info.get("run_id")) is not str or not _RUN_ID_RE.fullmatch(info["run_id"]):
            raise Problem(f"run_id must be 32 hex digits, not {_kind(info.get('run_id'))}")
        if run_id is not None and info["run_id"] != run_id:
            raise Problem(f"run.json names run {info['run_id']}, not the run its ref names")
    if not partial or "experiment_id" in info:
        exp = info.get("experiment_id")
        if type(exp) is not str or not _EXPERIMENT_ID_RE.fullmatch(exp):
            raise Problem(f"experiment_id must be a string of digits, not {_kind(exp)}")
    if not partial or "status" in info:
        if info.get("status") not in RunStatus.ALL:
            raise Problem(f"status must be one of {', '.join(RunStatus.ALL)}, not {_kind(info.get('status'))}")
    if not partial or "start_time" in info:
        if not _is_int(info.get("start_time")):
            raise Problem(f"start_time must be milliseconds (a whole number), not {_kind(info.get('start_time'))}")
    for key in ("end_time", "lifecycle_time"):
        if info.get(key) is not None and not _is_int(info[key]):
            raise Problem(f"{key} must be milliseconds or null, not {_kind(info[key])}")
    if "lifecycle_stage" in info and info["lifecycle_stage"] not in _STAGES:
        raise Problem(f"lifecycle_stage must be 'active' or 'deleted', not {_kind(info['lifecycle_stage'])}")
    for key in ("run_name", "user_id"):
        if key in info:
            _text(info[key], key, optional=True)
    parent = info.get("parent_run_id")
    if parent is not None and (type(parent) is not str or not _RUN_ID_RE.fullmatch(parent)):
        raise Problem(f"parent_run_id must be a run id or null, not {_kind(parent)}")
    if info.get("source") is not None:
        _check_source(info["source"])
    return info


def _check_source(source: object) -> None:
    source = _object(source, "run.json source")
    for key in ("commit", "head"):
        oid = source.get(key)
        if oid is not None and (type(oid) is not str or not _OID_RE.fullmatch(oid)):
            raise Problem(f"source.{key} must be a commit id or null, not {_kind(oid)}")
    for key in ("branch", "entry_point"):
        _text(source.get(key), f"source.{key}", optional=True)
    if "dirty" in source and type(source["dirty"]) is not bool:
        raise Problem(f"source.dirty must be true or false, not {_kind(source['dirty'])}")
    skipped = source.get("skipped")
    if skipped is not None and (type(skipped) is not list or not all(type(s) is str for s in skipped)):
        raise Problem("source.skipped must be a list of paths")


def check_summary(summary: object) -> dict[str, tuple[float, int, int]]:
    """run.json's summary as {key: (value, step, timestamp)}.

    Raises:
        Problem.
    """
    out: dict[str, tuple[float, int, int]] = {}
    for key, point in _object(summary, "run.json summary").items():
        _key(validation.validate_metric_key, key, "metric")
        if type(point) is not dict:  # the message only when it is needed
            _object(point, f"summary of metric {key!r}")
        value, step, ts = point.get("value"), point.get("step"), point.get("timestamp")
        if not _is_number(value) or not _is_int(step, -_INT64_MAX - 1) or not _is_int(ts):
            raise Problem(f"summary of metric {key!r} must be {{value, step, timestamp}} numbers")
        out[key] = (float(value), step, ts)
    return out


def _key(check: Callable[[str], object], key: str, what: str) -> None:
    try:
        check(key)
    except GitmlError as e:
        raise Problem(f"{what} key: {e}") from None


def _check_mapping(data: object, name: str, kind: str, check_key: Callable[[str], object], limit: int) -> dict[str, str]:
    data = _object(data, name)
    for key, value in data.items():
        _key(check_key, key, kind)
        if type(value) is not str or len(value) > limit:  # the message only when it is needed
            _text(value, f"{kind} {key!r}", limit)
    return data


def check_params(params: object) -> dict[str, str]:
    """params.json: {key: value}, keys and values as ``log_param`` allows them.

    Raises:
        Problem.
    """
    return _check_mapping(params, PARAMS_FILE, "param", validation.validate_param_key,
                          validation.MAX_PARAM_VAL_LENGTH)


def check_tags(tags: object) -> dict[str, str]:
    """tags.json: {key: value}, as ``set_tag`` allows them.

    Raises:
        Problem.
    """
    return _check_mapping(tags, TAGS_FILE, "tag", validation.validate_tag_key, validation.MAX_TAG_VAL_LENGTH)


def check_artifacts(entries: object) -> dict[str, ArtifactEntry]:
    """artifacts.json: {path: {md5, size}}; a directory entry ends in '/' and names a ``.dir`` object.

    Raises:
        Problem.
    """
    entries = _object(entries, ARTIFACTS_FILE)
    for path, entry in entries.items():
        is_dir = path.endswith("/")
        try:
            normal = validation.validate_artifact_path(path[:-1] if is_dir else path, "artifact path")
            if not normal or normal != (path[:-1] if is_dir else path):
                raise Problem(f"artifact path {path!r} is not a normal relative path")
            entry = _object(entry, f"artifact {path!r}")
            validation.validate_artifact_md5(entry.get("md5"), directory=is_dir)
        except GitmlError as e:
            raise Problem(str(e)) from None
        if not _is_int(entry.get("size")):
            raise Problem(f"artifact {path!r} size must be a whole number of bytes, not {_kind(entry.get('size'))}")
    return entries


def check_clock(clock: object) -> dict[str, dict[str, int]]:
    """clock.json: {section: {key: ms}} for the sections in CLOCK_SECTIONS.

    Raises:
        Problem.
    """
    clock = _object(clock, CLOCK_FILE)
    out: dict[str, dict[str, int]] = {}
    for section, times in clock.items():
        if section not in CLOCK_SECTIONS:
            raise Problem(f"clock.json has an unknown section {section!r}")
        times = _object(times, f"clock.json {section}")
        if not all(type(k) is str and len(k) <= MAX_TEXT and _is_int(v) for k, v in times.items()):
            raise Problem(f"clock.json {section} must map names to milliseconds")
        out[section] = dict(times)
    return out


def check_inputs(entries: object) -> list[datasets.InputEntry]:
    """inputs.json: a list of {"dataset": {...}, "tags": {...}}, each as ``log_inputs`` accepts it, one per (name, digest).

    Raises:
        Problem.
    """
    if type(entries) is not list:
        raise Problem(f"inputs.json must be a JSON array, not {_kind(entries)}")
    out: list[datasets.InputEntry] = []
    seen: set[tuple[str, str]] = set()
    for item in entries:
        item = _object(item, "an inputs.json entry")
        if set(item) != {"dataset", "tags"}:
            raise Problem("an inputs.json entry must have exactly the keys 'dataset' and 'tags'")
        try:
            clean = datasets.entry(_object(item["dataset"], "an input's dataset"), _object(item["tags"], "input tags"))
        except GitmlError as e:
            raise Problem(f"inputs.json: {e}") from None
        if clean != item:
            raise Problem("an inputs.json entry has fields of the wrong type")
        if datasets.key_of(clean) in seen:
            raise Problem(f"inputs.json lists dataset {datasets.key_of(clean)} twice")
        seen.add(datasets.key_of(clean))
        out.append(clean)
    return out


def corrupt(run_id: str, commit: str | None, problem: object) -> CorruptRun:
    """The error for a malformed run, naming it and the problem."""
    where = f" (commit {commit[:12]})" if commit else ""
    return CorruptRun(f"Run {run_id}{where} is malformed: {problem} (not written by gitml: made by hand "
                      "or damaged in transit)")


_warned: set[str] = set()


def warn_skipped(error: GitmlError, oid: str, context: str = "skipped") -> None:
    """Log a one-line warning for a skipped run or experiment, once per process and object ``oid``."""
    if oid not in _warned:
        _warned.add(oid)
        log.warning("gitml: warning: %s; %s", str(error).replace("\n", " "), context)
