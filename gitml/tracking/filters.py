"""MLflow's search grammar: filter and order_by strings, parsed once, matched in memory.

One hand-written parser serves every search, each with its own field table (what the
caller can compare and order on):

- ``RUNS``: ``metrics.<key>``, ``params.<key>``, ``tags.<key>``, ``attributes.<name>`` and
  ``datasets.<name|digest|context>``, plus MLflow's aliases for the prefixes and a few
  attributes (``search_runs``; ``gitml.tracking.search`` compiles these to SQL);
- ``EXPERIMENTS``: ``name``, ``experiment_id``, the two times and ``tags.<key>`` (with
  ``IS [NOT] NULL``);
- ``REGISTERED_MODELS``: ``name`` and ``tags.<key>``;
- ``MODEL_VERSIONS``: ``name``, ``run_id``, ``source_path``, ``version_number`` (alias
  ``version``), ``tags.<key>``, and gitml's ``semver``, ``stage`` and ``source``.

A filter is comparisons joined by ``AND``, each ``<identifier> <operator> <value>``.
``parse_filter`` and ``parse_order_by`` give ``Comparison`` and ``OrderKey`` values, or an
``InvalidFilter`` that quotes the string and names the column of the bad part.

Semantics shared by every matcher here and by the SQL:

- A comparison on a field the object lacks is false, whatever the operator (``!=``
  included), as in MLflow.
- A NaN metric fails every numeric comparison except ``!=`` (IEEE 754, and MLflow's
  in-memory matcher).
- ``LIKE`` is case-sensitive; ``ILIKE`` folds ASCII letters only, as SQLite's ``lower()``
  does in MLflow's default (sqlite) store: ``ILIKE 'A%'`` matches ``'abc'``, ``ILIKE 'É%'``
  does not match ``'été'``. ``%`` and ``_`` are the only wildcards; there is no escape
  character. A field marked ``fold`` (a version's stage) folds ASCII case for every operator.
- A dataset comparison holds when any dataset the run used satisfies it; a field holding
  several values (a version's stages) matches when any does, and ``!=``/``NOT IN`` when all do.
- Ordering puts objects lacking the key last in either direction.

Only the standard library is imported here: ``import gitml`` must stay fast.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gitml.errors import InvalidFilter

__all__ = [
    "ATTRIBUTE",
    "DATASET",
    "EXPERIMENTS",
    "METRIC",
    "MODEL_VERSIONS",
    "PARAM",
    "REGISTERED_MODELS",
    "RUNS",
    "TAG",
    "Comparison",
    "Field",
    "FieldTable",
    "OrderKey",
    "ascii_lower",
    "ilike",
    "like",
    "match_experiment",
    "match_record",
    "match_run",
    "parse_experiment_filter",
    "parse_experiment_order_by",
    "parse_filter",
    "parse_order_by",
    "sort_experiments",
    "sort_records",
    "sort_runs",
]

METRIC = "metric"
PARAM = "param"
TAG = "tag"
ATTRIBUTE = "attribute"
DATASET = "dataset"

STRING = "string"
NUMBER = "number"  # a float (metrics)
INTEGER = "integer"  # a 64-bit integer (times, version numbers)

NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
LIST_OPS = ("IN", "NOT IN")
NULL_OPS = ("IS NULL", "IS NOT NULL")

#: Longest LIKE pattern (SQLite refuses 50k; no value gitml stores is longer than 8k).
MAX_PATTERN = 10_000


@dataclass(frozen=True)
class Comparison:
    """One ``<identifier> <op> <value>`` term of a filter.

    ``value`` is a float for metrics, an int for integer fields (times, version
    numbers), a str for string fields, a tuple of str for ``IN``/``NOT IN`` and
    None for ``IS NULL``/``IS NOT NULL``.
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


