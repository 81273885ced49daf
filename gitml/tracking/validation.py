"""Rules for what may be logged: keys, values, steps, timestamps, experiment names, run ids.

The rules and limits follow MLflow 3 (``mlflow/utils/validation.py``), so a run gitml
accepts can be exported to an MLflow server. gitml adds rules of its own where a key
becomes a git tree path: a metric ``loss/train`` is stored as
``metrics/loss/train/<chunk>.tsv``, so its components must be names git accepts in a
tree and must not collide with the chunk files.

Every function raises a :mod:`gitml.errors` error on bad input and returns the normalised
value on success. The module imports only the standard library: ``validate_metric_key``
runs on every ``log_metric`` call (the caller caches keys it has already seen).
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import re
from pathlib import PurePosixPath

from gitml.errors import InvalidName, InvalidValue, ParamAlreadyLogged

__all__ = [
    "MAX_ENTITIES_PER_BATCH",
    "MAX_ENTITY_KEY_LENGTH",
    "MAX_EXPERIMENT_NAME_LENGTH",
    "MAX_METRICS_PER_BATCH",
    "MAX_PARAMS_TAGS_PER_BATCH",
    "MAX_PARAM_VAL_LENGTH",
    "MAX_TAG_VAL_LENGTH",
    "validate_artifact_md5",
    "validate_artifact_path",
    "validate_batch_limits",
    "validate_experiment_name",
    "validate_metric_key",
    "validate_metric_step",
    "validate_metric_value",
    "validate_param_key",
    "validate_param_rewrite",
    "validate_param_value",
    "validate_run_id",
    "validate_tag_key",
    "validate_tag_value",
    "validate_timestamp",
]

# Limits, as in MLflow 3.
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# MLflow 3's key characters on POSIX. MLflow drops the colon on Windows only because it
# writes keys as file names there; gitml writes them into git trees on every platform,
# so one rule everywhere keeps a run readable wherever it is cloned. fullmatch, not
# MLflow's `^...$` with match(): `$` also matches before a trailing newline.
_KEY_RE = re.compile(r"[/\w.\- :]+")
_KEY_CHARS = (
    "letters, digits, underscores (_), dashes (-), periods (.), spaces ( ), "
    "colons (:) and slashes (/)"
)
_PATH_RULE = (
    "keys are stored as paths, so they must not start or end with '/', contain '//', "
    "or have '.' or '..' as a component"
)
_CHUNK_RE = re.compile(r"\d+\.tsv")
_RUN_ID_RE = re.compile(r"[0-9a-f]{32}")
_MD5_RE = re.compile(r"[0-9a-f]{32}(\.dir)?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# Tree entry names `git fsck --strict` refuses (hasDotgit, gitmodulesBlob,
# gitattributesBlob). NTFS aliases add trailing dots or spaces, or an
# alternate-data-stream suffix after ':'; the 8.3 short names ("git~1") and the HFS+
# ignorable code points are already outside _KEY_RE.
_GIT_RESERVED = frozenset({".git", ".gitmodules", ".gitattributes"})

_SHOW_LIMIT = 100


def _show(value: object) -> str:
    """Return ``repr(value)``, cut to about 100 characters for long values."""
    if isinstance(value, str):
        if len(value) <= _SHOW_LIMIT:
            return repr(value)
        return f"{repr(value[:_SHOW_LIMIT])[:-1]}... ({len(value)} characters)"
    try:
        text = repr(value)
    except ValueError:  # ints past sys.get_int_max_str_digits()
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= _SHOW_LIMIT else f"{text[:_SHOW_LIMIT]}..."


def _check_key(kind: str, key: object) -> str:
    """Apply MLflow's key rules; return the key or raise InvalidName."""
    if type(key) is not str and isinstance(key, str):
        key = str.__str__(key)  # a plain str, also for str subclasses and StrEnum members
    if type(key) is str and _key_ok(key):
        return key
    raise InvalidName(_key_problem(kind, key))


