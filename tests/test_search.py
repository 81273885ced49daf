"""Tests for gitml.tracking.filters and gitml.tracking.search: the MLflow filter grammar, its SQL
and its Python twin.

Every search runs twice: as compiled SQL against a real in-memory SQLite index
and through match_run/sort_runs over the same runs held as dicts; both must give
the expected run ids in the expected order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from gitml.errors import GitmlError, InvalidFilter
from gitml.tracking import filters
from gitml.tracking.filters import (
    Comparison,
    OrderKey,
    match_run,
    parse_filter,
    parse_order_by,
    sort_runs,
)
from gitml.tracking.index import SCHEMA
from gitml.tracking.search import compile_search

NAN = float("nan")


def make_run(
    run_id: str,
    *,
    experiment_id: str,
    name: str,
    status: str,
    start: int,
    end: int | None,
    user: str,
    uri: str,
    lifecycle: str = "active",
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    datasets: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "info": {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "run_name": name,
            "status": status,
            "start_time": start,
            "end_time": end,
            "lifecycle_stage": lifecycle,
            "user_id": user,
            "artifact_uri": uri,
        },
        "params": params or {},
        "tags": {"mlflow.runName": name, **(tags or {})},
        "metrics": metrics or {},
        "datasets": datasets or [],
    }


RUNS = [
    make_run(
        "r1",
        experiment_id="1",
        name="alpha-run",
        status="FINISHED",
        start=1000,
        end=2000,
        user="alice",
        uri="file:///art/r1",
        params={"alpha": "0.1", "model": "LogisticRegression"},
        tags={"team": "Vision"},
        metrics={"rmse": 0.5, "acc": 0.9, "my metric": 1.0},
        datasets=[{"name": "wine", "digest": "a1b2c3d4", "context": "train"},
                  {"name": "wine", "digest": "ffff0000", "context": "eval"}],
    ),
    make_run(
        "r2",
        experiment_id="1",
        name="beta",
        status="FAILED",
        start=3000,
        end=4000,
        user="bob",
        uri="s3://bucket/r2",
        params={"alpha": "0.5", "model": "logisticregression"},
        tags={"team": "vision"},
        metrics={"rmse": 0.3, "acc": NAN},
        datasets=[{"name": "Wine-red", "digest": "a1b2c3d4", "context": None}],
    ),
    make_run(
        "r3",
        experiment_id="2",
        name="Gamma",
        status="RUNNING",
        start=2000,
        end=None,
        user="alice",
        uri="file:///art/r3",
        params={"alpha": "1.0", "a b": "x"},
        tags={"priority": "high"},
        metrics={"rmse": 0.7, "my metric": 2.0},
    ),
    make_run(
        "r4",
        experiment_id="1",
        name="deleted-one",
        status="FINISHED",
        start=5000,
        end=6000,
        user="carol",
        uri="file:///art/r4",
        lifecycle="deleted",
        params={"alpha": "0.1"},
        metrics={"rmse": 0.1},
    ),
    make_run(
        "r5",
        experiment_id="2",
        name="delta",
        status="FINISHED",
        start=3000,
        end=3500,
        user="bob",
        uri="file:///art/r5",
        params={"model": "Tree", "quote": "it's"},
        tags={"team": "NLP"},
    ),
    make_run(
        "r6",
        experiment_id="1",
        name="epsilon",
        status="KILLED",
        start=500,
        end=900,
        user="dave",
        uri="file:///art/r6",
        params={"alpha": "0.01", "coupon": "50%_off*"},
        tags={"note": "a[1]?"},
        metrics={"rmse": -0.15, "acc": 0.95},
    ),
]


def make_index(runs: list[dict[str, Any]]) -> sqlite3.Connection:
    """An in-memory index holding ``runs``, with the run index's schema."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    for rid, run in enumerate(runs, 1):
        info = run["info"]
        conn.execute(
            "INSERT INTO runs (rid, run_id, experiment_id, run_name, status, start_time, end_time,"
            " lifecycle_stage, user_id, artifact_uri) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                rid,
                info["run_id"],
                info["experiment_id"],
                info["run_name"],
                info["status"],
                info["start_time"],
                info["end_time"],
                info["lifecycle_stage"],
                info["user_id"],
                info["artifact_uri"],
            ],
        )
        for table in ("params", "tags"):
            conn.executemany(
                f"INSERT INTO {table} (rid, key, value) VALUES (?, ?, ?)",
                [(rid, k, v) for k, v in run[table].items()],
            )
        conn.executemany(
            "INSERT INTO datasets (rid, name, digest, context) VALUES (?, ?, ?, ?)",
            [(rid, d["name"], d["digest"], d["context"]) for d in run["datasets"]],
        )
        conn.executemany(
            "INSERT INTO latest_metrics (rid, key, value, step, timestamp, is_nan)"
            " VALUES (?, ?, ?, 0, 0, ?)",
            [
                (rid, k, None if v != v else v, int(v != v))
                for k, v in run["metrics"].items()
            ],
        )
    return conn