@dataclass(frozen=True)
class Field:
    """A searchable field: the type of its values and the operators it takes."""

    type: str = STRING
    lists: bool = False  # also IN / NOT IN
    nulls: bool = False  # also IS NULL / IS NOT NULL
    fold: bool = False  # compares ASCII case-insensitively whatever the operator
    unit: str = ""  # what an integer counts, for error messages

    @property
    def numeric(self) -> bool:
        return self.type != STRING

    @property
    def ops(self) -> tuple[str, ...]:
        if self.numeric:
            return NUMERIC_OPS
        return STRING_OPS + (LIST_OPS if self.lists else ()) + (NULL_OPS if self.nulls else ())


@dataclass(frozen=True)
class FieldTable:
    """What one kind of search can filter and order on, and how its errors name things."""

    entity: str  # "run", "experiment"... as in "MLflow run search"
    label: str  # "filter", "experiment filter"... as in "Invalid filter '...'"
    prefixes: Mapping[str, str]  # entity-type spelling (case-sensitive) -> kind
    attributes: Mapping[str, Field]  # attribute name -> field; bare names are attributes
    keyed: Mapping[str, Field] = field(default_factory=dict)  # kind -> field, for kinds whose keys are free
    subfields: Mapping[str, Mapping[str, Field]] = field(default_factory=dict)  # kind -> its fixed keys
    aliases: Mapping[str, str] = field(default_factory=dict)  # other spellings of attribute names
    order_kinds: frozenset[str] = frozenset({ATTRIBUTE})
    order_attributes: Mapping[str, str] | None = None  # spelling -> attribute; None: the filter's
    default_order: tuple[OrderKey, ...] = ()  # when order_by is empty
    tie_breakers: tuple[OrderKey, ...] = ()  # appended unless their attribute is ordered on already
    unique_order: bool = True  # order_by may name a field once (MLflow's experiment search lets it repeat)
    quoted_numbers: bool = False  # integer fields also take '3' (MLflow's registry stores)
    example: str = "name or tags.<key>"  # for "expected an identifier such as ..."
    help: str = ""  # the identifiers, for error messages
    attribute_help: str = ""  # the attributes, when ``help`` does not list them
    list_help: str = ""  # the fields that take IN / NOT IN

    def attribute(self, name: str, *, order: bool = False) -> str | None:
        """The attribute ``name`` spells (None if unknown), in a filter or an order_by clause."""
        if order and self.order_attributes is not None:
            return self.order_attributes.get(name)
        name = self.aliases.get(name, name)
        return name if name in self.attributes else None

    def field_of(self, kind: str, key: str) -> Field:
        """The field of a parsed identifier (``kind``, ``key`` as ``parse_filter`` gives them)."""
        if kind == ATTRIBUTE:
            return self.attributes[key]
        if kind in self.subfields:
            return self.subfields[kind][key]
        return self.keyed[kind]


# --------------------------------------------------------------------------- field tables

_MS = "milliseconds since the epoch"

RUNS = FieldTable(
    entity="run",
    label="filter",
    prefixes={
        "metric": METRIC, "metrics": METRIC,
        "param": PARAM, "params": PARAM, "parameter": PARAM, "parameters": PARAM,
        "tag": TAG, "tags": TAG,
        "attribute": ATTRIBUTE, "attributes": ATTRIBUTE, "attr": ATTRIBUTE, "run": ATTRIBUTE,
        "dataset": DATASET, "datasets": DATASET,
    },
    # Attribute names double as column names of the index's runs table.
    attributes={
        "run_id": Field(lists=True),
        "run_name": Field(),
        "status": Field(),
        "user_id": Field(),
        "artifact_uri": Field(),
        "start_time": Field(INTEGER, unit=_MS),
        "end_time": Field(INTEGER, unit=_MS),
    },
    keyed={METRIC: Field(NUMBER), PARAM: Field(), TAG: Field()},
    # Dataset field -> column of the index's datasets table (the same names).
    subfields={DATASET: {"name": Field(lists=True), "digest": Field(lists=True), "context": Field(lists=True)}},
    aliases={"created": "start_time", "Created": "start_time",
             "run name": "run_name", "Run name": "run_name", "Run Name": "run_name"},
    order_kinds=frozenset({METRIC, PARAM, TAG, ATTRIBUTE}),
    example="metrics.<key>",
    help="metrics.<key>, params.<key>, tags.<key>, attributes.<key> or datasets.<name|digest|context>",
    attribute_help="run_id, run_name, status, user_id, artifact_uri, start_time, end_time; "
                   "aliases created and `run name`",
    list_help="attributes.run_id and datasets.*",
)

