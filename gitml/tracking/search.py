"""Run search: MLflow's filter and order_by grammar, compiled to SQL over the run index.

The grammar is MLflow's ``search_runs`` one: comparisons joined by ``AND``, each
``<identifier> <operator> <value>``, where the identifier is ``metrics.<key>``,
``params.<key>``, ``tags.<key>``, ``attributes.<key>`` or ``datasets.<name|digest|context>``
(plus MLflow's aliases for the prefixes and for a few attributes). ``parse_filter`` and
``parse_order_by`` turn strings into ``Comparison`` and ``OrderKey`` values;
``compile_search`` turns those into one SQL ``SELECT`` over the derived SQLite
index; ``match_run`` and ``sort_runs`` give the same answers in pure Python for
runs held in memory.

Semantics shared by the SQL and the Python paths:

- A comparison on a metric, param, tag or attribute the run does not have is
  false, whatever the operator (``!=`` included), as in MLflow.
- A NaN metric fails every numeric comparison except ``!=`` (IEEE 754, and
  MLflow's in-memory matcher).
- ``LIKE`` is case-sensitive; ``ILIKE`` folds ASCII letters only (what
  SQLite's built-in ``lower()`` does). ``%`` and ``_`` are the only wildcards;
  there is no escape character.
- A dataset comparison holds when any dataset the run used satisfies it
  (``datasets.context`` is that input's ``mlflow.data.context`` tag); datasets
  cannot be ordered on, as in MLflow.
- Ordering puts runs lacking the key last in either direction; for metrics
  NaN values come after real values and before missing ones. Ties fall back to
  ``start_time`` descending (unless ordered on already), then ``run_id``.

Only the standard library is imported here: ``import gitml`` must stay fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitml.errors import InvalidFilter

__all__ = [
    "ATTRIBUTE",
    "DATASET",
    "METRIC",
    "PARAM",
    "TAG",
    "Comparison",
    "OrderKey",
    "compile_search",
    "match_run",
    "parse_filter",
    "parse_order_by",
    "sort_runs",
]

METRIC = "metric"
PARAM = "param"
TAG = "tag"
ATTRIBUTE = "attribute"
DATASET = "dataset"


@dataclass(frozen=True)
class Comparison:
    """One ``<identifier> <op> <value>`` term of a filter.

    ``value`` is a float for metrics, an int for time attributes, a str for
    params, tags and string attributes, and a tuple of str for ``IN``/``NOT IN``.
    """

    kind: str
    key: str
    op: str
    value: object


@dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` term: what to sort on and in which direction."""

    kind: str
    key: str
    ascending: bool


# MLflow accepts these spellings of the entity type (case-sensitive, as in MLflow).
_PREFIXES: dict[str, str] = {
    "metric": METRIC,
    "metrics": METRIC,
    "param": PARAM,
    "params": PARAM,
    "parameter": PARAM,
    "parameters": PARAM,
    "tag": TAG,
    "tags": TAG,
    "attribute": ATTRIBUTE,
    "attributes": ATTRIBUTE,
    "attr": ATTRIBUTE,
    "run": ATTRIBUTE,
    "dataset": DATASET,
    "datasets": DATASET,
}
_PREFIX_HELP = "metrics.<key>, params.<key>, tags.<key>, attributes.<key> or datasets.<name|digest|context>"
# Dataset field -> column of the index's datasets table.
_DATASET_FIELDS = {"name": "name", "digest": "digest", "context": "context"}

# Attribute name -> is it numeric. Names double as column names of the runs table.
_ATTRIBUTES: dict[str, bool] = {
    "run_id": False,
    "run_name": False,
    "status": False,
    "user_id": False,
    "artifact_uri": False,
    "start_time": True,
    "end_time": True,
}
_ATTRIBUTE_ALIASES: dict[str, str] = {
    "created": "start_time",
    "Created": "start_time",
    "run name": "run_name",
    "Run name": "run_name",
    "Run Name": "run_name",
}
_ATTRIBUTE_HELP = (
    "run_id, run_name, status, user_id, artifact_uri, start_time, end_time; "
    "aliases created and `run name`"
)
# MLflow allows a parenthesised list only for run_id.
_LIST_ATTRIBUTES = frozenset({"run_id"})

_NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
_LIST_OPS = ("IN", "NOT IN")

_TABLES = {METRIC: "latest_metrics", PARAM: "params", TAG: "tags"}