@pytest.fixture
def index() -> Iterator[sqlite3.Connection]:
    conn = make_index(RUNS)
    yield conn
    conn.close()


def sql_search(
    conn: sqlite3.Connection,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
    lifecycle_stages: Sequence[str] = ("active",),
) -> list[str]:
    sql, params = compile_search(
        filter_string, order_by, experiment_ids=experiment_ids, lifecycle_stages=lifecycle_stages
    )
    assert sql.count("?") == len(params)
    return [row[0] for row in conn.execute(sql, params)]


def py_search(
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
    lifecycle_stages: Sequence[str] = ("active",),
) -> list[str]:
    comparisons = parse_filter(filter_string)
    kept = [
        run
        for run in RUNS
        if (experiment_ids is None or run["info"]["experiment_id"] in experiment_ids)
        and run["info"]["lifecycle_stage"] in lifecycle_stages
        and match_run(comparisons, run)
    ]
    return [run["info"]["run_id"] for run in sort_runs(kept, parse_order_by(order_by))]


def search_both(conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> list[str]:
    """Run a search through SQL and through Python; they must agree."""
    got_sql = sql_search(conn, *args, **kwargs)
    got_py = py_search(*args, **kwargs)
    assert got_sql == got_py
    return got_sql


# ------------------------------------------------------------------------ parsing


def test_parse_filter_empty_means_no_filter() -> None:
    assert parse_filter(None) == []
    assert parse_filter("") == []
    assert parse_filter("   ") == []


def test_parse_filter_types_values_per_kind() -> None:
    assert parse_filter(
        "metrics.rmse < 1 AND params.alpha = '0.1' AND tags.team LIKE 'V%' "
        "AND attributes.status != 'FAILED' AND start_time >= 1700000000000"
    ) == [
        Comparison("metric", "rmse", "<", 1.0),
        Comparison("param", "alpha", "=", "0.1"),
        Comparison("tag", "team", "LIKE", "V%"),
        Comparison("attribute", "status", "!=", "FAILED"),
        Comparison("attribute", "start_time", ">=", 1700000000000),
    ]
    value = parse_filter("end_time > 5")[0].value
    assert value == 5 and isinstance(value, int)
    assert parse_filter("metrics.loss > -1.5e-3")[0].value == -0.0015


@pytest.mark.parametrize(
    ("text", "kind", "key"),
    [
        ("metric.rmse > 1", "metric", "rmse"),
        ("metrics.rmse > 1", "metric", "rmse"),
        ("param.alpha = 'x'", "param", "alpha"),
        ("parameter.alpha = 'x'", "param", "alpha"),
        ("parameters.alpha = 'x'", "param", "alpha"),
        ("tag.team = 'x'", "tag", "team"),
        ("attribute.status = 'x'", "attribute", "status"),
        ("attr.status = 'x'", "attribute", "status"),
        ("run.status = 'x'", "attribute", "status"),
        ("status = 'x'", "attribute", "status"),
        ("created > 1", "attribute", "start_time"),
        ("Created > 1", "attribute", "start_time"),
        ("attributes.created > 1", "attribute", "start_time"),
        ("\"run name\" = 'x'", "attribute", "run_name"),
        ("`Run Name` = 'x'", "attribute", "run_name"),
        ("`metrics`.rmse > 1", "metric", "rmse"),
    ],
)
def test_parse_filter_prefix_and_attribute_aliases(text: str, kind: str, key: str) -> None:
    [c] = parse_filter(text)
    assert (c.kind, c.key) == (kind, key)


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ('metrics."my metric" > 1', "my metric", 1.0),
        ("metrics.`my metric` > 1", "my metric", 1.0),
        ("metrics.'my metric' > 1", "my metric", 1.0),
        ("tags.mlflow.runName = 'x'", "mlflow.runName", "x"),
        ('tags."mlflow.runName" = "x"', "mlflow.runName", "x"),
        ("params.`a ``b``` = 'x'", "a `b`", "x"),
        ("params.q = 'it''s'", "q", "it's"),
        ('params.q = "say ""hi"""', "q", 'say "hi"'),
        ("params.model-type = 'x'", "model-type", "x"),
        ("params.q='x'", "q", "x"),
    ],
)
def test_parse_filter_quoting(text: str, key: str, value: object) -> None:
    [c] = parse_filter(text)
    assert (c.key, c.value) == (key, value)


