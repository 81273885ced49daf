"""The run tree: how one run is laid out as files in its run commit.

```
run.json                   identity, status, times, source, summary of metrics
params.json                {"alpha": "0.5"}
tags.json                  {"mlflow.runName": "..."}
metrics/<key>/000000.tsv   "step<TAB>timestamp_ms<TAB>value" lines, chunks of
                           CHUNK_LINES; only the last chunk is ever rewritten
artifacts.json             {"model/model.pkl": {"md5": ..., "size": ...}}: the
                           content lives in the DVC-layout cache (store/content.py)
clock.json                 when each tag, tag deletion and artifact entry was last
                           written (ms), so two clones' copies merge key by key
                           (last writer wins); absent until something changes
                           after the run's creation
inputs.json                datasets the run used (tracking/datasets.py); absent
                           until one is logged
```
The run commit's message carries one ``Gitml-Writer: <writer_id> <count>``
trailer per writer that logged to the run on this machine: how many events
of that writer's live log the commit holds (see tracking/commit.py). It lives
in the message, not the tree, so ``git diff`` of two runs shows only run data.
Everything is sorted, indented JSON or TSV so ``git diff`` of two runs reads
as a diff of two runs. Events (from a live log or an API call) are applied to
a ``RunState`` and the changed files written with one ``update_tree``.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gitml.errors import GitmlError, InvalidValue
from gitml.store.repo import GitRepo
from gitml.tracking import datasets, schema
from gitml.tracking.entities import Metric, Run, RunData, RunInfo, metric_entities
from gitml.tracking.events import ARTIFACT, DELETE_TAG, INFO, INPUT, METRIC, PARAM, TAG, Event
from gitml.tracking.schema import ARTIFACTS_FILE, CLOCK_FILE, PARAMS_FILE, RUN_FILE, TAGS_FILE

INPUTS_FILE = datasets.INPUTS_FILE
METRICS_DIR = "metrics"
CHUNK_LINES = 1000
CHUNK_FORMAT = "{:06d}.tsv"

#: A metric point waiting to be committed: (value, timestamp, step, chunk-file line), a metric
#: event minus kind and key. A plain tuple: ``log_metric``'s hot path makes one per call.
PendingPoint = tuple[float, int, int, str]

#: The last chunk file of one metric key as a run tree holds it: (its index, its line count, its
#: text). The text is "" once the chunk is full (the next line starts a new chunk).
ChunkTail = tuple[int, int, str]

_T = TypeVar("_T")


def encode_float(value: float) -> float | str:
    """JSON has no NaN/inf: write them as strings a reader turns back."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def decode_float(value: float | str) -> float:
    return float(value)