#: MLflow's ``SearchExperimentsUtils``.
EXPERIMENTS = FieldTable(
    entity="experiment",
    label="experiment filter",
    prefixes={"attribute": ATTRIBUTE, "attributes": ATTRIBUTE, "tag": TAG, "tags": TAG},
    attributes={
        "name": Field(),
        "experiment_id": Field(lists=True),
        "creation_time": Field(INTEGER, unit=_MS),
        "last_update_time": Field(INTEGER, unit=_MS),
    },
    keyed={TAG: Field(nulls=True)},
    default_order=(OrderKey(ATTRIBUTE, "creation_time", False), OrderKey(ATTRIBUTE, "experiment_id", True)),
    tie_breakers=(OrderKey(ATTRIBUTE, "experiment_id", False),),
    unique_order=False,
    help="name, experiment_id, creation_time, last_update_time or tags.<key>",
    list_help="experiment_id",
)

_REGISTRY_PREFIXES = {"attribute": ATTRIBUTE, "attributes": ATTRIBUTE, "tag": TAG, "tags": TAG}
_REGISTRY_TIMES = {"creation_timestamp": "creation_timestamp", "last_updated_timestamp": "last_updated_timestamp"}

#: MLflow's ``SearchModelUtils``.
REGISTERED_MODELS = FieldTable(
    entity="registered model",
    label="registered model filter",
    prefixes=_REGISTRY_PREFIXES,
    attributes={"name": Field()},
    keyed={TAG: Field()},
    order_attributes={"name": "name", "timestamp": "last_updated_timestamp", **_REGISTRY_TIMES},
    tie_breakers=(OrderKey(ATTRIBUTE, "name", True),),
    quoted_numbers=True,
    help="name or tags.<key>",
)

#: MLflow's ``SearchModelVersionUtils``, plus gitml's ``semver``, ``stage`` and ``source``.
MODEL_VERSIONS = FieldTable(
    entity="model version",
    label="model version filter",
    prefixes=_REGISTRY_PREFIXES,
    attributes={
        "name": Field(lists=True),
        "run_id": Field(lists=True),
        "source_path": Field(),
        "version_number": Field(INTEGER),
        "semver": Field(lists=True),
        "stage": Field(lists=True, fold=True),  # GTO stages match case-insensitively
        "source": Field(lists=True),
    },
    keyed={TAG: Field()},
    aliases={"version": "version_number"},
    order_attributes={"name": "name", "version_number": "version_number", **_REGISTRY_TIMES},
    default_order=(OrderKey(ATTRIBUTE, "last_updated_timestamp", False), OrderKey(ATTRIBUTE, "name", True),
                   OrderKey(ATTRIBUTE, "version_number", False)),
    tie_breakers=(OrderKey(ATTRIBUTE, "name", True), OrderKey(ATTRIBUTE, "version_number", False)),
    quoted_numbers=True,
    help="name, run_id, source_path, version_number (or version), semver, stage, source or tags.<key>",
    list_help="name, run_id, semver, stage and source",
)


# --------------------------------------------------------------------------- matching text

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``text`` with ASCII letters lower-cased and every other character kept (SQLite's ``lower()``)."""
    return text.translate(_ASCII_LOWER)


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern),
                      re.DOTALL)


def like(value: str, pattern: str) -> bool:
    """SQL ``LIKE``, case-sensitive: ``%`` any run of characters, ``_`` one; no escape character."""
    return _like_regex(pattern).fullmatch(value) is not None


def ilike(value: str, pattern: str) -> bool:
    """``ILIKE``: ``like`` with ASCII letters folded on both sides (and nothing else, as SQLite)."""
    return like(ascii_lower(value), ascii_lower(pattern))


