"""Events: what logging to a run records, and their lines in a live log.

A run changes by events: a metric point, a param, a tag set or deleted, an
artifact, a dataset input, run info. A writer appends each event to its
live log as one line and queues it in memory; ``runfiles.apply_events``
folds events into a ``RunState``; recovery decodes the lines of a dead
writer's log back into events. A live log is::

    gitml-live 1<TAB><run_id><TAB><writer_id><TAB><pid>      (the header)
    M<key><TAB><step><TAB><timestamp_ms><TAB><value>          (a metric point)
    P["alpha", "0.5"]                                         (other kinds: the kind, then a JSON array)

A writer starts its log again once git holds what it logged (a long run's
log would otherwise grow with every point). The new log's header says how
many of the writer's events came before its first line::

    gitml-live 2<TAB><run_id><TAB><writer_id><TAB><pid><TAB><base>

A gitml that knows only version 1 sets such a log aside rather than
misnumbering its events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from gitml.errors import GitmlError
from gitml.store import names
from gitml.tracking import datasets, schema, validation

# Event kinds, one letter each: they start every live-log line.
METRIC, PARAM, TAG, DELETE_TAG, INFO, ARTIFACT, INPUT = "M", "P", "T", "D", "I", "A", "N"

LOG_MAGIC = "gitml-live 1"
#: The header of a log that continues a writer's earlier log: its events are numbered from base + 1.
LOG_MAGIC_CONTINUED = "gitml-live 2"


class Event(NamedTuple):
    """One event logged to a run; which fields a kind uses is in ``_ARGS``."""

    kind: str
    #: metric, param or tag key; artifact path
    key: str = ""
    #: metric value (float), param or tag value (str), artifact md5, INFO's fields, INPUT's entry (dict)
    value: Any = None
    #: ms since the epoch: a metric's timestamp; when a tag, tag deletion or artifact was
    #: logged (0: at the run's creation, or in a log of an older gitml that did not say)
    timestamp: int = 0
    #: a metric's step
    step: int = 0
    #: an artifact's size in bytes
    size: int = 0
    #: a metric's chunk-file line, formatted once
    line: str = ""


# The fields each non-metric kind writes to its JSON array, in order. A
# trailing timestamp is optional on reading: logs of older gitml lack it.
_ARGS: dict[str, tuple[str, ...]] = {
    PARAM: ("key", "value"),
    TAG: ("key", "value", "timestamp"),
    DELETE_TAG: ("key", "timestamp"),
    ARTIFACT: ("key", "value", "size", "timestamp"),
    INPUT: ("value",),
    INFO: ("value",),
}


def metric_event(key: str, value: float, step: int, ts: int) -> Event:
    """A metric event, its chunk-file line formatted once."""
    return Event(METRIC, key, value, ts, step, 0, f"{step}\t{ts}\t{value!r}\n")


def encode_event(ev: Event) -> bytes:
    """The live-log line of ``ev``, newline included."""
    if ev.kind == METRIC:
        return f"M{ev.key}\t{ev.line}".encode()
    args = [getattr(ev, name) for name in _ARGS[ev.kind]]
    return (ev.kind + json.dumps(args, ensure_ascii=False) + "\n").encode()


def decode_event(line: bytes, metric_keys: set[str] | None = None) -> Event | None:
    """The event a live-log line holds, or None if the line is damaged or malformed.

    A live log is read back only by recovery, possibly long after it was
    written and by another version of gitml, so every event is checked as
    if it came from outside: right kind, right arity, values ``log_*``
    would have accepted. ``metric_keys`` caches metric keys already checked.
    """
    try:
        text = line.decode()
        kind = text[:1]
        if kind == METRIC:
            key, step, ts, value = text[1:].split("\t")
            if metric_keys is None or key not in metric_keys:
                validation.validate_metric_key(key)
                if metric_keys is not None:
                    metric_keys.add(key)
            return metric_event(key, float(value), validation.validate_metric_step(int(step)),
                                validation.validate_timestamp(int(ts)))
        if kind in _EVENT_CHECKS:
            args = json.loads(text[1:])
            if type(args) is list and _EVENT_CHECKS[kind](args):
                return Event(kind, **dict(zip(_ARGS[kind], args)))
    except (ValueError, RecursionError, GitmlError):  # UnicodeDecodeError is a ValueError
        pass
    return None


class LogHeader(NamedTuple):
    """What a live log's first line says."""

    run_id: str
    writer_id: str
    #: the writer's events before this log's first line (committed, then dropped from the log)
    base: int


def log_header(run_id: str, writer_id: str, pid: int, base: int = 0) -> bytes:
    """The first line of a live log whose first event is the writer's ``base + 1``-th."""
    if base:
        return f"{LOG_MAGIC_CONTINUED}\t{run_id}\t{writer_id}\t{pid}\t{base}\n".encode()
    return f"{LOG_MAGIC}\t{run_id}\t{writer_id}\t{pid}\n".encode()


def parse_header(line: bytes) -> LogHeader | None:
    """What a live log's first line says, or None if it is not a gitml header."""
    header = line.decode(errors="replace").split("\t")
    if len(header) < 3 or not names.RUN_ID_RE.match(header[1]):
        return None
    if header[0] == LOG_MAGIC:
        return LogHeader(header[1], header[2], 0)
    if header[0] == LOG_MAGIC_CONTINUED and len(header) >= 5 \
            and header[4].isascii() and header[4].isdigit() and len(header[4]) < 19:
        return LogHeader(header[1], header[2], int(header[4]))
    return None


def _ms(args: list[Any], at: int) -> bool:
    """No timestamp at position ``at`` (logs of older gitml), or milliseconds."""
    return len(args) <= at or (type(args[at]) is int and 0 <= args[at] < 2**63)


def _param_ok(args: list[Any]) -> bool:
    return len(args) == 2 and bool(validation.validate_param_key(args[0])) and type(args[1]) is str \
        and validation.validate_param_value(args[0], args[1]) is not None


def _tag_ok(args: list[Any]) -> bool:
    return 2 <= len(args) <= 3 and bool(validation.validate_tag_key(args[0])) and type(args[1]) is str \
        and validation.validate_tag_value(args[0], args[1]) is not None and _ms(args, 2)


def _delete_ok(args: list[Any]) -> bool:
    return 1 <= len(args) <= 2 and bool(validation.validate_tag_key(args[0])) and _ms(args, 1)


def _info_ok(args: list[Any]) -> bool:
    return len(args) == 1 and schema.check_info(args[0], None, partial=True) is not None


def _artifact_ok(args: list[Any]) -> bool:
    if not 3 <= len(args) <= 4 or type(args[0]) is not str:
        return False
    path, md5, size = args[:3]
    is_dir = path.endswith("/")
    bare = path[:-1] if is_dir else path
    return bool(bare) and validation.validate_artifact_path(bare) == bare \
        and validation.validate_artifact_md5(md5, directory=is_dir) == md5 \
        and type(size) is int and size >= 0 and _ms(args, 3)


def _input_ok(args: list[Any]) -> bool:
    if len(args) != 1 or type(args[0]) is not dict or set(args[0]) != {"dataset", "tags"}:
        return False
    item = args[0]
    return type(item["dataset"]) is dict and type(item["tags"]) is dict \
        and datasets.entry(item["dataset"], item["tags"]) == item


_EVENT_CHECKS: dict[str, Callable[[list[Any]], bool]] = {
    PARAM: _param_ok, TAG: _tag_ok, DELETE_TAG: _delete_ok, INFO: _info_ok, ARTIFACT: _artifact_ok,
    INPUT: _input_ok,
}