@dataclass
class RunState:
    """Everything in a run tree except the metric histories."""

    info: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # key -> (value, step, timestamp) of the latest point, MLflow's ordering
    summary: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)
    # artifact path -> {"md5", "size"}; a directory logged whole also has an
    # entry "<dir>/" whose md5 is its DVC ``.dir`` object
    artifacts: dict[str, schema.ArtifactEntry] = field(default_factory=dict)
    # section ("tags", "tags_deleted", "artifacts") -> key -> ms it was last written;
    # what a merge of two clones' copies compares (see tracking/merge.py)
    clock: dict[str, dict[str, int]] = field(default_factory=dict)
    # datasets the run used: inputs.json entries, one per (name, digest)
    inputs: list[datasets.InputEntry] = field(default_factory=list)
    # Not run data: metric key -> its last chunk in the tree this state was committed with,
    # for the keys a writer has flushed; None when nobody keeps them. A writer's next flush
    # extends those chunks without reading them back from git (metric_chunk_changes).
    chunks: dict[str, ChunkTail] | None = field(default=None, compare=False, repr=False)

    @property
    def run_id(self) -> str:
        run_id: str = self.info["run_id"]
        return run_id

    def copy(self) -> RunState:
        return RunState(
            info=json.loads(json.dumps(self.info)),
            params=dict(self.params),
            tags=dict(self.tags),
            summary=dict(self.summary),
            writers=dict(self.writers),
            artifacts=dict(self.artifacts),
            clock={k: dict(v) for k, v in self.clock.items()},
            inputs=list(self.inputs),
            chunks=dict(self.chunks) if self.chunks is not None else None,
        )

    def stamp(self, section: str, key: str, ms: int) -> None:
        """Record that ``key`` of ``section`` was written at ``ms`` (0: at the run's creation)."""
        if ms:
            self.clock.setdefault(section, {})[key] = ms
        else:
            self.unstamp(section, key)

    def unstamp(self, section: str, key: str) -> None:
        times = self.clock.get(section)
        if times is not None and times.pop(key, None) is not None and not times:
            del self.clock[section]

    def files(self) -> dict[str, bytes | None]:
        """The JSON files of this state, ready for ``GitRepo.update_tree``."""
        run = dict(self.info)
        run["summary"] = {
            k: {"value": encode_float(v), "step": s, "timestamp": t}
            for k, (v, s, t) in sorted(self.summary.items())
        }
        return {
            RUN_FILE: _dump(run),
            PARAMS_FILE: _dump(self.params),
            TAGS_FILE: _dump(self.tags),
            ARTIFACTS_FILE: _dump(self.artifacts) if self.artifacts else None,
            CLOCK_FILE: _dump(self.clock) if self.clock else None,
            INPUTS_FILE: _dump(datasets.canonical(self.inputs)) if self.inputs else None,
        }

    def commit_message(self) -> str:
        """The run commit's message: a subject, then one trailer per writer."""
        subject = f"gitml run {self.run_id}: {self.info.get('status')}"
        trailers = "".join(f"{WRITER_TRAILER} {w} {n}\n" for w, n in sorted(self.writers.items()))
        return f"{subject}\n\n{trailers}" if trailers else subject + "\n"

    def to_run(self, commit: str | None = None) -> Run:
        info = self.info
        return Run(
            info=RunInfo(
                run_id=info["run_id"],
                experiment_id=info["experiment_id"],
                run_name=info.get("run_name") or "",
                user_id=info.get("user_id") or "",
                status=info["status"],
                start_time=info["start_time"],
                end_time=info.get("end_time"),
                lifecycle_stage=info.get("lifecycle_stage", "active"),
                artifact_uri=artifact_uri(info["run_id"]),
            ),
            data=RunData(
                metrics={k: v for k, (v, _, _) in self.summary.items()},
                params=dict(self.params),
                tags=dict(self.tags),
                latest_metrics={k: Metric(k, v, t, s) for k, (v, s, t) in self.summary.items()},
            ),
            source=dict(info.get("source") or {}),
            parent_run_id=info.get("parent_run_id"),
            commit=commit,
            inputs=datasets.to_inputs(datasets.canonical(self.inputs)),
        )


def artifact_uri(run_id: str) -> str:
    return f"runs:/{run_id}/"


_enc = json.JSONEncoder(ensure_ascii=False).encode  # the C encoder (no indent)


def _dump(obj: object) -> bytes:
    """``json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)`` + newline, byte
    for byte, but with scalars on the C encoder: ``indent`` alone sends
    json.dumps to its pure-Python encoder, and run.json is written on
    every flush."""
    return (_pretty(obj, "") + "\n").encode()


def _pretty(obj: object, pad: str) -> str:
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        inner = pad + "  "
        items = sorted(obj.items())
        return "{\n" + ",\n".join(f"{inner}{_enc(str(k))}: {_pretty(v, inner)}" for k, v in items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        inner = pad + "  "
        return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in obj) + "\n" + pad + "]"
    return _enc(obj)


WRITER_TRAILER = "Gitml-Writer:"


def read_state(repo: GitRepo, commit: str, run_id: str | None = None) -> tuple[RunState, str]:
    """The state stored in run commit ``commit``, and that commit's tree.

    Every file is checked against the shapes gitml writes (``schema``);
    ``run_id`` (the id the run's ref names) must match run.json's.

    Raises:
        CorruptRun: the commit is not a run commit gitml could have written.
    """
    found = repo.read_commit_files(commit, _STATE_FILES)
    if found is None:
        raise schema.corrupt(run_id or "?", commit, "its ref does not point at a commit")
    message, tree, files = found
    try:
        state = _state_from_files(files, run_id)
    except schema.Problem as e:
        raise schema.corrupt(run_id or _claimed_id(files), commit, e) from None
    for line in message.splitlines():
        if line.startswith(WRITER_TRAILER):
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit() and len(parts[2]) < 19:
                state.writers[parts[1]] = int(parts[2])
    return state, tree


_STATE_FILES = (RUN_FILE, PARAMS_FILE, TAGS_FILE, ARTIFACTS_FILE, CLOCK_FILE, INPUTS_FILE)


def _claimed_id(files: dict[str, bytes]) -> str:
    try:
        run_id = json.loads(files.get(RUN_FILE) or b"{}").get("run_id")
    except (ValueError, RecursionError, AttributeError):
        return "?"
    return run_id if isinstance(run_id, str) and len(run_id) == 32 else "?"


