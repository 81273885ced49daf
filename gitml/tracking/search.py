"""Run search as SQL: a parsed MLflow filter and order_by -> one SELECT over the run index.

The grammar lives in ``gitml.tracking.filters`` (``parse_filter`` and ``parse_order_by`` with
its ``RUNS`` field table); ``compile_search`` turns what they give into one SQL ``SELECT`` over
the derived SQLite index (``gitml.tracking.index``), with every value bound as a ``?``
parameter. ``filters.match_run`` and ``filters.sort_runs`` give the same answers in Python
for runs held in memory; ``tests/test_search.py`` checks the two against each other.

How the SQL keeps the grammar's semantics:

- A comparison on a metric, param, tag or dataset field asks for a row of that key for the run
  (``rid``: the index numbers its runs): one such comparison picks the runs (``rid IN
  (subquery)``), the others are ``EXISTS`` checks. A run lacking the key fails it, whatever the
  operator; a NaN metric is stored as NULL with ``is_nan = 1`` and passes only ``!=``.
- ``LIKE`` is ``GLOB`` (SQLite's ``LIKE`` ignores ASCII case); ``ILIKE`` is
  ``lower(col) GLOB`` the pattern with ASCII letters lower-cased (SQLite's ``lower()`` folds
  ASCII only, as ``filters.ilike``).
- Ordering puts runs lacking the key last in either direction; for metrics NaN values come
  after real values and before missing ones. Ties fall back to ``start_time`` descending
  (unless ordered on already), then ``run_id``.

Only the standard library is imported here: ``import gitml`` must stay fast (sqlite3 is the
index's business).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gitml.tracking.filters import (
    ATTRIBUTE,
    DATASET,
    LIST_OPS,
    METRIC,
    PARAM,
    RUNS,
    TAG,
    Comparison,
    ascii_lower,
    parse_filter,
    parse_order_by,
)

__all__ = ["compile_search"]

_TABLES = {METRIC: "latest_metrics", PARAM: "params", TAG: "tags"}
# Dataset field -> column of the index's datasets table.
_DATASET_COLUMNS = {name: name for name in RUNS.subfields[DATASET]}



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
        return f"lower({column}) GLOB ?", [_glob_pattern(ascii_lower(str(value)))]
    if op in LIST_OPS:
        items = list(value) if isinstance(value, tuple) else [value]
        return f"{column} {op} ({_placeholders(len(items))})", items
    return f"{column} {op} ?", [value]


def _comparison_sql(c: Comparison, picks: bool = False) -> tuple[str, list[Any]]:
    """SQL for one comparison. A metric, param, tag or dataset comparison that ``picks`` the
    runs is ``r.rid IN (subquery)``, answered from its (key, value) index; the others are checked
    run by run (``EXISTS``, one primary-key lookup each), not built as lists of their own."""
    if c.kind == ATTRIBUTE:
        # Attribute names are whitelisted by filters.RUNS, so the column is safe to inline.
        return _value_condition(f"r.{c.key}", c.op, c.value)
    if c.kind == DATASET:
        table, params = "datasets", []
        cond, more = _value_condition(f"k.{_DATASET_COLUMNS[c.key]}", c.op, c.value)
    else:
        table, params = _TABLES[c.kind], [c.key]
        cond, more = _value_condition("k.value", c.op, c.value)
        if c.kind == METRIC and c.op == "!=":
            # NaN is stored as NULL; NaN != x holds, as in IEEE 754 and MLflow's matcher.
            cond = f"({cond} OR k.is_nan = 1)"
        cond = f"k.key = ? AND {cond}"
    params += more
    if picks:
        return f"r.rid IN (SELECT k.rid FROM {table} AS k WHERE {cond})", params
    return f"EXISTS (SELECT 1 FROM {table} AS k WHERE k.rid = r.rid AND {cond})", params


# How few runs a comparison is likely to keep, by operator (lower: fewer). The first keyed
# comparison in this order picks the runs; an equality usually keeps fewer than a range.
_NARROWNESS = {"=": 0, "IN": 0, "LIKE": 1, "ILIKE": 1, "!=": 3, "NOT IN": 3}


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
    comparisons = parse_filter(filter_string, RUNS)
    order_keys = parse_order_by(order_by, RUNS)

    joins: list[str] = []
    join_params: list[Any] = []
    order_terms: list[str] = []
    for i, key in enumerate(order_keys):
        direction = "" if key.ascending else " DESC"
        if key.kind == ATTRIBUTE:
            # Runs without the value last, as MLflow. SQLite sorts NULL lowest, so a
            # descending order has them last already; without the redundant term, the
            # default order (start_time DESC) walks the runs_exp index instead of sorting
            # every run of the experiment (a page at 10k runs: 2.4 ms -> 0.04 ms).
            column = f"r.{key.key}"
            order_terms += [f"{column}{direction}"] if direction else [f"({column} IS NULL)", column]
            continue
        alias = f"o{i}"
        joins.append(
            f"LEFT JOIN {_TABLES[key.kind]} AS {alias} "
            f"ON {alias}.rid = r.rid AND {alias}.key = ?"
        )
        join_params.append(key.key)
        if key.kind == METRIC:
            # Real values, then NaN (stored as NULL), then runs without the metric.
            order_terms.append(
                f"(CASE WHEN {alias}.rid IS NULL THEN 2 "
                f"WHEN {alias}.value IS NULL THEN 1 ELSE 0 END)"
            )
        else:
            order_terms.append(f"({alias}.value IS NULL)")
        order_terms.append(f"{alias}.value{direction}")
    if not any(k.kind == ATTRIBUTE and k.key == "start_time" for k in order_keys):
        order_terms.append("r.start_time DESC")
    order_terms.append("r.run_id")

    where, where_params = _where(comparisons, experiment_ids, lifecycle_stages)
    parts = ["SELECT r.run_id FROM runs AS r", *joins, "WHERE " + " AND ".join(where)]
    parts.append("ORDER BY " + ", ".join(order_terms))
    return "\n".join(parts), join_params + where_params


def compile_count(
    filter_string: str | None,
    *,
    experiment_ids: Sequence[str] | None,
    lifecycle_stages: Sequence[str],
) -> tuple[str, list[Any]]:
    """``(sql, params)`` counting the runs ``compile_search`` finds: no order, so no sort.

    Raises:
        InvalidFilter: the filter does not parse.
    """
    where, params = _where(parse_filter(filter_string, RUNS), experiment_ids, lifecycle_stages)
    return "SELECT COUNT(*) FROM runs AS r WHERE " + " AND ".join(where), params


def _where(comparisons: list[Comparison], experiment_ids: Sequence[str] | None,
           lifecycle_stages: Sequence[str]) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    where_params: list[Any] = []
    # With a metric, param, tag or dataset comparison, the runs come from its subquery rather than
    # from a scan of the experiment's runs checked against it: unary + keeps SQLite from driving
    # the query from the runs_exp index.
    drive = "+" if any(c.kind != ATTRIBUTE for c in comparisons) else ""
    if experiment_ids is not None:
        ids = [str(e) for e in experiment_ids]
        where.append(f"{drive}r.experiment_id IN ({_placeholders(len(ids))})" if ids else "0")
        where_params += ids
    stages = list(lifecycle_stages)
    where.append(f"{drive}r.lifecycle_stage IN ({_placeholders(len(stages))})" if stages else "0")
    where_params += stages
    keyed = sorted((c for c in comparisons if c.kind != ATTRIBUTE), key=lambda c: _NARROWNESS.get(c.op, 2))
    picker = keyed[0] if keyed else None
    for c in [c for c in comparisons if c.kind == ATTRIBUTE] + keyed:
        sql, params = _comparison_sql(c, picks=c is picker)
        where.append(sql)
        where_params += params
    return where, where_params