@functools.lru_cache(maxsize=65536)  # the same few keys recur in every run an index build reads
def _key_ok(key: str) -> bool:
    """Return True if `key` passes MLflow's character, length and path rules."""
    if not _KEY_RE.fullmatch(key) or len(key) > MAX_ENTITY_KEY_LENGTH:
        return False
    # Same outcome as MLflow's posixpath.normpath() check, without building a path.
    if "//" in key or key[0] == "/" or key[-1] == "/" or key.startswith(".."):
        return False
    return "." not in key or not any(part in (".", "..") for part in key.split("/"))


def _key_problem(kind: str, key: object) -> str:
    """Explain why `key` failed _check_key (the slow path, only on errors)."""
    head = f"Invalid {kind} {_show(key)}"
    if not isinstance(key, str):
        return f"{head}: a {kind} must be a string, not {type(key).__name__}."
    if key == "":
        return f"{head}: a {kind} must not be empty."
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        return f"{head}: it is {len(key)} characters long; the limit is {MAX_ENTITY_KEY_LENGTH}."
    for position, char in enumerate(key):
        if not _KEY_RE.fullmatch(char):
            kind_of_char = "control character" if _CONTROL_RE.match(char) else "character"
            return (
                f"{head}: {kind_of_char} {char!r} at position {position} is not allowed; "
                f"keys may only contain {_KEY_CHARS}."
            )
    if key.startswith("..") and key.split("/")[0] not in ("", ".", ".."):
        # MLflow refuses "..x" too: it tests whether the normalised path starts with "..".
        return f"{head}: a {kind} must not start with '..'."
    return f"{head}: {_PATH_RULE}."


def validate_metric_key(key: object) -> str:
    """Check a metric key, which also becomes a directory path in the run's git tree.

    Raises:
        InvalidName: the key breaks MLflow's rules, or a path component is a name git
            reserves (``.git``, ``.gitmodules``, ``.gitattributes`` in any case) or looks
            like a metric chunk file (``<digits>.tsv``).
    """
    key = _check_key("metric key", key)
    if "." in key:
        for part in key.split("/"):
            if part[0] == "." and part.partition(":")[0].rstrip(" .").lower() in _GIT_RESERVED:
                raise InvalidName(
                    f"Invalid metric key {_show(key)}: component {part!r} is a name git "
                    "reserves in trees ('.git', '.gitmodules', '.gitattributes' in any case, "
                    "also with trailing dots or spaces, or a ':' suffix)."
                )
            if part[-1] == "v" and _CHUNK_RE.fullmatch(part):
                raise InvalidName(
                    f"Invalid metric key {_show(key)}: component {part!r} looks like a "
                    "metric chunk file (digits followed by '.tsv'), which gitml stores "
                    "under each metric key."
                )
    return key


def validate_param_key(key: object) -> str:
    """Check a param key.

    Raises:
        InvalidName: the key breaks MLflow's naming rules.
    """
    return _check_key("param key", key)


def validate_tag_key(key: object) -> str:
    """Check a tag key.

    Raises:
        InvalidName: the key breaks MLflow's naming rules.
    """
    return _check_key("tag key", key)


def _bad_metric_value(key: object, value: object, rule: str) -> InvalidValue:
    return InvalidValue(f"Invalid value {_show(value)} for metric {_show(key)}: {rule}.")