def _state_from_files(files: dict[str, bytes], run_id: str | None) -> RunState:
    if RUN_FILE not in files:
        raise schema.Problem(f"it has no {RUN_FILE}")
    run = schema.check_info(schema.load_json(files[RUN_FILE], RUN_FILE), run_id)
    summary = schema.check_summary(run.pop("summary", {}))

    def load(name: str, check: Callable[[object], _T], empty: _T) -> _T:
        return check(schema.load_json(files[name], name)) if name in files else empty

    return RunState(
        info=run,
        params=load(PARAMS_FILE, schema.check_params, {}),
        tags=load(TAGS_FILE, schema.check_tags, {}),
        summary=summary,
        artifacts=load(ARTIFACTS_FILE, schema.check_artifacts, {}),
        clock=load(CLOCK_FILE, schema.check_clock, {}),
        inputs=load(INPUTS_FILE, schema.check_inputs, []),
    )


def is_newer(point: tuple[float, int, int], than: tuple[float, int, int] | None) -> bool:
    """MLflow's 'latest metric' order: larger step, then timestamp, then value."""
    if than is None:
        return True
    value, step, ts = point
    old_value, old_step, old_ts = than
    if step != old_step:
        return step > old_step
    if ts != old_ts:
        return ts > old_ts
    if math.isnan(old_value):
        return not math.isnan(value)
    return not math.isnan(value) and value >= old_value


def apply_events(state: RunState, events: list[Event]) -> dict[str, list[str]]:
    """Apply events to ``state`` in place; return new metric chunk lines by key.

    A param that already holds a different value keeps its first value
    (params are write-once; the logging process has already refused the
    second value, this only guards races between processes). Tag, tag
    deletion and artifact events carry the time they were logged (ms; 0 for
    the run's creation), which goes to ``state.clock`` for merges.
    """
    by_key: dict[str, list[PendingPoint]] = {}
    for ev in events:
        kind = ev.kind
        if kind == METRIC:
            by_key.setdefault(ev.key, []).append((ev.value, ev.timestamp, ev.step, ev.line))
        elif kind == PARAM:
            state.params.setdefault(ev.key, ev.value)
        elif kind == TAG:
            set_tag(state, ev.key, ev.value, ev.timestamp)
        elif kind == DELETE_TAG:
            delete_tag(state, ev.key, ev.timestamp)
        elif kind == ARTIFACT:
            state.artifacts[ev.key] = {"md5": ev.value, "size": ev.size}
            state.stamp("artifacts", ev.key, ev.timestamp)
        elif kind == INPUT:
            datasets.add(state.inputs, ev.value)
        elif kind == INFO:
            state.info.update(ev.value)
            if "run_name" in ev.value and ev.value["run_name"]:
                state.tags["mlflow.runName"] = ev.value["run_name"]
    return apply_metrics(state, by_key)


RUN_NAME_TAG = "mlflow.runName"


def set_tag(state: RunState, key: str, value: str, ms: int) -> None:
    """Set a tag (the run name too, for ``mlflow.runName``), written at ``ms``."""
    state.tags[key] = value
    if key == RUN_NAME_TAG:
        state.info["run_name"] = value
    state.stamp("tags", key, ms)
    state.unstamp("tags_deleted", key)


def delete_tag(state: RunState, key: str, ms: int) -> None:
    """Delete a tag, leaving a tombstone dated ``ms`` so a merge does not bring it back."""
    state.tags.pop(key, None)
    state.unstamp("tags", key)
    state.clock.setdefault("tags_deleted", {})[key] = ms


_ORDER = operator.itemgetter(2, 1, 0)  # step, timestamp, value


def apply_metrics(state: RunState, by_key: dict[str, list[PendingPoint]]) -> dict[str, list[str]]:
    """Fold pending points (by key) into the summary; return chunk lines by key.

    This runs over every logged point at flush time, so it stays in C-level
    loops (a list comprehension, max with itemgetter).
    """
    lines: dict[str, list[str]] = {}
    summary = state.summary
    for key, points in by_key.items():
        if not points:
            continue
        lines[key] = [p[3] for p in points]
        best = max(points, key=_ORDER)
        point = (best[0], best[2], best[1])
        if is_newer(point, summary.get(key)):
            summary[key] = point
    return lines