# --------------------------------------------------------------------------- parsing

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


def _or_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _read_identifier(cur: _Cursor, fields: FieldTable, *, order: bool = False) -> tuple[str, str, str]:
    """Read ``prefix.key`` or a bare attribute name; return (kind, key, source text)."""
    start = cur.pos
    ch = cur.peek()
    if ch in ("`", '"'):
        first = cur.quoted()
    elif ch and _BARE_NAME.match(cur.text, cur.pos):
        first = cur.take(_BARE_NAME)
    elif not ch:
        raise cur.error(f"expected an identifier such as {fields.example} at the end")
    else:
        what = "a string" if ch == "'" else repr(cur.piece())
        raise cur.error(
            f"expected an identifier such as {fields.example} at column {cur.column()}, found {what}"
        )

    if cur.peek() != ".":
        source = cur.text[start : cur.pos]
        key = fields.attribute(first, order=order)
        if key is None and order and fields.order_attributes is not None:
            raise cur.error(f"unknown attribute {first!r} in {source!r}; {fields.entity}s can be ordered by "
                            + ", ".join(fields.order_attributes))
        if key is None:
            also = f", or one of the attributes {fields.attribute_help}" if fields.attribute_help else ""
            raise cur.error(f"unknown attribute {first!r} in {source!r}; write {fields.help}{also}")
        return ATTRIBUTE, key, source

    cur.pos += 1  # the dot
    key = cur.quoted() if cur.peek() and cur.peek() in _QUOTES else cur.take(_BARE_KEY)
    source = cur.text[start : cur.pos]
    kind = fields.prefixes.get(first)
    if kind is None:
        raise cur.error(f"unknown entity type {first!r} in {source!r}; use {fields.help}")
    if not key:
        raise cur.error(f"empty key in {source!r} at column {start + 1}")
    if kind in fields.subfields and key not in fields.subfields[kind]:
        raise cur.error(f"unknown {kind} field {key!r} in {source!r}; use "
                        + _or_list([f"{kind}s.{k}" for k in fields.subfields[kind]]))
    if kind == ATTRIBUTE:
        canonical = fields.attribute(key, order=order)
        if canonical is None:
            raise cur.error(
                f"unknown attribute {key!r} in {source!r}; "
                f"searchable attributes are {_attribute_help(fields, order)}"
            )
        key = canonical
    return kind, key, source


def _attribute_help(fields: FieldTable, order: bool) -> str:
    if order and fields.order_attributes is not None:
        return ", ".join(fields.order_attributes)
    return fields.attribute_help or ", ".join([*fields.attributes, *fields.aliases])


def _read_operator(cur: _Cursor, ident: str, fields: FieldTable) -> str:
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
        if not any(f.nulls for f in fields.keyed.values()):
            raise cur.error(
                f"unsupported operator 'IS' after {ident!r} at column {pos + 1}: "
                f"MLflow {fields.entity} search has no IS NULL / IS NOT NULL"
            )
        cur.skip_space()
        rest = cur.take(_WORD).upper()
        if rest == "NOT":
            cur.skip_space()
            rest = "NOT " + cur.take(_WORD).upper()
        if rest not in ("NULL", "NOT NULL"):
            raise cur.error(f"expected NULL or NOT NULL after 'IS' at column {pos + 1}")
        return "IS " + rest
    found = cur.piece(pos)
    hint = " (quote keys that contain spaces)" if word else ""
    raise cur.error(
        f"expected a comparison operator after {ident!r} at column {pos + 1}, found {found!r}{hint}"
    )


def _describe(kind: str, key: str, f: Field) -> str:
    if kind == ATTRIBUTE:
        return f"{'numeric' if f.numeric else 'string'} attribute {key!r}"
    return f"{kind} {key!r}"


