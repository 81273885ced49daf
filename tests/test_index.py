"""Tests for gitml.tracking.index: the search table (RunIndex.columns, RunTable) and what it keeps.

A search's DataFrame is built from the index's columns, either read for the
runs found or picked from the table of every run that the index keeps while
it holds the same runs (its generation). Both must give the DataFrame that
MLflow's columns give for the same runs as Run objects (``runs_to_dataframe``).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from gitml.tracking import index as index_module
from gitml.tracking import runs as runs_module
from gitml.tracking.index import RunTable
from tests.conftest import run_python

# (view type, filter, order_by, max_results, every experiment): searches whose answers differ in
# rows, order and in which key columns appear
SEARCHES: list[tuple[int, str, list[str] | None, int | None, bool]] = [
    (1, "", None, None, False),
    (3, "", ["metrics.loss ASC"], None, False),
    (3, "", ["params.alpha DESC", "tags.team"], None, True),
    (1, "metrics.acc > 0", None, None, False),
    (3, "metrics.loss != 0.1", ["metrics.loss DESC"], None, False),  # NaN passes !=
    (3, "params.nothing = 'z'", None, None, False),  # no run: the attribute columns only
    (3, "tags.team = 'b'", None, None, True),  # one run
    (1, "", ["metrics.big DESC"], 2, True),
    (2, "", None, None, False),  # deleted only
    (1, "attributes.run_name LIKE 'c%'", None, None, True),
]


def populate(tracking: Any) -> dict[str, str]:
    """Runs in two experiments: NaN and inf metrics, keys only some runs have, a nested run,
    a deleted run, a run still running."""
    ids = {}
    tracking.set_experiment("first")
    with tracking.start_run(run_name="nan") as run:
        tracking.log_metrics({"loss": math.nan, "acc": 0.5, "big": math.inf})
        tracking.log_param("only_here", "x")
        ids["nan"] = run.info.run_id
    with tracking.start_run(run_name="parent") as run:
        ids["parent"] = run.info.run_id
        tracking.log_param("alpha", "0.5")
        with tracking.start_run(run_name="child", nested=True) as child:
            tracking.log_metric("loss", 0.1)
            tracking.set_tag("team", "b")
            ids["child"] = child.info.run_id
    with tracking.start_run(run_name="plain") as run:
        tracking.log_metric("loss", 0.25, step=3)
        tracking.log_metric("big", -math.inf)
        tracking.set_tag("team", "a")
        tracking.log_param("alpha", "0.1")
        ids["plain"] = run.info.run_id
    tracking.set_experiment("second")
    with tracking.start_run(run_name="cross") as run:
        tracking.log_metric("acc", 0.9)
        tracking.log_param("alpha", "0.3")
        ids["cross"] = run.info.run_id
    tracking.set_experiment("first")
    tracking.delete_run(ids["nan"])
    ids["live"] = tracking.start_run(run_name="live").info.run_id  # left running
    tracking.log_metric("acc", 0.7)
    return ids


def assert_searches_agree(tracking: Any) -> None:
    import pandas as pd

    for view, filter_string, order, limit, everywhere in SEARCHES:
        kwargs: dict[str, Any] = {"filter_string": filter_string, "run_view_type": view, "order_by": order,
                                  "search_all_experiments": everywhere}
        if limit is not None:
            kwargs["max_results"] = limit
        listed = tracking.search_runs(output_format="list", **kwargs)
        framed = tracking.search_runs(**kwargs)
        pd.testing.assert_frame_equal(framed, runs_module.runs_to_dataframe(listed))


@pytest.mark.parametrize("large_search", [0, 10**9], ids=["rows-read-as-asked", "every-run-read"])
def test_search_frames_equal_the_frames_of_runs_both_ways(tracking, monkeypatch, large_search):
    """LARGE_SEARCH 0: each search reads the rows no earlier one read (a table grown by merges);
    10**9: a search that lacks any row reads the table of every run."""
    monkeypatch.setattr(index_module, "LARGE_SEARCH", large_search)
    populate(tracking)
    assert_searches_agree(tracking)


def test_the_table_of_every_run_gives_the_columns_read_for_the_ids(tracking, repo):
    import pandas as pd

    ids = populate(tracking)
    idx = runs_module.sync_index(runs_module.open_repo(repo))
    every = RunTable.read(idx.db, "g")
    for wanted in ([ids["child"]], [ids["plain"], ids["nan"], ids["cross"]], list(ids.values())[::-1],
                   [ids["live"], "0" * 32], []):
        read = RunTable.read(idx.db, "g", wanted).columns(wanted)
        picked = every.columns(wanted)
        assert list(picked) == list(read)
        pd.testing.assert_frame_equal(runs_module._frame(picked), runs_module._frame(read))
        runs = idx.load(wanted)
        pd.testing.assert_frame_equal(runs_module._frame(picked), runs_module.runs_to_dataframe(runs))
    # a table grown run by run, in another order, gives the same columns as the table read at once
    grown = RunTable.empty("g")
    assert list(grown.columns([])) == list(every.columns([]))
    for run_id in [ids["live"], ids["cross"], ids["nan"]] + list(ids.values()):
        if run_id not in grown.positions:
            grown = grown.merged(RunTable.read(idx.db, "g", [run_id]))
    for wanted in (list(ids.values()), [ids["plain"], ids["child"]], [ids["nan"]]):
        assert list(grown.columns(wanted)) == list(every.columns(wanted))
        pd.testing.assert_frame_equal(runs_module._frame(grown.columns(wanted)),
                                      runs_module._frame(every.columns(wanted)))


def test_the_kept_table_follows_runs_that_change(tracking, repo):
    """A table kept from an earlier search is not served once the runs changed, by this
    process or another one."""
    import pandas as pd

    ids = populate(tracking)
    tracking.search_runs(search_all_experiments=True, run_view_type=3)  # keeps the table of every run

    def same_as_runs() -> Any:
        framed = tracking.search_runs(search_all_experiments=True, run_view_type=3)
        listed = tracking.search_runs(search_all_experiments=True, run_view_type=3, output_format="list")
        pd.testing.assert_frame_equal(framed, runs_module.runs_to_dataframe(listed))
        return framed

    tracking.set_tag("team", "c")  # the live run, in this process
    assert same_as_runs().set_index("run_id").loc[ids["live"], "tags.team"] == "c"
    tracking.Client().restore_run(ids["nan"])
    assert ids["nan"] in set(tracking.search_runs()["run_id"])
    out = run_python("import gitml\nwith gitml.start_run():\n    gitml.log_metric('other', 7)\n", repo)
    assert out.returncode == 0, out.stderr
    framed = same_as_runs()
    assert framed["metrics.other"].notna().sum() == 1
    tracking.delete_run(ids["plain"])
    assert ids["plain"] not in set(tracking.search_runs(search_all_experiments=True)["run_id"])
    same_as_runs()


def test_an_index_of_an_older_schema_is_rebuilt(tracking, repo):
    """An index file written by an earlier gitml (schema 3: tables keyed by run id) is rebuilt."""
    import sqlite3

    with tracking.start_run() as run:
        tracking.log_metric("m", 1.0)
    assert len(tracking.search_runs()) == 1
    from gitml.tracking.testing import reset

    reset()
    path = repo / ".git" / "gitml" / "index.sqlite"
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.execute("DELETE FROM runs")
    db.commit()
    db.close()
    tracking.set_tracking_uri(repo)
    found = tracking.search_runs(search_all_experiments=True, filter_string="metrics.m = 1")
    assert list(found["run_id"]) == [run.info.run_id]


def test_keys_of_experiments_are_the_distinct_keys_of_their_runs(tracking, repo):
    ids = populate(tracking)
    handle = runs_module.open_repo(repo)
    idx = runs_module.sync_index(handle)
    exps = {tracking.get_run(r).info.experiment_id for r in ids.values()}
    tables = {"params": "params", "metrics": "latest_metrics", "tags": "tags"}

    def distinct(kind: str, experiment_ids: list[str] | None) -> list[str]:
        sql = f"SELECT DISTINCT t.key FROM {tables[kind]} AS t JOIN runs AS r ON r.rid = t.rid"
        if experiment_ids is not None:
            sql += f" WHERE r.experiment_id IN ({','.join('?' * len(experiment_ids)) or 'NULL'})"
        return [row[0] for row in idx.db.execute(sql + " ORDER BY t.key", experiment_ids or [])]

    for wanted in [None, [], ["nope"], *([e] for e in sorted(exps)), sorted(exps)]:
        got = idx._keys(wanted)
        assert got == {kind: distinct(kind, wanted) for kind in tables}, wanted
    first = idx._keys([tracking.get_run(ids["plain"]).info.experiment_id])
    assert "only_here" in first["params"] and "team" in first["tags"]
    assert idx._keys([tracking.get_run(ids["cross"]).info.experiment_id])["params"] == ["alpha"]