def metric_chunk_changes(repo: GitRepo, base_tree: str | None, lines: dict[str, list[str]],
                         tails: dict[str, ChunkTail] | None = None) -> dict[str, bytes]:
    """New content of the metric chunk files that ``lines`` extend.

    Chunks hold CHUNK_LINES lines; only the last one is rewritten, so a
    flush costs the new points plus at most one chunk, whatever the history.
    ``tails`` (``RunState.chunks``) holds the last chunk of keys as
    ``base_tree`` has them: those are not read from git (a listing of every
    chunk of the key and a blob read each). It is updated to the chunks
    written here.
    """
    changes: dict[str, bytes] = {}
    for key, new in lines.items():
        if not new:
            continue
        directory = f"{METRICS_DIR}/{key}"
        known = tails.get(key) if tails is not None else None
        if known is not None:
            index, count, tail = known
        elif base_tree:
            index, count, tail = _last_chunk(repo, base_tree, directory)
        else:
            index, count, tail = 0, 0, ""
        pos = 0
        while pos < len(new):
            if count >= CHUNK_LINES:
                index, tail, count = index + 1, "", 0
            take = new[pos : pos + CHUNK_LINES - count]
            tail += "".join(take)
            changes[f"{directory}/{CHUNK_FORMAT.format(index)}"] = tail.encode()
            pos += len(take)
            count += len(take)
        if tails is not None:
            tails[key] = (index, count, tail if count < CHUNK_LINES else "")
    return changes


def _last_chunk(repo: GitRepo, tree: str, directory: str) -> ChunkTail:
    """(index, lines, text) of the last chunk file in ``directory`` of ``tree``; (0, 0, "") if none."""
    chunks = sorted((n, oid) for n, oid, is_tree in repo.list_dir(tree, directory) if not is_tree)
    if not chunks:
        return 0, 0, ""
    name, oid = chunks[-1]
    text = repo.read_blob(oid).decode()
    return int(name.split(".", 1)[0]), text.count("\n"), text


def _metric_chunks(repo: GitRepo, tree: str, key: str) -> Iterator[str]:
    """The text of each chunk file of metric ``key``, in order."""
    listing = repo.list_dir(tree, f"{METRICS_DIR}/{key}")
    for name, oid in sorted((n, oid) for n, oid, is_tree in listing if not is_tree):
        try:
            yield repo.read_blob(oid).decode()
        except UnicodeDecodeError:
            raise InvalidValue(f"Metric {key!r} has a chunk that is not UTF-8 text ({name}; the run commit "
                               "was not written by gitml)") from None


def _metric_lines(chunks: list[str]) -> Iterator[str]:
    for chunk in chunks:
        yield from chunk.splitlines()


_NUMBER_TEXT = str.maketrans("", "", "0123456789-+.einfa\t\n")  # deletes what a metric line may hold


def _looks_like_metric_lines(text: str) -> bool:
    """Lines of 3 tab-separated tokens made of number characters only: cheap enough for 100k lines."""
    lines = text.count("\n")
    return (not text or text.endswith("\n")) and text.count("\t") == 2 * lines \
        and not text.translate(_NUMBER_TEXT) \
        and "\t\t" not in text and "\n\t" not in text and "\t\n" not in text and "\n\n" not in text \
        and not text.startswith(("\t", "\n"))


def read_metric_tokens(repo: GitRepo, tree: str, key: str) -> tuple[list[str], list[str], list[str]] | None:
    """The history of ``key`` as its stored text: (steps, timestamps, values) tokens, no parsing.

    gitml writes steps and timestamps as integers and values with
    ``repr(float)``: JSON numbers, or ``nan``/``inf``/``-inf``. The text is
    checked to be lines of three non-empty tokens of number characters only
    (no quote, bracket or comma can get through). Returns None otherwise (a
    file written by something else): parse it with ``read_metric_columns``.
    """
    text = "".join(_metric_chunks(repo, tree, key))
    if not _looks_like_metric_lines(text):
        return None
    tokens = text.replace("\n", "\t").split("\t")[:-1]
    return tokens[0::3], tokens[1::3], tokens[2::3]