def test_parse_filter_keywords_are_case_insensitive() -> None:
    text = "params.a like 'x' and params.b ILike 'y' AnD run_id in ('r1') and run_id Not  In ('r2')"
    assert [c.op for c in parse_filter(text)] == ["LIKE", "ILIKE", "IN", "NOT IN"]


def test_parse_filter_in_list_is_a_tuple() -> None:
    [c] = parse_filter("attributes.run_id IN ('a', \"b\" ,'c')")
    assert c == Comparison("attribute", "run_id", "IN", ("a", "b", "c"))


def test_parse_order_by_clauses() -> None:
    assert parse_order_by(None) == []
    assert parse_order_by([]) == []
    assert parse_order_by(
        [
            "metrics.rmse DESC",
            "params.alpha",
            "attributes.start_time ASC",
            "tags.`mlflow.runName` desc",
            'metrics."my metric" asc',
            "run_name",
        ]
    ) == [
        OrderKey("metric", "rmse", False),
        OrderKey("param", "alpha", True),
        OrderKey("attribute", "start_time", True),
        OrderKey("tag", "mlflow.runName", False),
        OrderKey("metric", "my metric", True),
        OrderKey("attribute", "run_name", True),
    ]


# ------------------------------------------------------------------------ filtering

FILTER_CASES: list[tuple[str, set[str]]] = [
    # metrics: every operator
    ("metrics.rmse = 0.5", {"r1"}),
    ("metrics.rmse != 0.5", {"r2", "r3", "r6"}),
    ("metrics.rmse < 0.5", {"r2", "r6"}),
    ("metrics.rmse <= 0.5", {"r1", "r2", "r6"}),
    ("metrics.rmse > 0.5", {"r3"}),
    ("metrics.rmse >= 0.3", {"r1", "r2", "r3"}),
    ("metrics.rmse = -1.5e-1", {"r6"}),
    ("metric.rmse > 0.6", {"r3"}),
    ('metrics."my metric" >= 1', {"r1", "r3"}),
    ("metrics.`my metric` = 2", {"r3"}),
    # NaN (r2's acc) fails every comparison but !=
    ("metrics.acc > 0", {"r1", "r6"}),
    ("metrics.acc < 1", {"r1", "r6"}),
    ("metrics.acc = 0.9", {"r1"}),
    ("metrics.acc != 0.9", {"r2", "r6"}),
    # params: every operator; a missing param never matches, not even !=
    ("params.alpha = '0.1'", {"r1"}),
    ("params.alpha != '0.1'", {"r2", "r3", "r6"}),
    ("params.alpha LIKE '0.%'", {"r1", "r2", "r6"}),
    ("params.alpha LIKE '_._'", {"r1", "r2", "r3"}),
    ("params.model LIKE 'Logistic%'", {"r1"}),
    ("params.model LIKE 'logistic%'", {"r2"}),
    ("params.model ILIKE 'LOGISTIC%'", {"r1", "r2"}),
    ("params.model = 'logisticregression'", {"r2"}),
    ('params.model = "Tree"', {"r5"}),
    ("param.alpha = '1.0'", {"r3"}),
    ("params.\"a b\" = 'x'", {"r3"}),
    ("params.`a b` = 'x'", {"r3"}),
    ("params.quote = 'it''s'", {"r5"}),
    # LIKE treats GLOB metacharacters literally
    ("params.coupon LIKE '50%'", {"r6"}),
    ("params.coupon LIKE '%*'", {"r6"}),
    ("params.coupon LIKE '%?'", set()),
    ("params.coupon LIKE '50_\\_%'", set()),
    ("tags.note LIKE 'a[1]_'", {"r6"}),
    ("tags.note = 'a[1]?'", {"r6"}),
    # tags
    ("tags.team = 'Vision'", {"r1"}),
    ("tags.team != 'Vision'", {"r2", "r5"}),
    ("tags.team LIKE 'V%'", {"r1"}),
    ("tags.team ILIKE 'v%'", {"r1", "r2"}),
    ("tags.team ILIKE 'nlp'", {"r5"}),
    ("tag.priority = 'high'", {"r3"}),
    ("tags.mlflow.runName = 'beta'", {"r2"}),
    ("tags.\"mlflow.runName\" LIKE '%a'", {"r2", "r3", "r5"}),
    # string attributes
    ("attributes.status = 'FINISHED'", {"r1", "r5"}),
    ("status != 'FINISHED'", {"r2", "r3", "r6"}),
    ("attributes.status LIKE 'F%'", {"r1", "r2", "r5"}),
    ("status ILIKE 'running'", {"r3"}),
    ("run.status = 'KILLED'", {"r6"}),
    ("attributes.run_name = 'Gamma'", {"r3"}),
    ("run_name ILIKE 'gamma'", {"r3"}),
    ("\"run name\" = 'beta'", {"r2"}),
    ("attributes.user_id = 'alice'", {"r1", "r3"}),
    ("attr.user_id = 'dave'", {"r6"}),
    ("attributes.artifact_uri LIKE 's3://%'", {"r2"}),
    ("run_id = 'r5'", {"r5"}),
    ("attributes.run_id IN ('r1', 'r3', 'nope')", {"r1", "r3"}),
    ("run_id IN ('r2')", {"r2"}),
    ("run_id NOT IN ('r1', 'r4')", {"r2", "r3", "r5", "r6"}),
    # numeric attributes; a NULL end_time never matches
    ("attributes.start_time >= 2000", {"r2", "r3", "r5"}),
    ("start_time < 1000", {"r6"}),
    ("created = 3000", {"r2", "r5"}),
    ("Created > 2500", {"r2", "r5"}),
    ("attributes.end_time > 3000", {"r2", "r5"}),
    ("end_time != 2000", {"r2", "r5", "r6"}),
    ("end_time <= 900", {"r6"}),
    # conjunctions
    (
        "metrics.rmse < 0.6 and params.alpha LIKE '0.%' AND tags.team ILIKE 'VISION'",
        {"r1", "r2"},
    ),
    ("params.model like 'Tree' and attributes.status = 'FINISHED'", {"r5"}),
    ("metrics.rmse > 0 AND metrics.rmse < 0.6", {"r1", "r2"}),
    ("params.nope = 'x'", set()),
    # one keyed comparison picks the runs, the others are checked per run (NaN passes != there too)
    ("params.alpha LIKE '0.%' AND metrics.acc != 0.9", {"r2", "r6"}),
    ("metrics.acc != 0.9 AND params.model = 'logisticregression'", {"r2"}),
    ("tags.team != 'NLP' AND datasets.name LIKE 'W%'", {"r2"}),
    ("metrics.rmse < 0.6 AND datasets.context != 'train'", {"r1"}),
]


