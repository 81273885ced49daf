"""Registry search: MLflow's filter, order_by and page-token grammar for models and versions.

One grammar for ``gitml.Client`` and the MLflow plugin store (which maps ``InvalidFilter`` to
MLflow's ``INVALID_PARAMETER_VALUE``). A filter is comparisons joined by ``AND``::

    name = 'rf' AND tags.`team name` LIKE 'fraud%' AND version_number >= 3

Registered models: ``name`` and ``tags.<key>`` with ``=``, ``!=``, ``LIKE``, ``ILIKE``.
Model versions: ``name`` and ``run_id`` (also ``IN`` / ``NOT IN``), ``source_path``,
``version_number`` (``= != < <= > >=``), ``tags.<key>``, and gitml's ``semver``, ``stage``
(case-insensitive) and ``source``. A comparison on a tag the entity lacks is false, as in
MLflow. ``LIKE`` is case-sensitive, ``ILIKE`` is not; ``%`` and ``_`` are the wildcards.

Only the standard library is imported here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gitml.errors import InvalidFilter

TAG = "tags"

MODEL_KEYS = frozenset({"name"})
VERSION_KEYS = frozenset({"name", "run_id", "source_path", "version_number", "version", "semver", "stage", "source"})
_NUMERIC = frozenset({"version_number", "version", "creation_timestamp", "last_updated_timestamp"})
_LIST_KEYS = frozenset({"name", "run_id", "semver", "stage", "source"})
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
_NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")

MODEL_ORDER_KEYS = {"name": "name", "timestamp": "last_updated_timestamp",
                    "last_updated_timestamp": "last_updated_timestamp", "creation_timestamp": "creation_timestamp"}
VERSION_ORDER_KEYS = {"name": "name", "version_number": "version_number", "creation_timestamp": "creation_timestamp",
                      "last_updated_timestamp": "last_updated_timestamp"}
#: MLflow's default order for ``search_model_versions``.
DEFAULT_VERSION_ORDER = ("last_updated_timestamp DESC", "name ASC", "version_number DESC")


@dataclass(frozen=True)
class Clause:
    """One ``<key> <op> <value>`` term; ``tag`` is set for ``tags.<tag>``."""

    key: str
    op: str
    value: Any
    tag: str | None = None


_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    | (?P<ident>(?:tags?|attributes?)\.(?:`[^`]*`|"[^"]*"|[\w.\-/:]+)|[A-Za-z_]\w*)
    | (?P<number>[+-]?\d+(?:\.\d+)?)
    | (?P<op>!=|<>|<=|>=|==|=|<|>)
    | (?P<paren>[(),])
    )""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InvalidFilter(f"Invalid filter {text!r}: cannot read {text[pos:pos + 30].strip()!r}")
        kind = m.lastgroup or ""
        out.append((kind, m[kind]))
        pos = m.end()
    return out


def _unquote(token: str) -> str:
    quote = token[0]
    body = token[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def _ident(raw: str, keys: frozenset[str], what: str) -> tuple[str, str | None]:
    prefix, dot, rest = raw.partition(".")
    if dot and prefix.lower() in ("tag", "tags"):
        key = rest[1:-1] if rest[:1] in "`\"" and len(rest) >= 2 and rest[-1] == rest[0] else rest.strip()
        if not key:
            raise InvalidFilter(f"Invalid {what} filter: a tag key is missing after {raw!r}")
        return TAG, key
    if dot and prefix.lower() in ("attribute", "attributes"):
        raw = rest.strip()
    if raw not in keys:
        raise InvalidFilter(f"Invalid {what} filter: unknown key {raw!r}; use "
                            + ", ".join(sorted(keys)) + " or tags.<key>")
    return raw, None


def parse_filter(filter_string: str | None, *, models: bool = False) -> list[Clause]:
    """``name = 'rf' AND tags.team = 'x'`` -> clauses (for models if ``models``, else for versions).

    Raises:
        InvalidFilter: naming the part that does not parse.
    """
    if filter_string is None or not str(filter_string).strip():
        return []
    what = "registered model" if models else "model version"
    keys = MODEL_KEYS if models else VERSION_KEYS
    tokens = _tokens(str(filter_string))
    out: list[Clause] = []
    i = 0
    while i < len(tokens):
        if out:
            if tokens[i][0] != "ident" or tokens[i][1].upper() != "AND":
                raise InvalidFilter(f"Invalid {what} filter {filter_string!r}: comparisons are joined by AND only")
            i += 1
        if i >= len(tokens) or tokens[i][0] != "ident":
            raise InvalidFilter(f"Invalid {what} filter {filter_string!r}: expected a key such as name or tags.<key>")
        key, tag = _ident(tokens[i][1], keys, what)
        i += 1
        op, i = _operator(tokens, i, filter_string, what)
        value, i = _value(tokens, i, key, op, filter_string, what)
        _check_op(key, op, models, what)
        out.append(Clause(key, op, value, tag))
    return out


def _operator(tokens: list[tuple[str, str]], i: int, text: str, what: str) -> tuple[str, int]:
    if i >= len(tokens):
        raise InvalidFilter(f"Invalid {what} filter {text!r}: a comparison has no operator")
    kind, tok = tokens[i]
    if kind == "op":
        return {"==": "=", "<>": "!="}.get(tok, tok), i + 1
    if kind == "ident" and tok.upper() in ("LIKE", "ILIKE", "IN"):
        return tok.upper(), i + 1
    if kind == "ident" and tok.upper() == "NOT" and i + 1 < len(tokens) and tokens[i + 1][1].upper() == "IN":
        return "NOT IN", i + 2
    raise InvalidFilter(f"Invalid {what} filter {text!r}: {tok!r} is not an operator")


def _value(tokens: list[tuple[str, str]], i: int, key: str, op: str, text: str, what: str) -> tuple[Any, int]:
    if i >= len(tokens):
        raise InvalidFilter(f"Invalid {what} filter {text!r}: a comparison has no value")
    kind, tok = tokens[i]
    if op in ("IN", "NOT IN"):
        if tok != "(":
            raise InvalidFilter(f"Invalid {what} filter {text!r}: {op} takes a list such as ('a', 'b')")
        values, i = [], i + 1
        while i < len(tokens) and tokens[i][0] == "string":
            values.append(_unquote(tokens[i][1]))
            i += 1
            if i < len(tokens) and tokens[i][1] == ",":
                i += 1
        if i >= len(tokens) or tokens[i][1] != ")" or not values:
            raise InvalidFilter(f"Invalid {what} filter {text!r}: {op} takes a list of quoted strings")
        return tuple(values), i + 1
    if key in _NUMERIC:
        raw = _unquote(tok) if kind == "string" else tok if kind == "number" else None
        if raw is None or not re.fullmatch(r"[+-]?\d+", raw.strip()):
            raise InvalidFilter(f"Invalid value for numeric attribute {key!r}: {tok!r}")
        return int(raw), i + 1
    if kind != "string":
        raise InvalidFilter(f"Invalid {what} filter {text!r}: the value {tok!r} must be quoted")
    return _unquote(tok), i + 1


def _check_op(key: str, op: str, models: bool, what: str) -> None:
    if key in _NUMERIC:
        allowed: Sequence[str] = _NUMERIC_OPS
    elif key == TAG:
        allowed = _STRING_OPS
    elif key in _LIST_KEYS and not models:
        allowed = (*_STRING_OPS, "IN", "NOT IN")
    else:
        allowed = _STRING_OPS
    if op not in allowed:
        raise InvalidFilter(f"Invalid comparator {op!r} for {key} in a {what} filter; use " + ", ".join(allowed))


def like(value: str, pattern: str, ignore_case: bool = False) -> bool:
    """SQL ``LIKE``: ``%`` any run of characters, ``_`` one character; no escape character."""
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _compare(actual: Any, op: str, value: Any) -> bool:
    if actual is None:
        return False
    if op == "=":
        return bool(actual == value)
    if op == "!=":
        return bool(actual != value)
    if op in ("LIKE", "ILIKE"):
        return like(str(actual), str(value), op == "ILIKE")
    if op == "IN":
        return actual in value
    if op == "NOT IN":
        return actual not in value
    return bool({"<": actual < value, "<=": actual <= value, ">": actual > value, ">=": actual >= value}[op])


def matches(fields: Callable[[str], Any], tags: dict[str, str], clauses: Sequence[Clause]) -> bool:
    """True if an entity passes every clause. ``fields(key)`` gives an attribute's value, or a
    list of values any of which may match (a version's stages)."""
    for c in clauses:
        actual = tags.get(c.tag) if c.key == TAG else fields(c.key)
        values = actual if isinstance(actual, list) else [actual]
        if c.op in ("!=", "NOT IN") and isinstance(actual, list):
            ok = all(_compare(v, c.op, c.value) for v in values)
        else:
            ok = any(_compare(v, c.op, c.value) for v in values)
        if not ok:
            return False
    return True


def parse_order_by(order_by: Sequence[str] | None, keys: dict[str, str], what: str) -> list[tuple[str, bool]]:
    """``["name ASC", "version_number DESC"]`` -> [(field, ascending)].

    Raises:
        InvalidFilter: an unknown key, a bad direction or a key given twice.
    """
    out: list[tuple[str, bool]] = []
    for clause in order_by or []:
        parts = str(clause).split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise InvalidFilter(f"Invalid order_by clause {clause!r}: use '<key> [ASC|DESC]'")
        key = parts[0]
        key = key.split(".", 1)[1] if key.startswith(("attribute.", "attributes.")) else key
        if key not in keys:
            raise InvalidFilter(f"Invalid order by key {parts[0]!r} specified for {what}; valid keys are "
                                + ", ".join(sorted(keys)))
        field = keys[key]
        if field in (f for f, _ in out):
            raise InvalidFilter(f"`order_by` contains duplicate fields: {list(order_by or [])}")
        out.append((field, len(parts) == 1 or parts[1].upper() == "ASC"))
    return out


def sort(items: list[Any], order: Sequence[tuple[str, bool]], value: Callable[[Any, str], Any]) -> list[Any]:
    """``items`` ordered by ``order`` (stable passes, last key first)."""
    for field, ascending in reversed(order):
        items = sorted(items, key=lambda x, f=field: value(x, f), reverse=not ascending)
    return items


def page_token(offset: int) -> str:
    """MLflow's page token: base64 of ``{"offset": n}``."""
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def parse_page_token(token: str | bytes | None) -> int:
    """The offset a page token holds (0 without one).

    Raises:
        InvalidFilter: the token is not one ``page_token`` made.
    """
    if not token:
        return 0
    try:
        data = json.loads(base64.b64decode(token, validate=True))
        offset = data["offset"]
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError):
        raise InvalidFilter(f"Invalid page token {str(token)[:60]!r}") from None
    if type(offset) is not int or offset < 0:
        raise InvalidFilter(f"Invalid page token {str(token)[:60]!r}: bad offset")
    return offset


def page(items: list[Any], max_results: int | None, token: str | bytes | None) -> tuple[list[Any], str | None]:
    """One page of ``items`` and the token of the next (None on the last page)."""
    start = parse_page_token(token)
    if max_results is None:
        return items[start:], None
    end = start + max_results
    return items[start:end], (page_token(end) if end < len(items) else None)