def _non_numeric_dtype(value: object) -> str | None:
    """Return the dtype name of a numpy/torch-like scalar that is not int or float."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return None
    kind = getattr(dtype, "kind", None)  # numpy and numpy-likes
    if kind is not None:
        return None if kind in "iuf" else str(dtype)
    name = str(dtype)  # torch: "torch.bool", "torch.complex64"
    return name if name.endswith("bool") or "complex" in name else None


def validate_metric_value(key: object, value: object) -> float:
    """Check a metric value and return it as a float; NaN and +-inf are allowed.

    Accepts ints, floats and other real numbers (numpy scalars, Decimal, 0-d arrays and
    tensors). Refuses bool, as MLflow does, and strings, even numeric ones.

    Raises:
        InvalidValue: the value is not a real number or does not fit in a 64-bit float.
    """
    if type(value) is float:
        return value
    must = "a metric value must be a real number (int or float; NaN and inf are allowed)"
    if type(value) is not int:
        if isinstance(value, (bool, str, bytes)):
            raise _bad_metric_value(key, value, f"{must}, not {type(value).__name__}")
        dtype = _non_numeric_dtype(value)
        if dtype is not None:
            raise _bad_metric_value(key, value, f"{must}, not a {dtype} value")
        if getattr(value, "ndim", 0):
            raise _bad_metric_value(key, value, f"{must}, not an array; log one element")
        if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
            raise _bad_metric_value(key, value, f"{must}, not a complex number")
        if not isinstance(value, numbers.Number) and not hasattr(type(value), "__float__"):
            raise _bad_metric_value(key, value, f"{must}, not {type(value).__name__}")
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError as e:
        raise _bad_metric_value(key, value, "it is too large for a 64-bit float") from e
    except (TypeError, ValueError) as e:
        raise _bad_metric_value(key, value, f"{must}; float() failed: {e}") from e


def _as_int64(value: object) -> int | None:
    """Return `value` as an int if it is a whole number in the int64 range, else None."""
    if type(value) is int:
        number = value
    elif isinstance(value, (bool, str, bytes)) or _non_numeric_dtype(value) is not None:
        return None
    elif hasattr(type(value), "__index__"):  # numpy ints, 0-d int arrays and tensors
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            return None
    elif isinstance(value, numbers.Real):  # 3.0 from arithmetic on epochs is fine
        as_float = float(value)
        if not math.isfinite(as_float) or not as_float.is_integer():
            return None
        number = int(as_float)
    else:
        return None
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _got(value: object) -> str:
    """Name the type of a non-int value, for messages about ints."""
    return "" if type(value) is int else f", not {type(value).__name__}"


def validate_metric_step(step: object) -> int:
    """Check a metric step and return it as an int.

    Raises:
        InvalidValue: the step is not a whole number in the 64-bit integer range.
    """
    number = _as_int64(step)
    if number is None:
        raise InvalidValue(
            f"Invalid metric step {_show(step)}: a step must be a whole number "
            f"between -2**63 and 2**63-1{_got(step)}."
        )
    return number


def validate_timestamp(ts: object) -> int:
    """Check a timestamp in milliseconds since the epoch and return it as an int.

    Raises:
        InvalidValue: the timestamp is not a whole number in ``0 .. 2**63-1``.
    """
    number = _as_int64(ts)
    if number is None or number < 0:
        raise InvalidValue(
            f"Invalid timestamp {_show(ts)}: a timestamp must be a non-negative whole "
            f"number of milliseconds since the epoch, below 2**63{_got(ts)}."
        )
    return number


def _check_text(kind: str, key: object, value: object, limit: int) -> str:
    """Stringify `value` as MLflow does and enforce `limit` characters."""
    text = value if type(value) is str else str(value)
    if len(text) > limit:
        raise InvalidValue(
            f"Invalid value {_show(text)} for {kind} {_show(key)}: it is {len(text)} "
            f"characters long; the limit is {limit}."
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        # Lone surrogates cannot be written into a git blob as UTF-8.
        raise InvalidValue(
            f"Invalid value {_show(text)} for {kind} {_show(key)}: it is not valid "
            f"Unicode text ({e.reason} at position {e.start})."
        ) from e
    return text


def validate_param_value(key: object, value: object) -> str:
    """Return ``str(value)`` if it fits in MAX_PARAM_VAL_LENGTH (6000) characters.

    MLflow 3 truncates longer values by default (MLFLOW_TRUNCATE_LONG_VALUES); gitml
    refuses them, since params are write-once and a truncated value cannot be fixed later.

    Raises:
        InvalidValue: the value is too long or is not valid Unicode.
    """
    return _check_text("param", key, value, MAX_PARAM_VAL_LENGTH)


def validate_tag_value(key: object, value: object) -> str:
    """Return ``str(value)`` if it fits in MAX_TAG_VAL_LENGTH (8000) characters.

    Raises:
        InvalidValue: the value is too long or is not valid Unicode.
    """
    return _check_text("tag", key, value, MAX_TAG_VAL_LENGTH)


def validate_param_rewrite(key: str, old: str, new: str) -> None:
    """Allow logging a param again only with the value it already has.

    Raises:
        ParamAlreadyLogged: `new` differs from the `old` value logged for `key`.
    """
    if old != new:
        raise ParamAlreadyLogged(
            f"Param {_show(key)} was already logged with value {_show(old)}; it cannot "
            f"change to {_show(new)}. Params are write-once: use another key, or log each "
            "setting in its own (nested) run."
        )


def validate_experiment_name(name: object) -> str:
    """Check an experiment name: a non-empty string of at most 500 characters.

    On top of MLflow's rules, control characters (newline, tab, NUL...) are refused:
    names appear in git commit messages and one-line listings.

    Raises:
        InvalidName: the name is not a string, is empty, too long or has control characters.
    """
    head = f"Invalid experiment name {_show(name)}"
    if not isinstance(name, str):
        raise InvalidName(
            f"{head}: an experiment name must be a string, not {type(name).__name__}."
        )
    if not name:
        raise InvalidName(f"{head}: an experiment name must not be empty.")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidName(
            f"{head}: it is {len(name)} characters long; the limit is {MAX_EXPERIMENT_NAME_LENGTH}."
        )
    control = _CONTROL_RE.search(name)
    if control:
        raise InvalidName(
            f"{head}: control character {control.group()!r} at position {control.start()} "
            "is not allowed."
        )
    return name


def validate_run_id(run_id: object) -> str:
    """Check a full gitml run id: 32 lowercase hexadecimal characters.

    Raises:
        InvalidName: `run_id` is not 32 lowercase hex digits.
    """
    if isinstance(run_id, str) and _RUN_ID_RE.fullmatch(run_id):
        return str.__str__(run_id)
    raise InvalidName(
        f"Invalid run id {_show(run_id)}: a run id is 32 lowercase hexadecimal characters "
        "(0-9, a-f)."
    )


def validate_batch_limits(metrics: int, params: int, tags: int) -> None:
    """Check the sizes of one log_batch call against MLflow's limits.

    Raises:
        InvalidValue: more than 1000 metrics, 100 params, 100 tags, or 1000 in total.
    """
    for what, count, limit in (
        ("metrics", metrics, MAX_METRICS_PER_BATCH),
        ("params", params, MAX_PARAMS_TAGS_PER_BATCH),
        ("tags", tags, MAX_PARAMS_TAGS_PER_BATCH),
        ("metrics, params and tags together", metrics + params + tags, MAX_ENTITIES_PER_BATCH),
    ):
        if count > limit:
            raise InvalidValue(
                f"Invalid batch: it has {count} {what}; one batch may hold at most {limit}. "
                "Split it into several calls."
            )


def validate_artifact_path(path: str | None, what: str = "artifact path") -> str:
    """Normalise a run-relative artifact path ('' for the root).

    Raises:
        InvalidName: absolute, with ``..``, a backslash or control characters.
    """
    if path is None or path in ("", "."):
        return ""
    text = str(path)
    if _CONTROL_RE.search(text) or "\\" in text:
        raise InvalidName(f"Invalid {what} {_show(text)}: control characters and backslashes are not allowed")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise InvalidName(f"Invalid {what} {_show(text)}: must be relative to the run's artifacts, not absolute")
    parts = [p for p in PurePosixPath(text).parts if p != "."]
    if any(p == ".." for p in parts):
        raise InvalidName(f"Invalid {what} {_show(text)}: '..' would leave the run's artifacts")
    return "/".join(parts)


def validate_artifact_md5(md5: object, directory: bool = False) -> str:
    """Check an artifact hash: 32 lowercase hex digits, plus ``.dir`` for a directory object.

    A hash names a file in the content store, so anything else (``../x``)
    must never reach a path.

    Raises:
        InvalidValue: not an md5 of the expected kind.
    """
    if type(md5) is str and _MD5_RE.fullmatch(md5) and md5.endswith(".dir") == directory:
        return md5
    kind = "a directory's md5 with '.dir'" if directory else "32 lowercase hex digits"
    raise InvalidValue(f"Invalid artifact hash {_show(md5)}: expected {kind}")