@pytest.mark.parametrize(("filter_string", "expected"), FILTER_CASES)
def test_search_filter_matches_expected_runs(
    index: sqlite3.Connection, filter_string: str, expected: set[str]
) -> None:
    assert set(search_both(index, filter_string)) == expected


def test_search_without_filter_returns_active_runs_in_default_order(
    index: sqlite3.Connection,
) -> None:
    # start_time DESC, ties (r2, r5 both at 3000) broken by run_id
    assert search_both(index) == ["r2", "r5", "r3", "r1", "r6"]


def test_search_filters_by_experiment_and_lifecycle(index: sqlite3.Connection) -> None:
    assert search_both(index, experiment_ids=["1"]) == ["r2", "r1", "r6"]
    assert search_both(index, experiment_ids=["2"]) == ["r5", "r3"]
    assert search_both(index, experiment_ids=["1", "2"]) == ["r2", "r5", "r3", "r1", "r6"]
    assert search_both(index, experiment_ids=["1"], lifecycle_stages=["active", "deleted"]) == [
        "r4",
        "r2",
        "r1",
        "r6",
    ]
    assert search_both(index, lifecycle_stages=["deleted"]) == ["r4"]
    assert search_both(index, experiment_ids=[]) == []
    assert search_both(index, lifecycle_stages=[]) == []
    assert search_both(index, "metrics.rmse < 0.4", lifecycle_stages=["active", "deleted"]) == [
        "r4",
        "r2",
        "r6",
    ]