def check_metric_files(repo: GitRepo, tree: str) -> None:
    """Check every file under ``metrics/`` of a run tree from elsewhere: valid keys, chunk names, lines.

    Raises:
        schema.Problem: the first thing that is not what gitml writes.
    """
    from gitml.tracking import validation

    keys: dict[str, list[str]] = {}
    for path, blob in repo.walk_blobs(tree, METRICS_DIR):
        key, _, name = path.rpartition("/")
        if not key or not _CHUNK_NAME.fullmatch(name):
            raise schema.Problem(f"{METRICS_DIR}/{path} is not a metric chunk file")
        try:
            validation.validate_metric_key(key)
        except GitmlError as e:
            raise schema.Problem(f"metric key: {e}") from None
        keys.setdefault(key, []).append(name)
        data = repo.read_blob(blob)
        if len(data) > schema.MAX_FILE_BYTES:
            raise schema.Problem(f"{METRICS_DIR}/{path} is {len(data)} bytes")
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise schema.Problem(f"{METRICS_DIR}/{path} is not UTF-8 text") from None
        if not _looks_like_metric_lines(text) or not _strictly_metric_lines(text):
            raise schema.Problem(f"{METRICS_DIR}/{path} has a line that is not <step> <timestamp> <value>")
    for key, chunks in keys.items():
        if sorted(chunks) != [CHUNK_FORMAT.format(i) for i in range(len(chunks))]:
            raise schema.Problem(f"metric {key!r} has chunk files out of sequence")


_CHUNK_NAME = re.compile(r"\d{6}\.tsv")
_INT_TOKEN = re.compile(r"-?\d{1,19}")
_FLOAT_TOKEN = re.compile(r"-?(\d+(\.\d*)?(e[-+]?\d+)?|inf|nan)")


def _strictly_metric_lines(text: str) -> bool:
    for line in text.split("\n")[:-1]:
        step, ts, value = line.split("\t")
        if not (_INT_TOKEN.fullmatch(step) and _INT_TOKEN.fullmatch(ts) and _FLOAT_TOKEN.fullmatch(value)):
            return False
    return True


def _parse_columns(text: str) -> tuple[list[int], list[int], list[float]] | None:
    """(steps, timestamps, values) of chunk text in the shape gitml writes; None for anything else.

    The text becomes one JSON array, each line's three tokens followed by a
    ``null`` (tabs to commas, newlines to ``,null,``; ``nan`` and ``inf`` to
    the ``NaN`` and ``Infinity`` Python's json reads), so json makes the ints
    and floats in C without a string per token, and every fourth item being
    the only nulls proves each line had three tokens. The numbers are what
    ``int()`` and ``float()`` of each token give; any token they would read
    differently (a step that is not an integer, ``007``, text with JSON's own
    punctuation) returns None, for the line-by-line reader.
    """
    if not text:
        return [], [], []
    if not text.endswith("\n") or "," in text or "[" in text or "]" in text:
        return None
    if "n" in text:
        text = text.replace("nan", "NaN").replace("inf", "Infinity")
    body = text.replace("\t", ",").replace("\n", ",null,")
    try:
        items = json.loads("[" + body[:-1] + "]")
    except ValueError:
        return None
    steps, times, values, ends = items[0::4], items[1::4], items[2::4], items[3::4]
    if len(items) % 4 or ends.count(None) != len(ends):
        return None
    if not set(map(type, steps)) | set(map(type, times)) <= {int}:
        return None  # a null or a float among them: a line without three number tokens
    kinds = set(map(type, values))
    if not kinds <= {float}:
        if not kinds <= {float, int}:
            return None
        try:
            values = list(map(float, values))  # "5" is a JSON int; float("5") is 5.0
        except OverflowError:
            return None
    return steps, times, values


def read_metric_history(repo: GitRepo, tree: str, key: str) -> list[Metric]:
    """Every logged point of metric ``key`` in the order it was logged."""
    steps, times, values = read_metric_columns(repo, tree, key)
    return metric_entities(key, steps, times, values)


def read_metric_columns(repo: GitRepo, tree: str, key: str) -> tuple[list[int], list[int], list[float]]:
    """``read_metric_history`` as three lists (steps, timestamps, values): cheap for 100k points.

    Text in the shape gitml writes is read as one JSON array of numbers
    (``_parse_columns``): C code makes the ints and floats straight from the
    text, ~3x faster than a loop over lines for 100k points. Anything else
    goes line by line, which names the first bad line.

    Raises:
        InvalidValue: a line is not <step> <timestamp> <value>, or a chunk is not UTF-8.
    """
    chunks = list(_metric_chunks(repo, tree, key))
    columns = _parse_columns("".join(chunks))
    if columns is not None:
        return columns
    steps: list[int] = []
    times: list[int] = []
    values: list[float] = []
    for line in _metric_lines(chunks):
        try:
            step, ts, value = line.split("\t")
            steps.append(int(step))
            times.append(int(ts))
            values.append(float(value))
        except ValueError:
            raise InvalidValue(f"Metric {key!r} has a line that is not <step> <timestamp> <value>: {line[:80]!r} "
                               "(the run commit was not written by gitml)") from None
    return steps, times, values