def _read_string_list(cur: _Cursor, ident: str, op: str) -> tuple[str, ...]:
    """Read ``('a', "b", ...)``: a non-empty, parenthesised list of quoted strings (a trailing comma allowed)."""
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
            cur.skip_space()
            if cur.peek() == ")":  # ('a',): a trailing comma, as MLflow (sqlparse) takes it
                cur.pos += 1
                return tuple(items)
            continue
        if ch == ")":
            cur.pos += 1
            return tuple(items)
        found = cur.piece() or "the end"
        raise cur.error(
            f"expected ',' or ')' in the list after {ident} {op}, found {found!r} "
            f"at column {cur.column()}"
        )


def _integer(cur: _Cursor, text: str, subject: str, f: Field) -> int:
    if not _INTEGER.fullmatch(text):
        unit = f" ({f.unit})" if f.unit else ""
        raise cur.error(f"{subject} must be compared with an integer{unit}, got {text!r}")
    number = int(text) if len(text) <= 20 else 2**63  # int() refuses thousands of digits
    if not -(2**63) <= number < 2**63:
        raise cur.error(f"{text!r} for {subject} is out of range (a 64-bit integer)")
    return number


def _read_value(cur: _Cursor, kind: str, key: str, f: Field, op: str, ident: str, fields: FieldTable) -> object:
    """Read the right-hand side and convert it to the type the field holds."""
    if op in NULL_OPS:
        return None
    pos = cur.pos
    ch = cur.peek()
    if not ch:
        raise cur.error(f"missing value after {ident} {op}")
    if op in LIST_OPS:
        return _read_string_list(cur, ident, op)
    if ch == "(":
        raise cur.error(
            f"a parenthesised list at column {pos + 1} only goes with IN / NOT IN, not {ident} {op}"
        )
    what = _describe(kind, key, f)
    subject = what if ident == key else f"{what} in {ident!r}"  # "metric 'x' in 'metrics.x'"
    if ch in ("'", '"'):
        text = cur.quoted()
        if f.type == INTEGER and fields.quoted_numbers:
            return _integer(cur, text.strip(), subject, f)
        if f.type == INTEGER:
            unit = f" ({f.unit})" if f.unit else ""
            raise cur.error(f"{subject} must be compared with an integer{unit}, got the string {text!r}")
        if f.numeric:
            raise cur.error(f"{subject} must be compared with a number, got the string {text!r}")
        return text
    if ch == "`":
        raise cur.error(
            f"backticks quote keys, not values: use single or double quotes at column {pos + 1}"
        )
    text = cur.take(_BARE_VALUE)
    if not text:  # a stray ')' or ','
        raise cur.error(f"unexpected {cur.piece()!r} at column {pos + 1} after {ident} {op}")
    if f.type == NUMBER:
        if not _NUMBER.fullmatch(text):
            raise cur.error(f"{subject} must be compared with a number, got {text!r}")
        return float(text)
    if f.type == INTEGER:
        return _integer(cur, text, subject, f)
    raise cur.error(f"value {text!r} for {subject} must be quoted, e.g. '{text}'")


def _read_comparison(cur: _Cursor, fields: FieldTable) -> Comparison:
    kind, key, ident = _read_identifier(cur, fields)
    f = fields.field_of(kind, key)
    cur.skip_space()
    op_pos = cur.pos
    op = _read_operator(cur, ident, fields)
    if op not in f.ops:
        if op in LIST_OPS and kind == ATTRIBUTE and fields.list_help and not f.numeric:
            raise cur.error(f"{op} at column {op_pos + 1} works only with {fields.list_help}, not {ident!r}")
        if op in NULL_OPS:
            raise cur.error(f"{op} at column {op_pos + 1} works only with tags.<key>, not {ident!r}")
        raise cur.error(
            f"operator {op!r} at column {op_pos + 1} cannot be used with {ident!r}; "
            f"a {_describe(kind, key, f)} takes {', '.join(f.ops)}"
        )
    cur.skip_space()
    value = _read_value(cur, kind, key, f, op, ident, fields)
    if "LIKE" in op and isinstance(value, str) and len(value) > MAX_PATTERN:
        raise cur.error(f"the {op} pattern for {ident!r} is {len(value)} characters long; the limit is {MAX_PATTERN}")
    return Comparison(kind, key, op, value)