def test_search_values_are_bound_not_inlined(index: sqlite3.Connection) -> None:
    assert search_both(index, "params.alpha = '''; DROP TABLE runs; --'") == []
    assert index.execute("SELECT count(*) FROM runs").fetchone() == (6,)


# ------------------------------------------------------------------------ ordering


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        # runs without the metric (r5) go last in both directions
        (["metrics.rmse ASC"], ["r6", "r2", "r1", "r3", "r5"]),
        (["metrics.rmse DESC"], ["r3", "r1", "r2", "r6", "r5"]),
        # NaN (r2) after real values, before missing (r5, r3 by start_time DESC)
        (["metrics.acc"], ["r1", "r6", "r2", "r5", "r3"]),
        (["metrics.acc DESC"], ["r6", "r1", "r2", "r5", "r3"]),
        (['metrics."my metric" DESC'], ["r3", "r1", "r2", "r5", "r6"]),
        (["metrics.`my metric` asc"], ["r1", "r3", "r2", "r5", "r6"]),
        # params and tags sort as strings, missing last
        (["params.alpha"], ["r6", "r1", "r2", "r3", "r5"]),
        (["params.alpha DESC"], ["r3", "r2", "r1", "r6", "r5"]),
        (["tags.team"], ["r5", "r1", "r2", "r3", "r6"]),
        # attributes; NULL end_time (r3) last both ways
        (["attributes.end_time"], ["r6", "r1", "r5", "r2", "r3"]),
        (["attributes.end_time DESC"], ["r2", "r5", "r1", "r6", "r3"]),
        (["start_time"], ["r6", "r1", "r3", "r2", "r5"]),
        (["created DESC"], ["r2", "r5", "r3", "r1", "r6"]),
        (["run_name DESC"], ["r6", "r5", "r2", "r1", "r3"]),
        (["attributes.run_id DESC"], ["r6", "r5", "r3", "r2", "r1"]),
        # several keys
        (["attributes.status", "metrics.rmse DESC"], ["r2", "r1", "r5", "r6", "r3"]),
        (["tags.team DESC", "start_time ASC"], ["r2", "r1", "r5", "r6", "r3"]),
        (["attributes.user_id", "params.alpha DESC"], ["r3", "r1", "r2", "r5", "r6"]),
    ],
)
def test_search_order_by(
    index: sqlite3.Connection, order_by: list[str], expected: list[str]
) -> None:
    assert search_both(index, order_by=order_by) == expected