_BARE_NAME = re.compile(r"\w+")
# Unquoted keys may hold dots (tags.mlflow.runName) and a few punctuation marks
# common in metric names; anything else needs quotes.
_BARE_KEY = re.compile(r"[\w.\-/:]+")
_BARE_VALUE = re.compile(r"[^\s()'\"`,]+")
_SYMBOL_OP = re.compile(r"!=|<>|<=|>=|==|=|<|>")
_WORD = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_SPACE = re.compile(r"\s*")
_NON_SPACE = re.compile(r"\S+")
_QUOTES = "'\"`"

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


# --------------------------------------------------------------------------- parsing


#: Longest LIKE pattern (SQLite refuses 50k; no value gitml stores is longer than 8k).
MAX_PATTERN = 10_000


class _Cursor:
    """A position in the text being parsed, with helpers that build errors naming it."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self.pos = 0
        if not isinstance(text, str):
            raise InvalidFilter(f"Invalid {label}: expected a string, not {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise self.error(f"character {text[e.start]!r} at column {e.start + 1} is not valid Unicode "
                             "(a lone surrogate, from undecodable bytes)") from None

    def error(self, detail: str) -> InvalidFilter:
        return InvalidFilter(f"Invalid {self.label} {self.text!r}: {detail}")

    def skip_space(self) -> None:
        self.take(_SPACE)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, pattern: re.Pattern[str]) -> str:
        m = pattern.match(self.text, self.pos)
        if m is None:
            return ""
        self.pos = m.end()
        return m.group()

    def piece(self, pos: int | None = None) -> str:
        """The run of non-space text at ``pos``, shortened, for error messages."""
        start = self.pos if pos is None else pos
        m = _NON_SPACE.match(self.text, start)
        text = m.group() if m else ""
        return text if len(text) <= 30 else text[:27] + "..."

    def column(self, pos: int | None = None) -> int:
        return (self.pos if pos is None else pos) + 1

    def quoted(self) -> str:
        """Read a quoted run at the cursor; a doubled quote stands for itself."""
        quote = self.text[self.pos]
        start = self.pos
        i = start + 1
        parts: list[str] = []
        while True:
            j = self.text.find(quote, i)
            if j < 0:
                fragment = self.text[start:]
                if len(fragment) > 30:
                    fragment = fragment[:27] + "..."
                raise self.error(
                    f"unterminated quote {fragment!r} at column {start + 1}: no closing {quote}"
                )
            parts.append(self.text[i:j])
            if self.text.startswith(quote, j + 1):
                parts.append(quote)
                i = j + 2
                continue
            self.pos = j + 1
            return "".join(parts)


def _read_identifier(cur: _Cursor) -> tuple[str, str, str]:
    """Read ``prefix.key`` or a bare attribute name; return (kind, key, source text)."""
    start = cur.pos
    ch = cur.peek()
    if ch in ("`", '"'):
        first = cur.quoted()
    elif ch and _BARE_NAME.match(cur.text, cur.pos):
        first = cur.take(_BARE_NAME)
    elif not ch:
        raise cur.error("expected an identifier such as metrics.<key> at the end")
    else:
        what = "a string" if ch == "'" else repr(cur.piece())
        raise cur.error(
            f"expected an identifier such as metrics.<key> at column {cur.column()}, found {what}"
        )

    if cur.peek() != ".":
        source = cur.text[start : cur.pos]
        key = _ATTRIBUTE_ALIASES.get(first, first)
        if key not in _ATTRIBUTES:
            raise cur.error(
                f"unknown attribute {first!r} in {source!r}; write {_PREFIX_HELP}, "
                f"or one of the attributes {_ATTRIBUTE_HELP}"
            )
        return ATTRIBUTE, key, source

    cur.pos += 1  # the dot
    key = cur.quoted() if cur.peek() and cur.peek() in _QUOTES else cur.take(_BARE_KEY)
    source = cur.text[start : cur.pos]
    kind = _PREFIXES.get(first)
    if kind is None:
        raise cur.error(f"unknown entity type {first!r} in {source!r}; use {_PREFIX_HELP}")
    if not key:
        raise cur.error(f"empty key in {source!r} at column {start + 1}")
    if kind == DATASET and key not in _DATASET_FIELDS:
        raise cur.error(f"unknown dataset field {key!r} in {source!r}; use datasets.name, datasets.digest "
                        "or datasets.context")
    if kind == ATTRIBUTE:
        canonical = _ATTRIBUTE_ALIASES.get(key, key)
        if canonical not in _ATTRIBUTES:
            raise cur.error(
                f"unknown attribute {key!r} in {source!r}; "
                f"searchable attributes are {_ATTRIBUTE_HELP}"
            )
        key = canonical
    return kind, key, source


def _read_operator(cur: _Cursor, ident: str) -> str:
    """Read a comparison operator after ``ident`` and return its canonical spelling."""
    pos = cur.pos
    if cur.at_end():
        raise cur.error(f"{ident!r} has no operator and value after it")
    symbol = cur.take(_SYMBOL_OP)
    if symbol == "==":
        raise cur.error(f"unknown operator '==' after {ident!r} at column {pos + 1}; use '='")
    if symbol == "<>":
        raise cur.error(f"unknown operator '<>' after {ident!r} at column {pos + 1}; use '!='")
    if symbol:
        return symbol
    word = cur.take(_WORD)
    upper = word.upper()
    if upper in ("LIKE", "ILIKE", "IN"):
        return upper
    if upper == "NOT":
        cur.skip_space()
        nxt = cur.take(_WORD)
        if nxt.upper() == "IN":
            return "NOT IN"
        raise cur.error(
            f"unsupported operator {('NOT ' + nxt).strip()!r} after {ident!r} "
            f"at column {pos + 1}; only NOT IN is supported"
        )
    if upper == "IS":
        raise cur.error(
            f"unsupported operator 'IS' after {ident!r} at column {pos + 1}: "
            "MLflow run search has no IS NULL / IS NOT NULL"
        )
    found = cur.piece(pos)
    hint = " (quote keys that contain spaces)" if word else ""
    raise cur.error(
        f"expected a comparison operator after {ident!r} at column {pos + 1}, found {found!r}{hint}"
    )


def _allowed_ops(kind: str, key: str) -> tuple[str, ...]:
    if kind == DATASET:
        return _STRING_OPS + _LIST_OPS
    if kind == METRIC or (kind == ATTRIBUTE and _ATTRIBUTES[key]):
        return _NUMERIC_OPS
    if kind == ATTRIBUTE:
        return _STRING_OPS + _LIST_OPS
    return _STRING_OPS


def _describe(kind: str, key: str) -> str:
    if kind == ATTRIBUTE:
        return f"{'numeric' if _ATTRIBUTES[key] else 'string'} attribute {key!r}"
    return f"{kind} {key!r}"


def _read_string_list(cur: _Cursor, ident: str, op: str) -> tuple[str, ...]:
    """Read ``('a', "b", ...)``: a non-empty, parenthesised list of quoted strings."""
    start = cur.pos
    if cur.peek() != "(":
        raise cur.error(
            f"{ident} {op} needs a parenthesised list of quoted strings at column "
            f"{start + 1}, found {cur.piece() or 'nothing'!r}"
        )
    cur.pos += 1
    items: list[str] = []
    while True:
        cur.skip_space()
        ch = cur.peek()
        if ch == ")" and not items:
            raise cur.error(f"empty list after {ident} {op} at column {start + 1}")
        if ch in ("'", '"'):
            items.append(cur.quoted())
        else:
            found = cur.piece() or "the end"
            raise cur.error(
                f"expected a quoted string in the list after {ident} {op}, found {found!r} "
                f"at column {cur.column()}"
            )
        cur.skip_space()
        ch = cur.peek()
        if ch == ",":
            cur.pos += 1
            continue
        if ch == ")":
            cur.pos += 1
            return tuple(items)
        found = cur.piece() or "the end"
        raise cur.error(
            f"expected ',' or ')' in the list after {ident} {op}, found {found!r} "
            f"at column {cur.column()}"
        )


def _read_value(cur: _Cursor, kind: str, key: str, op: str, ident: str) -> object:
    """Read the right-hand side and convert it to the type the identifier needs."""
    pos = cur.pos
    ch = cur.peek()
    if not ch:
        raise cur.error(f"missing value after {ident} {op}")
    if op in _LIST_OPS:
        return _read_string_list(cur, ident, op)
    if ch == "(":
        raise cur.error(
            f"a parenthesised list at column {pos + 1} only goes with IN / NOT IN, not {ident} {op}"
        )
    numeric = kind == METRIC or (kind == ATTRIBUTE and _ATTRIBUTES[key])
    if ch in ("'", '"'):
        text = cur.quoted()
        if numeric:
            raise cur.error(
                f"{_describe(kind, key)} in {ident!r} must be compared with a number, "
                f"got the string {text!r}"
            )
        return text
    if ch == "`":
        raise cur.error(
            f"backticks quote keys, not values: use single or double quotes at column {pos + 1}"
        )
    text = cur.take(_BARE_VALUE)
    if not text:  # a stray ')' or ','
        raise cur.error(f"unexpected {cur.piece()!r} at column {pos + 1} after {ident} {op}")
    if kind == METRIC:
        if not _NUMBER.fullmatch(text):
            raise cur.error(
                f"{_describe(kind, key)} in {ident!r} must be compared with a number, got {text!r}"
            )
        return float(text)
    if numeric:
        if not _INTEGER.fullmatch(text):
            raise cur.error(
                f"{_describe(kind, key)} in {ident!r} must be compared with an integer "
                f"(milliseconds since the epoch), got {text!r}"
            )
        number = int(text) if len(text) <= 20 else 2**63  # int() refuses thousands of digits
        if not -(2**63) <= number < 2**63:
            raise cur.error(f"{text!r} for {_describe(kind, key)} in {ident!r} is out of range (a 64-bit integer)")
        return number
    raise cur.error(
        f"value {text!r} for {_describe(kind, key)} in {ident!r} must be quoted, e.g. '{text}'"
    )


def _read_comparison(cur: _Cursor) -> Comparison:
    kind, key, ident = _read_identifier(cur)
    cur.skip_space()
    op_pos = cur.pos
    op = _read_operator(cur, ident)
    allowed = _allowed_ops(kind, key)
    if op not in allowed:
        raise cur.error(
            f"operator {op!r} at column {op_pos + 1} cannot be used with {ident!r}; "
            f"a {_describe(kind, key)} takes {', '.join(allowed)}"
        )
    if op in _LIST_OPS and kind != DATASET and key not in _LIST_ATTRIBUTES:
        raise cur.error(
            f"{op} at column {op_pos + 1} works only with attributes.run_id and datasets.*, not {ident!r}"
        )
    cur.skip_space()
    value = _read_value(cur, kind, key, op, ident)
    if "LIKE" in op and isinstance(value, str) and len(value) > MAX_PATTERN:
        raise cur.error(f"the {op} pattern for {ident!r} is {len(value)} characters long; the limit is {MAX_PATTERN}")
    return Comparison(kind, key, op, value)


def parse_filter(filter_string: str | None) -> list[Comparison]:
    """Parse an MLflow search filter into its AND-joined comparisons.

    ``None``, ``""`` and blank strings mean "no filter" and give ``[]``.

    Raises:
        InvalidFilter: the string does not parse; the message quotes the bad part.
    """
    if filter_string is None or not filter_string.strip():
        return []
    cur = _Cursor(filter_string, "filter")
    comparisons: list[Comparison] = []
    and_pos: int | None = None
    while True:
        cur.skip_space()
        if cur.at_end():
            raise cur.error(f"dangling 'AND' at column {and_pos + 1}: no comparison follows it")
        word_pos = cur.pos
        word = _BARE_NAME.match(cur.text, cur.pos)
        if word and word.group().upper() in ("AND", "OR"):
            where = "at the start" if not comparisons else "right after another 'AND'"
            raise cur.error(
                f"{word.group()!r} at column {word_pos + 1} {where}: a comparison must come first"
            )
        start = cur.pos
        comparisons.append(_read_comparison(cur))
        last = cur.text[start : cur.pos]
        cur.skip_space()
        if cur.at_end():
            return comparisons
        and_pos = cur.pos
        word_text = cur.take(_BARE_NAME)
        if word_text.upper() == "AND":
            continue
        if word_text.upper() == "OR":
            raise cur.error(
                f"'OR' at column {and_pos + 1} is not supported: MLflow search filters "
                "join comparisons with AND only (run one search per alternative)"
            )
        raise cur.error(
            f"unexpected {cur.piece(and_pos)!r} at column {and_pos + 1} after {last!r}; "
            "join comparisons with AND"
        )


def parse_order_by(order_by: Sequence[str] | None) -> list[OrderKey]:
    """Parse MLflow ``order_by`` clauses such as ``"metrics.rmse DESC"``.

    Each clause is an identifier (the filter grammar's) and an optional ``ASC``
    or ``DESC`` (any case, default ascending). A field may appear only once.

    Raises:
        InvalidFilter: a clause does not parse or repeats a field; the message
            quotes the bad clause and part.
    """
    if not order_by:
        return []
    if isinstance(order_by, str):
        raise InvalidFilter(
            f"Invalid order_by {order_by!r}: pass a list of clauses, e.g. [{order_by!r}]"
        )
    keys: list[OrderKey] = []
    seen: dict[tuple[str, str], str] = {}
    for clause in order_by:
        if not isinstance(clause, str):
            raise InvalidFilter(f"Invalid order_by clause {clause!r}: expected a string")
        cur = _Cursor(clause, "order_by clause")
        cur.skip_space()
        if cur.at_end():
            raise cur.error("empty clause; expected an identifier such as metrics.<key>")
        kind, key, ident = _read_identifier(cur)
        if kind == DATASET:
            raise cur.error(f"{ident!r}: runs cannot be ordered by dataset fields (as in MLflow)")
        cur.skip_space()
        ascending = True
        if not cur.at_end():
            dir_pos = cur.pos
            direction = cur.piece()
            if direction.upper() not in ("ASC", "DESC"):
                raise cur.error(
                    f"bad sort direction {direction!r} after {ident!r} at column "
                    f"{dir_pos + 1}; use ASC or DESC"
                )
            ascending = direction.upper() == "ASC"
            cur.pos += len(direction)
            cur.skip_space()
            if not cur.at_end():
                raise cur.error(
                    f"unexpected {cur.piece()!r} at column {cur.column()} after "
                    f"{ident!r} {direction}"
                )
        if (kind, key) in seen:
            raise cur.error(
                f"{ident!r} orders on the same field as the earlier clause "
                f"{seen[(kind, key)]!r}; order_by may name each field once"
            )
        seen[(kind, key)] = clause
        keys.append(OrderKey(kind, key, ascending))
    return keys


# --------------------------------------------------------------------------- SQL


def _glob_pattern(like_pattern: str) -> str:
    """Translate a LIKE pattern to a GLOB one (GLOB is case-sensitive in SQLite)."""
    out = []
    for ch in like_pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _value_condition(column: str, op: str, value: object) -> tuple[str, list[Any]]:
    """SQL for ``column <op> value`` with LIKE/ILIKE/IN mapped to SQLite forms."""
    if op == "LIKE":
        return f"{column} GLOB ?", [_glob_pattern(str(value))]
    if op == "ILIKE":
        return f"lower({column}) GLOB ?", [_glob_pattern(str(value).translate(_ASCII_LOWER))]
    if op in _LIST_OPS:
        items = list(value) if isinstance(value, tuple) else [value]
        return f"{column} {op} ({_placeholders(len(items))})", items
    return f"{column} {op} ?", [value]


def _comparison_sql(c: Comparison) -> tuple[str, list[Any]]:
    if c.kind == ATTRIBUTE:
        # Attribute names are whitelisted in _ATTRIBUTES, so the column is safe to inline.
        return _value_condition(f"r.{c.key}", c.op, c.value)
    if c.kind == DATASET:
        cond, params = _value_condition(_DATASET_FIELDS[c.key], c.op, c.value)
        return f"r.run_id IN (SELECT run_id FROM datasets WHERE {cond})", params
    table = _TABLES[c.kind]
    cond, params = _value_condition("value", c.op, c.value)
    if c.kind == METRIC and c.op == "!=":
        # NaN is stored as NULL; NaN != x holds, as in IEEE 754 and MLflow's matcher.
        cond = f"({cond} OR is_nan = 1)"
    sql = f"r.run_id IN (SELECT run_id FROM {table} WHERE key = ? AND {cond})"
    return sql, [c.key, *params]


def compile_search(
    filter_string: str | None,
    order_by: Sequence[str] | None,
    *,
    experiment_ids: Sequence[str] | None,
    lifecycle_stages: Sequence[str],
) -> tuple[str, list[Any]]:
    """Compile a search into one SQL query over the run index.

    Returns ``(sql, params)``: a ``SELECT`` of ``run_id`` in result order, with
    ``?`` placeholders bound by ``params``. The query ends with its ``ORDER BY``
    so a caller can append ``LIMIT ? OFFSET ?``. ``experiment_ids=None`` means
    every experiment; ``lifecycle_stages`` lists the stages to keep (e.g.
    ``["active"]``); an empty list for either matches no run.

    Raises:
        InvalidFilter: the filter or an order_by clause does not parse.
    """
    comparisons = parse_filter(filter_string)
    order_keys = parse_order_by(order_by)

    joins: list[str] = []
    join_params: list[Any] = []
    order_terms: list[str] = []
    for i, key in enumerate(order_keys):
        direction = "" if key.ascending else " DESC"
        if key.kind == ATTRIBUTE:
            column = f"r.{key.key}"
            order_terms += [f"({column} IS NULL)", f"{column}{direction}"]
            continue
        alias = f"o{i}"
        joins.append(
            f"LEFT JOIN {_TABLES[key.kind]} AS {alias} "
            f"ON {alias}.run_id = r.run_id AND {alias}.key = ?"
        )
        join_params.append(key.key)
        if key.kind == METRIC:
            # Real values, then NaN (stored as NULL), then runs without the metric.
            order_terms.append(
                f"(CASE WHEN {alias}.run_id IS NULL THEN 2 "
                f"WHEN {alias}.value IS NULL THEN 1 ELSE 0 END)"
            )
        else:
            order_terms.append(f"({alias}.value IS NULL)")
        order_terms.append(f"{alias}.value{direction}")
    if not any(k.kind == ATTRIBUTE and k.key == "start_time" for k in order_keys):
        order_terms += ["(r.start_time IS NULL)", "r.start_time DESC"]
    order_terms.append("r.run_id")

    where: list[str] = []
    where_params: list[Any] = []
    if experiment_ids is not None:
        ids = [str(e) for e in experiment_ids]
        where.append(f"r.experiment_id IN ({_placeholders(len(ids))})" if ids else "0")
        where_params += ids
    stages = list(lifecycle_stages)
    where.append(f"r.lifecycle_stage IN ({_placeholders(len(stages))})" if stages else "0")
    where_params += stages
    for c in comparisons:
        sql, params = _comparison_sql(c)
        where.append(sql)
        where_params += params

    parts = ["SELECT r.run_id FROM runs AS r", *joins, "WHERE " + " AND ".join(where)]
    parts.append("ORDER BY " + ", ".join(order_terms))
    return "\n".join(parts), join_params + where_params


# --------------------------------------------------------------------------- Python


def _like(value: str, pattern: str) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _match_dataset(c: Comparison, run: Mapping[str, Any]) -> bool:
    """Some dataset of the run (``run["datasets"]``: {name, digest, context}) satisfies ``c``."""
    for dataset in run.get("datasets") or ():
        value = dataset.get(c.key)
        if value is not None and _compare(str(value), c.op, c.value):
            return True
    return False


def _lookup(run: Mapping[str, Any], kind: str, key: str) -> Any:
    section = {METRIC: "metrics", PARAM: "params", TAG: "tags", ATTRIBUTE: "info"}[kind]
    return (run.get(section) or {}).get(key)


def _compare(lhs: Any, op: str, rhs: Any) -> bool:
    if op == "=":
        return lhs == rhs
    if op == "!=":
        return lhs != rhs
    if op == "<":
        return lhs < rhs
    if op == "<=":
        return lhs <= rhs
    if op == ">":
        return lhs > rhs
    if op == ">=":
        return lhs >= rhs
    if op == "LIKE":
        return _like(lhs, rhs)
    if op == "ILIKE":
        return _like(lhs.translate(_ASCII_LOWER), rhs.translate(_ASCII_LOWER))
    if op == "IN":
        return lhs in rhs
    if op == "NOT IN":
        return lhs not in rhs
    raise ValueError(f"unknown operator {op!r}")  # parse_filter never produces one


def match_run(comparisons: Iterable[Comparison], run: Mapping[str, Any]) -> bool:
    """Tell whether a run satisfies every comparison, with the SQL's semantics.

    ``run`` is ``{"info": {attr: value}, "params": {...}, "tags": {...},
    "metrics": {key: float}, "datasets": [{"name", "digest", "context"}]}``;
    missing sections count as empty.
    """
    for c in comparisons:
        if c.kind == DATASET:
            if not _match_dataset(c, run):
                return False
            continue
        lhs = _lookup(run, c.kind, c.key)
        if lhs is None:
            return False
        if c.kind == METRIC:
            lhs = float(lhs)
            if math.isnan(lhs):
                if c.op != "!=":
                    return False
                continue
        elif c.kind in (PARAM, TAG) or not _ATTRIBUTES[c.key]:
            lhs = str(lhs)
        if not _compare(lhs, c.op, c.value):
            return False
    return True


def _sort_pass(runs: list[Mapping[str, Any]], key: OrderKey) -> list[Mapping[str, Any]]:
    """Stable sort on one key: values, then NaN metrics, then runs lacking the key."""
    present: list[tuple[Any, Mapping[str, Any]]] = []
    nan: list[Mapping[str, Any]] = []
    missing: list[Mapping[str, Any]] = []
    for run in runs:
        value = _lookup(run, key.kind, key.key)
        if value is None:
            missing.append(run)
        elif key.kind == METRIC and math.isnan(float(value)):
            nan.append(run)
        else:
            present.append((value, run))
    # sorted() keeps equal items in input order even with reverse=True.
    present.sort(key=lambda pair: pair[0], reverse=not key.ascending)
    return [run for _, run in present] + nan + missing


def sort_runs(
    runs: Iterable[Mapping[str, Any]], order_keys: Sequence[OrderKey]
) -> list[Mapping[str, Any]]:
    """Order runs as ``compile_search`` does, for runs held in memory.

    Keys apply in turn; ties fall back to ``start_time`` descending (unless a
    key already orders on it) and then ``run_id`` ascending.
    """
    keys = list(order_keys)
    if not any(k.kind == ATTRIBUTE and k.key == "start_time" for k in keys):
        keys.append(OrderKey(ATTRIBUTE, "start_time", False))
    ordered = sorted(runs, key=lambda run: str(_lookup(run, ATTRIBUTE, "run_id")))
    for key in reversed(keys):
        ordered = _sort_pass(ordered, key)
    return ordered


# --------------------------------------------------------------------------- experiments

#: Experiment attribute -> is it numeric (MLflow's ``SearchExperimentsUtils``).
_EXPERIMENT_ATTRIBUTES: dict[str, bool] = {
    "name": False,
    "experiment_id": False,
    "creation_time": True,
    "last_update_time": True,
}
_EXPERIMENT_PREFIXES = {"attribute": ATTRIBUTE, "attributes": ATTRIBUTE, "tag": TAG, "tags": TAG}
_EXPERIMENT_HELP = "name, experiment_id, creation_time, last_update_time or tags.<key>"


def _read_experiment_identifier(cur: _Cursor, label: str) -> tuple[str, str, str]:
    start = cur.pos
    ch = cur.peek()
    if ch in ("`", '"'):
        first = cur.quoted()
    else:
        first = cur.take(_BARE_NAME)
    if not first:
        raise cur.error(f"expected {label} such as name or tags.<key> at column {cur.column()}, "
                        f"found {cur.piece() or 'nothing'!r}")
    if cur.peek() == ".":
        cur.pos += 1
        key = cur.quoted() if cur.peek() and cur.peek() in _QUOTES else cur.take(_BARE_KEY)
        kind = _EXPERIMENT_PREFIXES.get(first)
        source = cur.text[start : cur.pos]
        if kind is None:
            raise cur.error(f"unknown entity type {first!r} in {source!r}; use {_EXPERIMENT_HELP}")
        if not key:
            raise cur.error(f"empty key in {source!r} at column {start + 1}")
    else:
        kind, key, source = ATTRIBUTE, first, cur.text[start : cur.pos]
    if kind == ATTRIBUTE and key not in _EXPERIMENT_ATTRIBUTES:
        raise cur.error(f"unknown experiment attribute {key!r} in {source!r}; use {_EXPERIMENT_HELP}")
    return kind, key, source


def parse_experiment_filter(filter_string: str | None) -> list[Comparison]:
    """Parse an MLflow ``search_experiments`` filter: comparisons on name, experiment_id,
    creation_time, last_update_time and tags, joined by AND.

    Tags take ``=``, ``!=``, ``LIKE``, ``ILIKE``, ``IS NULL`` and ``IS NOT NULL``;
    ``experiment_id`` also ``IN``/``NOT IN``; the times the numeric comparisons.

    Raises:
        InvalidFilter: the string does not parse; the message quotes the bad part.
    """
    if filter_string is None or not filter_string.strip():
        return []
    cur = _Cursor(filter_string, "experiment filter")
    out: list[Comparison] = []
    while True:
        cur.skip_space()
        kind, key, ident = _read_experiment_identifier(cur, "an identifier")
        cur.skip_space()
        op_pos = cur.pos
        word = cur.take(_WORD) if cur.peek().isalpha() else ""
        if word.upper() == "IS":
            cur.skip_space()
            rest = cur.take(_WORD).upper()
            if rest == "NOT":
                cur.skip_space()
                rest = "NOT " + cur.take(_WORD).upper()
            if rest not in ("NULL", "NOT NULL") or kind != TAG:
                raise cur.error(f"IS NULL / IS NOT NULL at column {op_pos + 1} works only with tags.<key>")
            out.append(Comparison(TAG, key, "IS " + rest, None))
        else:
            cur.pos = op_pos
            op = _read_operator(cur, ident)
            numeric = kind == ATTRIBUTE and _EXPERIMENT_ATTRIBUTES[key]
            allowed = _NUMERIC_OPS if numeric else _STRING_OPS + (_LIST_OPS if key == "experiment_id" and
                                                                 kind == ATTRIBUTE else ())
            if op not in allowed:
                raise cur.error(f"operator {op!r} at column {op_pos + 1} cannot be used with {ident!r}; "
                                f"it takes {', '.join(allowed)}")
            cur.skip_space()
            if op in _LIST_OPS:
                value: object = _read_string_list(cur, ident, op)
            elif numeric:
                text = cur.take(_BARE_VALUE)
                if not _INTEGER.fullmatch(text or "") or len(text) > 20:
                    raise cur.error(f"{ident!r} must be compared with milliseconds (an integer), got "
                                    f"{text or cur.piece() or 'nothing'!r}")
                value = int(text)
            elif cur.peek() in ("'", '"'):
                value = cur.quoted()
            else:
                raise cur.error(f"the value for {ident!r} at column {cur.column()} must be a quoted string, "
                                f"found {cur.piece() or 'nothing'!r}")
            out.append(Comparison(kind, key, op, value))
        cur.skip_space()
        if cur.at_end():
            return out
        and_pos = cur.pos
        if cur.take(_BARE_NAME).upper() != "AND":
            raise cur.error(f"unexpected {cur.piece(and_pos)!r} at column {and_pos + 1}; join comparisons with AND")
        cur.skip_space()
        if cur.at_end():
            raise cur.error(f"dangling 'AND' at column {and_pos + 1}: no comparison follows it")


def match_experiment(comparisons: Iterable[Comparison], experiment: Mapping[str, Any]) -> bool:
    """Tell whether an experiment (``{"name", "experiment_id", "creation_time",
    "last_update_time", "tags": {...}}``) satisfies every comparison."""
    for c in comparisons:
        if c.kind == TAG:
            tags = experiment.get("tags") or {}
            if c.op in ("IS NULL", "IS NOT NULL"):
                if (c.key in tags) != (c.op == "IS NOT NULL"):
                    return False
                continue
            lhs = tags.get(c.key)
        else:
            lhs = experiment.get(c.key)
        if lhs is None:
            return False
        if not (c.kind == ATTRIBUTE and _EXPERIMENT_ATTRIBUTES[c.key]):
            lhs = str(lhs)
        if not _compare(lhs, c.op, c.value):
            return False
    return True


def parse_experiment_order_by(order_by: Sequence[str] | None) -> list[OrderKey]:
    """Parse ``search_experiments`` ``order_by`` clauses (name, experiment_id, creation_time,
    last_update_time; ASC or DESC). The default is MLflow's: creation time, newest first, then id.

    Raises:
        InvalidFilter: a clause does not parse.
    """
    if not order_by:
        return [OrderKey(ATTRIBUTE, "creation_time", False), OrderKey(ATTRIBUTE, "experiment_id", True)]
    if isinstance(order_by, str):
        raise InvalidFilter(f"Invalid order_by {order_by!r}: pass a list of clauses, e.g. [{order_by!r}]")
    keys = []
    for clause in order_by:
        if not isinstance(clause, str):
            raise InvalidFilter(f"Invalid order_by clause {clause!r}: expected a string")
        cur = _Cursor(clause, "order_by clause")
        cur.skip_space()
        kind, key, ident = _read_experiment_identifier(cur, "an attribute")
        if kind != ATTRIBUTE:
            raise cur.error(f"experiments can be ordered by {', '.join(_EXPERIMENT_ATTRIBUTES)} only, not {ident!r}")
        cur.skip_space()
        direction = cur.take(_WORD).upper() or "ASC"
        cur.skip_space()
        if direction not in ("ASC", "DESC") or not cur.at_end():
            raise cur.error(f"bad sort direction after {ident!r}; use ASC or DESC")
        keys.append(OrderKey(ATTRIBUTE, key, direction == "ASC"))
    if not any(k.key == "experiment_id" for k in keys):
        keys.append(OrderKey(ATTRIBUTE, "experiment_id", False))  # MLflow's tie-breaker
    return keys


def sort_experiments(experiments: Iterable[Mapping[str, Any]], order_keys: Sequence[OrderKey]) -> list[Mapping[str, Any]]:
    """Order experiments by ``order_keys`` (ids compare as numbers; a missing time sorts last)."""
    ordered = list(experiments)
    for key in reversed(order_keys):
        def value(e: Mapping[str, Any], name: str = key.key) -> Any:
            v = e.get(name)
            return int(v) if name == "experiment_id" else v
        present = [e for e in ordered if value(e) is not None]
        missing = [e for e in ordered if value(e) is None]
        present.sort(key=value, reverse=not key.ascending)
        ordered = present + missing
    return ordered