def parse_filter(filter_string: str | None, fields: FieldTable = RUNS) -> list[Comparison]:
    """Parse an MLflow search filter into its AND-joined comparisons, for the search ``fields`` describes.

    ``None``, ``""`` and blank strings mean "no filter" and give ``[]``.

    Raises:
        InvalidFilter: the string does not parse; the message quotes the bad part.
    """
    if filter_string is None or (isinstance(filter_string, str) and not filter_string.strip()):
        return []
    cur = _Cursor(filter_string, fields.label)
    comparisons: list[Comparison] = []
    and_pos: int | None = None
    while True:
        cur.skip_space()
        if cur.at_end():
            raise cur.error(f"dangling 'AND' at column {and_pos + 1 if and_pos is not None else 1}: "
                            "no comparison follows it")
        word_pos = cur.pos
        word = _BARE_NAME.match(cur.text, cur.pos)
        if word and word.group().upper() in ("AND", "OR"):
            where = "at the start" if not comparisons else "right after another 'AND'"
            raise cur.error(
                f"{word.group()!r} at column {word_pos + 1} {where}: a comparison must come first"
            )
        start = cur.pos
        comparisons.append(_read_comparison(cur, fields))
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


_KIND_PLURALS = {METRIC: "metrics", PARAM: "params", TAG: "tags", DATASET: "dataset fields"}


def parse_order_by(order_by: Sequence[str] | None, fields: FieldTable = RUNS) -> list[OrderKey]:
    """Parse MLflow ``order_by`` clauses such as ``"metrics.rmse DESC"``.

    Each clause is an identifier (the filter grammar's) and an optional ``ASC``
    or ``DESC`` (any case, default ascending). A field may appear only once
    (MLflow's experiment search lets it repeat).
    Without clauses the table's default order applies; its tie-breakers follow
    unless their attribute is ordered on already (runs have neither: the SQL
    and ``sort_runs`` break ties).

    Raises:
        InvalidFilter: a clause does not parse or repeats a field; the message
            quotes the bad clause and part.
    """
    if not order_by:
        default = list(fields.default_order)
        named = {(k.kind, k.key) for k in default}
        return default + [t for t in fields.tie_breakers if (t.kind, t.key) not in named]
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
            raise cur.error(f"empty clause; expected an identifier such as {fields.example}")
        kind, key, ident = _read_identifier(cur, fields, order=True)
        if kind not in fields.order_kinds:
            raise cur.error(f"{ident!r}: {fields.entity}s cannot be ordered by {_KIND_PLURALS.get(kind, kind)} "
                            "(as in MLflow)")
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
        if (kind, key) in seen and fields.unique_order:
            raise cur.error(
                f"{ident!r} orders on the same field as the earlier clause "
                f"{seen[(kind, key)]!r}; order_by may name each field once"
            )
        seen[(kind, key)] = clause
        keys.append(OrderKey(kind, key, ascending))
    keys += [t for t in fields.tie_breakers if (t.kind, t.key) not in seen]
    return keys


# --------------------------------------------------------------------------- matching


def _compare(lhs: Any, op: str, rhs: Any) -> bool:
    if op == "=":
        return bool(lhs == rhs)
    if op == "!=":
        return bool(lhs != rhs)
    if op == "<":
        return bool(lhs < rhs)
    if op == "<=":
        return bool(lhs <= rhs)
    if op == ">":
        return bool(lhs > rhs)
    if op == ">=":
        return bool(lhs >= rhs)
    if op == "LIKE":
        return like(lhs, rhs)
    if op == "ILIKE":
        return ilike(lhs, rhs)
    if op == "IN":
        return lhs in rhs
    if op == "NOT IN":
        return lhs not in rhs
    raise ValueError(f"unknown operator {op!r}")  # parse_filter never produces one


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
        elif not RUNS.field_of(c.kind, c.key).numeric:
            lhs = str(lhs)
        if not _compare(lhs, c.op, c.value):
            return False
    return True


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return ascii_lower(value)
    if isinstance(value, tuple):
        return tuple(ascii_lower(v) for v in value)
    return value