def test_search_filter_and_order_together(index: sqlite3.Connection) -> None:
    assert search_both(
        index, "params.alpha LIKE '0%'", ["metrics.acc DESC"], experiment_ids=["1"]
    ) == ["r6", "r1", "r2"]


@pytest.mark.parametrize("filter_string", [f for f, _ in FILTER_CASES])
@pytest.mark.parametrize(
    "order_by", [None, ["metrics.rmse DESC"], ["params.alpha", "tags.team DESC"]]
)
def test_compile_search_agrees_with_match_run(
    index: sqlite3.Connection, filter_string: str, order_by: list[str] | None
) -> None:
    for stages in (["active"], ["active", "deleted"]):
        search_both(index, filter_string, order_by, lifecycle_stages=stages)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("filter_string", "named"),
    [
        ("foo.bar = 1", ["'foo'", "'foo.bar'"]),
        ("metrics.rmse = 'abc'", ["'abc'", "metrics.rmse"]),
        ("params.alpha < '1'", ["'<'", "params.alpha"]),
        ("params.alpha = 'abc", ["'abc", "unterminated"]),
        ("params.`a b = 'x'", ["`a b = 'x'", "unterminated"]),
        ("metrics.rmse < 1 AND", ["'AND'", "dangling"]),
        ("metrics.rmse < 1 AND  ", ["'AND'", "dangling"]),
        ("AND metrics.rmse < 1", ["'AND'"]),
        ("metrics.rmse < 1 AND AND metrics.acc > 0", ["'AND'"]),
        ("metrics. = 1", ["'metrics.'", "empty key"]),
        ("params.\"\" = 'x'", ["'params.\"\"'", "empty key"]),
        ("metrics.rmse < 1 OR metrics.acc > 0", ["'OR'"]),
        ("params.alpha = 0.1", ["'0.1'", "params.alpha"]),
        ("status = FINISHED", ["'FINISHED'", "status"]),
        ("attributes.status IN ('FINISHED')", ["IN", "status"]),
        ("metrics.rmse == 1", ["'=='", "metrics.rmse"]),
        ("metrics.rmse <> 1", ["'<>'"]),
        ("params.alpha IS NULL", ["'IS'", "params.alpha"]),
        ("params.alpha NOT LIKE 'x'", ["'NOT LIKE'"]),
        ("start_time > 1.5", ["'1.5'", "start_time"]),
        ("start_time LIKE '1%'", ["'LIKE'", "start_time"]),
        ("metrics.rmse LIKE '1%'", ["'LIKE'", "metrics.rmse"]),
        ("rmse < 1", ["'rmse'"]),
        ("attributes.foo = 'x'", ["'foo'", "attributes.foo"]),
        ("run_id IN ()", ["empty list", "run_id"]),
        ("run_id IN ('a' 'b')", ["'b'"]),
        ("run_id IN 'a'", ["run_id IN", "list"]),
        ("run_id = ('a')", ["list", "run_id ="]),
        ("datasets.size = 'x'", ["'size'", "datasets.size"]),
        ("datasets.name < 'x'", ["'<'", "datasets.name"]),
        ("metrics.rmse < 1 metrics.acc > 0", ["'metrics.acc'"]),
        ("metrics.rmse", ["'metrics.rmse'", "no operator"]),
        ("metrics.rmse <", ["missing value", "metrics.rmse <"]),
        ("metrics.rmse < 1)", ["')'"]),
        ("(metrics.rmse < 1)", ["'(metrics.rmse'"]),
        ("params.my key = 'x'", ["'params.my'", "'key'"]),
        ("metrics.rmse < nan", ["'nan'"]),
        ("'metrics.rmse' < 1", ["string"]),
    ],
)
def test_parse_filter_error_names_the_bad_part(filter_string: str, named: list[str]) -> None:
    with pytest.raises(InvalidFilter) as excinfo:
        parse_filter(filter_string)
    message = str(excinfo.value)
    assert repr(filter_string) in message
    for part in named:
        assert part in message


@pytest.mark.parametrize(
    ("order_by", "named"),
    [
        (["metrics.rmse DOWN"], ["'DOWN'", "ASC or DESC"]),
        (["metrics.rmse DESC extra"], ["'extra'"]),
        (["  "], ["empty"]),
        (["foo.rmse"], ["'foo'"]),
        (["attributes.nope"], ["'nope'"]),
        (["metrics."], ["empty key"]),
        (["metrics.rmse", "metric.rmse DESC"], ["'metric.rmse'", "'metrics.rmse'"]),
        (["created", "start_time DESC"], ["'start_time'"]),
        (["datasets.name"], ["dataset"]),
        ("metrics.rmse", ["list"]),
    ],
)
def test_parse_order_by_error_names_the_bad_part(order_by: Any, named: list[str]) -> None:
    with pytest.raises(InvalidFilter) as excinfo:
        parse_order_by(order_by)
    for part in named:
        assert part in str(excinfo.value)


def test_invalid_filter_is_a_400_gitml_error() -> None:
    with pytest.raises(GitmlError) as excinfo:
        compile_search("foo.bar = 1", None, experiment_ids=None, lifecycle_stages=["active"])
    assert excinfo.value.http_status == 400


FUZZ_KEYS = ["metrics.rmse", "params.lr", "tags.team", "attributes.start_time", "attributes.run_name", "run_id",
             "metrics.`a b`", 'params."x\udcff"', "tags.`\x1b[2J`", "attributes.status", "metrics." + "k" * 300]
FUZZ_OPS = ["=", "!=", "<", ">", "<=", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "==", "<>"]
FUZZ_VALUES = ["1", "-1", "1e999999", "-1e999999", "9" * 25, "9" * 5000, "-" + "9" * 30, "0x10", "nan", "1_000",
               "'x'", "'\udcff'", "'\x00'", "'" + "v" * 100_000 + "'", "'%'", "'_%\\'", "('a', 'b')", "()",
               "('\udcff')", '"double"', "`back`", "'unterminated", "'é漢字'", "'\u2028'", "NULL", "1.5e308"]


def test_fuzzed_filters_are_answers_or_invalid_filter(index: sqlite3.Connection) -> None:
    """Issue 14 (14): filters with huge numbers or undecodable bytes raised OverflowError,
    ValueError or UnicodeEncodeError (a 500 in the viewer) instead of InvalidFilter. 6,000 seeded
    random filters through parsing, compiling and SQLite: each is an answer or an InvalidFilter."""
    import random

    rng = random.Random(14)
    for _ in range(6000):
        parts = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            parts.append(f"{rng.choice(FUZZ_KEYS)} {rng.choice(FUZZ_OPS)} {rng.choice(FUZZ_VALUES)}")
        text = rng.choice([" AND ", " and ", " OR "]).join(parts)
        order = [f"{rng.choice(FUZZ_KEYS)} {rng.choice(['ASC', 'DESC', 'up', ''])}"] if rng.random() < 0.3 else None
        try:
            sql, params = compile_search(text, order, experiment_ids=None, lifecycle_stages=["active"])
            index.execute(sql, params).fetchall()
        except InvalidFilter:
            pass


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("datasets.name = 'wine'", ["r1"]),
        ("dataset.digest = 'a1b2c3d4'", ["r2", "r1"]),
        ("datasets.context = 'eval'", ["r1"]),
        ("datasets.context != 'train'", ["r1"]),
        ("datasets.name ILIKE 'wine%'", ["r2", "r1"]),
        ("datasets.name LIKE 'wine%'", ["r1"]),
        ("datasets.digest IN ('ffff0000', 'x')", ["r1"]),
        ("datasets.name NOT IN ('wine')", ["r2"]),
        ("datasets.name = 'wine' AND datasets.context = 'eval' AND metrics.rmse < 1", ["r1"]),
        ("datasets.name = 'nothing'", []),
    ],
)
def test_dataset_filters_match_any_input_of_the_run(index: sqlite3.Connection, filter_string: str,
                                                    expected: list[str]) -> None:
    """Issue 16: datasets.name / digest / context in filters, as MLflow's search (any input matches;
    a context a dataset lacks matches nothing)."""
    assert search_both(index, filter_string) == expected