def match_record(comparisons: Iterable[Comparison], record: Mapping[str, Any], fields: FieldTable) -> bool:
    """Tell whether an experiment, registered model or model version satisfies every comparison.

    ``record`` maps each attribute to its value (None: missing), or to a list of values
    any of which may match (all of which must, for ``!=`` and ``NOT IN``), and ``"tags"``
    to the tags.
    """
    for c in comparisons:
        if c.kind == TAG:
            tags = record.get("tags") or {}
            if c.op in NULL_OPS:
                if (c.key in tags) != (c.op == "IS NOT NULL"):
                    return False
                continue
            actual = tags.get(c.key)
        else:
            actual = record.get(c.key)
        f = fields.field_of(c.kind, c.key)
        expected = _fold(c.value) if f.fold else c.value
        held = (_holds(v, c.op, expected, f) for v in (actual if isinstance(actual, list) else [actual]))
        every = isinstance(actual, list) and c.op in ("!=", "NOT IN")
        if not (all(held) if every else any(held)):
            return False
    return True


def _holds(value: Any, op: str, expected: Any, f: Field) -> bool:
    """One value of a record's field against a comparison's operator and value; a missing one fails."""
    if value is None:
        return False
    if not f.numeric:
        value = ascii_lower(str(value)) if f.fold else str(value)
    return _compare(value, op, expected)


def match_experiment(comparisons: Iterable[Comparison], experiment: Mapping[str, Any]) -> bool:
    """Tell whether an experiment (``{"name", "experiment_id", "creation_time",
    "last_update_time", "tags": {...}}``) satisfies every comparison."""
    return match_record(comparisons, experiment, EXPERIMENTS)


def parse_experiment_filter(filter_string: str | None) -> list[Comparison]:
    """``parse_filter`` for ``search_experiments``.

    Raises:
        InvalidFilter: the string does not parse; the message quotes the bad part.
    """
    return parse_filter(filter_string, EXPERIMENTS)


def parse_experiment_order_by(order_by: Sequence[str] | None) -> list[OrderKey]:
    """``parse_order_by`` for ``search_experiments``: MLflow's default is creation time, newest
    first, then id; ``experiment_id`` descending breaks ties.

    Raises:
        InvalidFilter: a clause does not parse.
    """
    return parse_order_by(order_by, EXPERIMENTS)


# --------------------------------------------------------------------------- ordering

_T = TypeVar("_T")


def sort_records(items: Iterable[_T], order_keys: Sequence[OrderKey], value: Callable[[_T, str], Any]) -> list[_T]:
    """``items`` ordered by ``order_keys`` (attribute keys; ``value(item, key)`` reads one).

    Stable passes, last key first; an item whose value is None comes last in either direction.
    """
    ordered = list(items)
    for key in reversed(order_keys):
        present = [(v, item) for item in ordered if (v := value(item, key.key)) is not None]
        missing = [item for item in ordered if value(item, key.key) is None]
        # sorted() keeps equal items in input order even with reverse=True.
        present.sort(key=lambda pair: pair[0], reverse=not key.ascending)
        ordered = [item for _, item in present] + missing
    return ordered


def sort_experiments(experiments: Iterable[Mapping[str, Any]], order_keys: Sequence[OrderKey]) -> list[Mapping[str, Any]]:
    """Order experiments by ``order_keys`` (ids compare as numbers; a missing time sorts last)."""
    def value(e: Mapping[str, Any], name: str) -> Any:
        v = e.get(name)
        return int(v) if name == "experiment_id" and v is not None else v

    return sort_records(experiments, order_keys, value)


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
    present.sort(key=lambda pair: pair[0], reverse=not key.ascending)
    return [run for _, run in present] + nan + missing


def sort_runs(
    runs: Iterable[Mapping[str, Any]], order_keys: Sequence[OrderKey]
) -> list[Mapping[str, Any]]:
    """Order runs as ``gitml.tracking.search.compile_search`` does, for runs held in memory.

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