# ------------------------------------------------------------------------ case folding

FOLD_RUNS = [
    make_run(run_id, experiment_id="1", name=name, status="FINISHED", start=i, end=None, user="u", uri="file:///a",
             tags={"owner": name})
    for i, (run_id, name) in enumerate([("f1", "élodie"), ("f2", "Émile"), ("f3", "alice"), ("f4", "Alice")])
]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("tags.owner ILIKE 'A%'", {"f3", "f4"}),
        ("tags.owner ILIKE 'a%'", {"f3", "f4"}),
        ("tags.owner LIKE 'A%'", {"f4"}),
        ("tags.owner LIKE 'a%'", {"f3"}),
        ("tags.owner ILIKE 'É%'", {"f2"}),
        ("tags.owner ILIKE 'é%'", {"f1"}),
        ("tags.owner ILIKE '%LODIE'", {"f1"}),
        ("run_name ILIKE 'ÉMILE'", {"f2"}),
        ("run_name ILIKE 'émile'", set()),
    ],
)
def test_ilike_folds_ascii_letters_only_in_sql_and_python(filter_string: str, expected: set[str]) -> None:
    """Issue 15 (3): ILIKE folds ASCII letters only, as MLflow's sqlite store (SQLite's lower());
    LIKE is case-sensitive. The SQL and the in-memory matcher agree."""
    conn = make_index(FOLD_RUNS)
    try:
        sql, params = compile_search(filter_string, None, experiment_ids=None, lifecycle_stages=["active"])
        got_sql = {row[0] for row in conn.execute(sql, params)}
    finally:
        conn.close()
    comparisons = parse_filter(filter_string)
    got_py = {run["info"]["run_id"] for run in FOLD_RUNS if match_run(comparisons, run)}
    assert got_sql == got_py == expected


@pytest.mark.parametrize("table", [filters.RUNS, filters.EXPERIMENTS, filters.REGISTERED_MODELS, filters.MODEL_VERSIONS])
def test_every_search_folds_case_the_same_way(table: filters.FieldTable) -> None:
    """Issue 15 (3): one matcher for every search: experiments and the registry fold as runs do."""
    def matches(filter_string: str, owner: str) -> bool:
        comparisons = parse_filter(filter_string, table)
        if table is filters.RUNS:
            return match_run(comparisons, {"tags": {"owner": owner}})
        return filters.match_record(comparisons, {"tags": {"owner": owner}}, table)

    assert matches("tags.owner ILIKE 'A%'", "alice") and matches("tags.owner ILIKE 'a%'", "ALICE")
    assert not matches("tags.owner LIKE 'A%'", "alice")
    assert not matches("tags.owner ILIKE 'É%'", "élodie") and not matches("tags.owner ILIKE 'é%'", "Élodie")
    assert matches("tags.owner ILIKE 'É%'", "Élodie")
    assert (filters.ilike("éA", "éa"), filters.ilike("ÉA", "éa"), filters.like("A", "a")) == (True, False, False)


def test_quoted_values_hold_and_or_and_parentheses() -> None:
    """Issue 15 (2): a quoted value is one value, whatever it holds; every search parses it so."""
    text = "name = 'a AND b' AND tags.`x AND y` = 'c OR (d)'"
    expected = [Comparison("attribute", "name", "=", "a AND b"), Comparison("tag", "x AND y", "=", "c OR (d)")]
    for table in (filters.EXPERIMENTS, filters.REGISTERED_MODELS, filters.MODEL_VERSIONS):
        assert parse_filter(text, table) == expected
    assert parse_filter("run_name = 'a AND b'") == [Comparison("attribute", "run_name", "=", "a AND b")]
