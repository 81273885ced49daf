"""The tracking API against real repositories: MLflow names, semantics and the git layout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitml.errors import (
    AmbiguousRunId,
    InvalidFilter,
    InvalidName,
    InvalidValue,
    NotARepository,
    ParamAlreadyLogged,
    RunNotFound,
)
from tests.conftest import git, git_run_ids, gitml_cli, run_python, run_rev


def run_ids(repo: Path) -> list[str]:
    return git_run_ids(repo)


def test_issue_snippet_runs_unchanged(tracking, repo):
    mlflow = tracking
    with mlflow.start_run():
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("rmse", 0.75)
    (run_id,) = run_ids(repo)
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5"}
    assert run.data.metrics == {"rmse": 0.75}
    assert run.info.end_time >= run.info.start_time
    assert json.loads(git(repo, "show", f"{run_rev(repo, run_id)}:params.json")) == {"alpha": "0.5"}


def test_run_commit_parent_is_head_for_clean_tree(tracking, repo):
    head = git(repo, "rev-parse", "HEAD").strip()
    with tracking.start_run() as run:
        tracking.log_metric("x", 1)
    parent = git(repo, "rev-parse", f"{run_rev(repo, run.info.run_id)}^").strip()
    assert parent == head
    tags = tracking.get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.dirty"] == "false"
    assert tags["gitml.source.snapshot"] == head


def test_user_branches_index_and_worktree_untouched(tracking, repo):
    (repo / "train.py").write_text("print('changed')\n")
    (repo / "new.txt").write_text("untracked\n")
    git(repo, "add", "new.txt")  # staged change the user made
    before = (git(repo, "status", "--porcelain"), git(repo, "for-each-ref", "refs/heads"),
              (repo / ".git" / "index").read_bytes(), git(repo, "rev-parse", "HEAD"))
    with tracking.start_run():
        tracking.log_metric("x", 1)
    after = (git(repo, "status", "--porcelain"), git(repo, "for-each-ref", "refs/heads"),
             (repo / ".git" / "index").read_bytes(), git(repo, "rev-parse", "HEAD"))
    assert before == after


def test_nested_runs_link_to_parent(tracking):
    with tracking.start_run(run_name="parent") as parent:
        with tracking.start_run(run_name="child", nested=True) as child:
            tracking.log_metric("loss", 0.1)
            assert tracking.active_run().info.run_id == child.info.run_id
        assert tracking.active_run().info.run_id == parent.info.run_id
    got = tracking.get_run(child.info.run_id)
    assert got.parent_run_id == parent.info.run_id
    assert got.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert got.info.run_name == "child"
    assert tracking.active_run() is None
    children = tracking.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list")
    assert [r.info.run_id for r in children] == [child.info.run_id]


def test_second_start_run_without_nested_is_refused(tracking):
    with tracking.start_run() as run:
        with pytest.raises(InvalidValue, match=run.info.run_id):
            tracking.start_run()


def test_log_without_active_run_starts_one(tracking):
    tracking.log_metric("auto", 1.0)
    run = tracking.active_run()
    assert run is not None
    tracking.end_run()
    assert tracking.get_run(run.info.run_id).data.metrics == {"auto": 1.0}


def test_failed_status_on_exception(tracking):
    with pytest.raises(RuntimeError):
        with tracking.start_run() as run:
            raise RuntimeError("boom")
    assert tracking.get_run(run.info.run_id).info.status == "FAILED"


def test_end_run_with_status(tracking):
    run = tracking.start_run()
    tracking.end_run("KILLED")
    assert tracking.get_run(run.info.run_id).info.status == "KILLED"
    with pytest.raises(InvalidValue, match="'DONE'"):
        tracking.Client().set_terminated(run.info.run_id, "DONE")


def test_metric_history_steps_timestamps_and_chunks(tracking, repo):
    with tracking.start_run() as run:
        for i in range(2500):
            tracking.log_metric("loss", 1.0 / (i + 1), step=i, timestamp=1_000_000 + i)
        tracking.log_metrics({"acc": 0.5, "f1": 0.25}, step=3)
    rid = run.info.run_id
    history = tracking.Client().get_metric_history(rid, "loss")
    assert [m.step for m in history] == list(range(2500))
    assert [m.timestamp for m in history] == [1_000_000 + i for i in range(2500)]
    assert history[-1].value == 1.0 / 2500
    chunks = git(repo, "ls-tree", "--name-only", f"{run_rev(repo, rid)}:metrics/loss").split()
    assert chunks == ["000000.tsv", "000001.tsv", "000002.tsv"]
    first = git(repo, "show", f"{run_rev(repo, rid)}:metrics/loss/000000.tsv").splitlines()[0]
    assert first == "0\t1000000\t1.0"
    assert tracking.get_run(rid).data.metrics == {"loss": 1.0 / 2500, "acc": 0.5, "f1": 0.25}


def test_latest_metric_is_by_step_not_by_call_order(tracking):
    with tracking.start_run() as run:
        tracking.log_metric("m", 5.0, step=10)
        tracking.log_metric("m", 1.0, step=2)
    assert tracking.get_run(run.info.run_id).data.metrics["m"] == 5.0


def test_metric_keys_with_slashes_nest(tracking, repo):
    with tracking.start_run() as run:
        tracking.log_metric("train/loss", 1.0)
        tracking.log_metric("train", 2.0)
    rid = run.info.run_id
    assert tracking.get_run(rid).data.metrics == {"train/loss": 1.0, "train": 2.0}
    assert [m.value for m in tracking.Client().get_metric_history(rid, "train")] == [2.0]
    assert git(repo, "show", f"{run_rev(repo, rid)}:metrics/train/loss/000000.tsv").endswith("\t1.0\n")


def test_nan_and_inf_round_trip(tracking):
    with tracking.start_run() as run:
        tracking.log_metric("nan", float("nan"))
        tracking.log_metric("inf", float("inf"))
        tracking.log_metric("ninf", float("-inf"))
    m = tracking.get_run(run.info.run_id).data.metrics
    assert math.isnan(m["nan"]) and m["inf"] == math.inf and m["ninf"] == -math.inf
    found = tracking.search_runs(filter_string="metrics.inf > 1e308", output_format="list")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_params_are_write_once(tracking):
    with tracking.start_run() as run:
        tracking.log_param("lr", 0.1)
        tracking.log_param("lr", 0.1)  # same value again is fine
        with pytest.raises(ParamAlreadyLogged, match="lr"):
            tracking.log_param("lr", 0.2)
        tracking.flush()
        with pytest.raises(ParamAlreadyLogged, match="0.2"):
            tracking.Client().log_param(run.info.run_id, "lr", 0.2)
    assert tracking.get_run(run.info.run_id).data.params == {"lr": "0.1"}


def test_param_rewrite_refused_after_resume_in_new_process(tracking, repo):
    with tracking.start_run() as run:
        tracking.log_param("lr", "0.1")
    code = (
        "import gitml\n"
        f"gitml.start_run(run_id='{run.info.run_id}')\n"
        "try:\n    gitml.log_param('lr', '0.3')\nexcept gitml.GitmlError as e:\n    print('refused', e)\n"
    )
    out = run_python(code, repo)
    assert "refused" in out.stdout and "0.3" in out.stdout, out.stderr


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda m: m.log_metric("a/../b", 1), InvalidName),
        (lambda m: m.log_metric("/abs", 1), InvalidName),
        (lambda m: m.log_metric("ok", "not a number"), InvalidValue),
        (lambda m: m.log_param("x" * 251, 1), InvalidName),
        (lambda m: m.log_param("big", "v" * 6001), InvalidValue),
        (lambda m: m.set_tag("t", "v" * 8001), InvalidValue),
        (lambda m: m.log_metric("ok", 1, step="three"), InvalidValue),
    ],
)
def test_bad_input_is_refused_and_nothing_is_lost(tracking, call, error):
    with tracking.start_run() as run:
        tracking.log_metric("kept", 1.0)
        with pytest.raises(error):
            call(tracking)
    assert tracking.get_run(run.info.run_id).data.metrics == {"kept": 1.0}


def test_tags_set_and_delete(tracking):
    with tracking.start_run(tags={"team": "a"}) as run:
        tracking.set_tags({"x": 1, "y": "two"})
        tracking.set_tag("x", "3")
        tracking.delete_tag("y")
    tags = tracking.get_run(run.info.run_id).data.tags
    assert tags["team"] == "a" and tags["x"] == "3" and "y" not in tags


def test_run_name_and_description(tracking):
    with tracking.start_run(run_name="baseline", description="first try") as run:
        pass
    got = tracking.get_run(run.info.run_id)
    assert got.info.run_name == "baseline"
    assert got.data.tags["mlflow.runName"] == "baseline"
    assert got.data.tags["mlflow.note.content"] == "first try"


def test_search_runs_filters_orders_and_returns_dataframe(tracking):
    for alpha, rmse in [(0.1, 0.9), (0.5, 0.4), (0.9, 0.6)]:
        with tracking.start_run(run_name=f"a{alpha}"):
            tracking.log_param("alpha", alpha)
            tracking.log_metric("rmse", rmse)
    df = tracking.search_runs(filter_string="metrics.rmse < 0.8", order_by=["metrics.rmse DESC"])
    assert list(df["metrics.rmse"]) == [0.6, 0.4]
    assert list(df["params.alpha"]) == ["0.9", "0.5"]
    for col in ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time", "tags.mlflow.runName"):
        assert col in df.columns
    assert str(df["start_time"].dtype).startswith("datetime64")
    runs = tracking.search_runs(filter_string="params.alpha = '0.1'", output_format="list")
    assert [r.info.run_name for r in runs] == ["a0.1"]
    assert len(tracking.search_runs(max_results=2)) == 2
    like = tracking.search_runs(filter_string="attributes.run_name LIKE 'a0.%'", output_format="list")
    assert len(like) == 3


def test_the_dataframe_from_index_columns_equals_the_one_from_runs(tracking):
    import pandas as pd

    from gitml.tracking import runs as runs_module

    with tracking.start_run(run_name="nan") as first:
        tracking.log_metrics({"loss": float("nan"), "acc": 0.5, "big": float("inf")})
        tracking.log_param("only_here", "x")
    with tracking.start_run(run_name="plain"):
        tracking.log_metric("loss", 0.25, step=3)
        tracking.set_tag("team", "a")
    with tracking.start_run(run_name="running"):
        pass
    tracking.delete_run(first.info.run_id)
    for view, filter_string, order in [(1, "", None), (3, "", ["metrics.loss ASC"]), (3, "metrics.acc > 0", None),
                                       (3, "params.nothing = 'z'", None)]:
        listed = tracking.search_runs(filter_string=filter_string, run_view_type=view, order_by=order,
                                      output_format="list")
        framed = tracking.search_runs(filter_string=filter_string, run_view_type=view, order_by=order)
        pd.testing.assert_frame_equal(framed, runs_module.runs_to_dataframe(listed))
    assert len(framed) == 0 and "run_id" in framed.columns


def test_search_runs_bad_filter_names_the_problem(tracking):
    with pytest.raises(InvalidFilter, match="foo"):
        tracking.search_runs(filter_string="foo.bar = 1")
    with pytest.raises(InvalidFilter):
        tracking.search_runs(filter_string="metrics.rmse < 'abc'")


def test_search_sees_runs_logged_by_another_process(tracking, repo):
    tracking.search_runs()  # build the index first
    out = run_python("import gitml\nwith gitml.start_run():\n    gitml.log_metric('other', 7)\n", repo)
    assert out.returncode == 0, out.stderr
    runs = tracking.search_runs(filter_string="metrics.other = 7", output_format="list")
    assert len(runs) == 1


def test_index_is_derived_and_rebuilt(tracking, repo):
    with tracking.start_run() as run:
        tracking.log_metric("m", 1)
    from gitml.tracking import runs as api
    from gitml.tracking.testing import reset

    api.index_for(api.open_repo(repo))  # the index file exists
    reset()  # closes and forgets this process's index
    tracking.set_tracking_uri(repo)
    (repo / ".git" / "gitml" / "index.sqlite").unlink()
    found = tracking.search_runs(output_format="list")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_delete_and_restore_run(tracking):
    with tracking.start_run() as run:
        pass
    rid = run.info.run_id
    tracking.delete_run(rid)
    assert tracking.get_run(rid).info.lifecycle_stage == "deleted"
    assert tracking.search_runs(output_format="list") == []
    deleted = tracking.search_runs(run_view_type=tracking.ViewType.DELETED_ONLY, output_format="list")
    assert [r.info.run_id for r in deleted] == [rid]
    tracking.Client().restore_run(rid)
    assert [r.info.run_id for r in tracking.search_runs(output_format="list")] == [rid]


def test_run_id_prefix_unknown_and_ambiguous(tracking):
    with tracking.start_run() as run:
        pass
    rid = run.info.run_id
    assert tracking.get_run(rid[:8]).info.run_id == rid
    with pytest.raises(RunNotFound, match="f" * 32):
        tracking.get_run("f" * 32)
    with pytest.raises(RunNotFound, match="nothex"):
        tracking.get_run("nothex")
    for _ in range(20):
        with tracking.start_run():
            pass
    ids = [r.info.run_id for r in tracking.search_runs(output_format="list")]
    shared = next((a[:4] for a in ids for b in ids if a != b and a[:4] == b[:4]), None)
    if shared is not None:
        with pytest.raises(AmbiguousRunId):
            tracking.get_run(shared)


def test_experiments(tracking):
    exp = tracking.set_experiment("sweep")
    assert exp.name == "sweep" and exp.experiment_id != "0"
    assert tracking.set_experiment("sweep").experiment_id == exp.experiment_id
    with tracking.start_run() as run:
        tracking.log_metric("m", 1)
    assert tracking.get_run(run.info.run_id).info.experiment_id == exp.experiment_id
    assert len(tracking.search_runs(output_format="list")) == 1
    assert len(tracking.search_runs(experiment_ids=["0"], output_format="list")) == 0
    assert len(tracking.search_runs(experiment_names=["sweep"], output_format="list")) == 1
    names = [e.name for e in tracking.search_experiments()]
    assert names == ["sweep", "Default"]  # MLflow's default order: last update first
    with pytest.raises(InvalidName, match="sweep"):
        tracking.create_experiment("sweep")


def test_experiments_created_in_one_millisecond_list_newest_first(tracking, monkeypatch):
    # ids derive from names, so creation times must carry the order (MLflow: sequential ids)
    import gitml.tracking.experiments as experiments

    monkeypatch.setattr(experiments.time, "time", lambda: 1_700_000_000.0)  # a clock that stands still
    created = [f"exp-{i}" for i in range(6)]
    for name in created:
        tracking.create_experiment(name)
    exps = tracking.search_experiments()
    assert [e.name for e in exps] == [*reversed(created), "Default"]
    times = [e.creation_time for e in exps[:-1]]
    assert times == sorted(set(times), reverse=True)


def test_client_api(tracking):
    from gitml import Metric, Param, RunTag

    client = tracking.Client()
    run = client.create_run("0", run_name="from-client", tags={"k": "v"})
    rid = run.info.run_id
    client.log_batch(rid, metrics=[Metric("m", 1.5, 123, 0), Metric("m", 2.5, 124, 1)],
                     params=[Param("p", "1")], tags=[RunTag("t", "x")])
    client.log_metric(rid, "single", 3.0)
    client.set_terminated(rid)
    got = client.get_run(rid)
    assert got.info.status == "FINISHED" and got.info.run_name == "from-client"
    assert got.data.metrics == {"m": 2.5, "single": 3.0}
    assert got.data.params == {"p": "1"} and got.data.tags["t"] == "x" and got.data.tags["k"] == "v"
    assert [m.value for m in client.get_metric_history(rid, "m")] == [1.5, 2.5]
    assert [r.info.run_id for r in client.search_runs("0")] == [rid]


def test_git_diff_of_two_runs_reads_as_run_diff(tracking, repo):
    ids = []
    for alpha in (0.1, 0.2):
        with tracking.start_run() as run:
            tracking.log_param("alpha", alpha)
            tracking.log_metric("rmse", alpha * 2)
        ids.append(run.info.run_id)
    diff = git(repo, "diff", run_rev(repo, ids[0]), run_rev(repo, ids[1]), "--", "params.json", "metrics")
    assert '-  "alpha": "0.1"' in diff and '+  "alpha": "0.2"' in diff
    assert "metrics/rmse/000000.tsv" in diff


def test_fsck_strict_clean_and_notes_readable(tracking, repo):
    for i in range(3):
        with tracking.start_run(run_name=f"r{i}"):
            tracking.log_param("i", i)
            for step in range(50):
                tracking.log_metric("loss", 1 / (step + 1), step=step)
                tracking.log_metric("sub/metric", step)
    tracking.Client().delete_run(tracking.search_runs(output_format="list")[0].info.run_id)
    git(repo, "fsck", "--strict", "--no-dangling")
    log = git(repo, "log", "--notes=gitml", "-1")
    assert "Notes (gitml):" in log
    assert log.count("FINISHED") == 3 and '"r0"' in log and "loss=0.02" in log
    assert "[deleted]" in log


def test_not_a_repository(tmp_path):
    import gitml

    gitml.set_tracking_uri(tmp_path)
    try:
        with pytest.raises(NotARepository, match=str(tmp_path)):
            gitml.start_run()
    finally:
        gitml.set_tracking_uri(None)


def test_import_gitml_does_not_import_heavy_modules(repo):
    code = ("import sys, gitml\n"
            "heavy = [m for m in ('pygit2', 'pandas', 'click', 'sqlite3', 'yaml', 'mlflow') if m in sys.modules]\n"
            "print(heavy)")
    out = run_python(code, repo)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    # issue 16: `gitml --help` and the flavor modules never import mlflow (the optional plugin) either
    code = ("import atexit, runpy, sys\n"
            "import gitml.sklearn, gitml.xgboost, gitml.lightgbm, gitml.pytorch\n"
            "atexit.register(lambda: print('MLFLOW', 'mlflow' in sys.modules))\n"
            "sys.argv = ['gitml', '--help']\n"
            "runpy.run_module('gitml', run_name='__main__')\n")
    out = run_python(code, repo)
    assert "MLFLOW False" in out.stdout, out.stdout + out.stderr


def test_reindex_rebuilds_lost_notes(tracking, repo):
    with tracking.start_run(run_name="keep") as run:
        tracking.log_metric("m", 2)
    git(repo, "update-ref", "-d", "refs/notes/gitml")
    assert "Notes (gitml)" not in git(repo, "log", "--notes=gitml", "-1")
    from gitml.tracking import runs as api

    assert api.reindex(api.open_repo(repo)) == (1, 1)
    assert f"run {run.info.run_id} FINISHED \"keep\" m=2" in git(repo, "log", "--notes=gitml", "-1")


def test_forked_child_does_not_end_parents_run(tracking, repo):
    import os

    with tracking.start_run() as run:
        tracking.log_metric("parent", 1)
        pid = os.fork()
        if pid == 0:  # child: log into the parent's run, then exit normally
            try:
                tracking.log_metric("child", 2)
                from gitml.tracking import process

                process._close_all_at_exit()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert tracking.get_run(run.info.run_id).info.status == "RUNNING"
    got = tracking.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"parent": 1.0, "child": 2.0}


def test_run_id_prefix_accepted_for_logging(tracking, repo):
    with tracking.start_run() as run:
        pass
    client = tracking.Client()
    client.log_metric(run.info.run_id[:8], "late", 1.0)
    client.flush()
    assert client.get_run(run.info.run_id).data.metrics == {"late": 1.0}
    assert not list((repo / ".git" / "gitml" / "live").glob(run.info.run_id[:8] + ".*"))


def test_settings_from_git_config_and_env(tracking, repo, monkeypatch):
    from gitml import settings
    from gitml.errors import InvalidValue
    from gitml.tracking import runs as api

    r = api.open_repo(repo)
    git(repo, "config", "gitml.snapshotmaxfilesize", "123")
    assert settings.get("snapshot_max_file_size", r) == 123
    monkeypatch.setenv("GITML_SNAPSHOT_MAX_FILE_SIZE", "456")
    assert settings.get("snapshot_max_file_size", r) == 456
    monkeypatch.delenv("GITML_SNAPSHOT_MAX_FILE_SIZE")
    git(repo, "config", "gitml.snapshotmaxfilesize", "lots")
    with pytest.raises(InvalidValue, match="git config gitml.snapshotmaxfilesize='lots'"):
        settings.get("snapshot_max_file_size", r)


def test_run_and_experiment_settings_are_read_at_each_call(tracking, repo, monkeypatch):
    """GITML_EXPERIMENT_ID/_NAME and GITML_RUN_ID count when a run starts, not when gitml is imported,
    and never come from git config (issue 15: every variable gitml reads is a setting)."""
    git(repo, "config", "gitml.experimentname", "from-config")
    with tracking.start_run() as first:
        pass
    assert first.info.experiment_id == "0"
    monkeypatch.setenv("GITML_EXPERIMENT_NAME", "from-env")
    with tracking.start_run() as named:
        pass
    assert tracking.get_experiment(named.info.experiment_id).name == "from-env"
    monkeypatch.setenv("GITML_EXPERIMENT_ID", "0")  # wins over the name
    with tracking.start_run() as by_id:
        pass
    assert by_id.info.experiment_id == "0"
    monkeypatch.setenv("GITML_RUN_ID", named.info.run_id)
    with tracking.start_run() as resumed:
        tracking.log_param("again", "1")
    assert resumed.info.run_id == named.info.run_id
    assert tracking.get_run(named.info.run_id).data.params == {"again": "1"}


def test_garbled_live_log_is_set_aside(tracking, repo):
    live = repo / ".git" / "gitml" / "live"
    live.mkdir(parents=True, exist_ok=True)
    (live / "junk.log").write_text("not a gitml log\n")
    tracking.search_runs()  # any read recovers first
    assert not (live / "junk.log").exists()
    assert (repo / ".git" / "gitml" / "live-failed" / "junk.log").read_text() == "not a gitml log\n"


def _run_refs(repo: Path) -> list[str]:
    return git_run_ids(repo)


def test_a_refused_run_name_creates_no_run(repo):
    """Issue 14 (10): start_run(run_name='x'*9000) raised, yet a RUNNING run was committed at exit."""
    out = run_python("import gitml\ntry:\n    gitml.start_run(run_name='x' * 9000)\nexcept gitml.errors.InvalidValue as e:\n"
                     "    print('refused:', e)\n", repo)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused: Invalid value") and "8000" in out.stdout
    assert _run_refs(repo) == []
    assert list((repo / ".git" / "gitml" / "live").glob("*.log")) == []


@pytest.mark.parametrize("name,value", [("GITML_FLUSH_INTERVAL", "soon"), ("GITML_FLUSH_INTERVAL", "-1"),
                                        ("GITML_FLUSH_INTERVAL", "nan"), ("GITML_NOTE_METRICS", "lots"),
                                        ("GITML_SNAPSHOT_MAX_FILE_SIZE", "1e9"), ("GITML_ALLOW_PICKLE", "maybe")])
def test_a_bad_setting_is_a_one_line_error_before_anything_is_logged(repo, name, value):
    """Issue 14 (13): GITML_FLUSH_INTERVAL=soon made the exit commit fail and the next command
    silently delete the live log. Settings are checked when gitml opens the repository: a
    one-line error naming the variable, and no run or live log is left behind."""
    script = "import gitml\nwith gitml.start_run():\n    gitml.log_metric('loss', 1.0)\n"
    out = run_python(script, repo, env={name: value})
    assert out.returncode == 1 and f"{name}={value!r}" in out.stderr
    cli = subprocess.run([sys.executable, "-m", "gitml", "runs", "list"], cwd=repo, capture_output=True, text=True,
                         env={**os.environ, name: value})
    assert cli.returncode == 1 and cli.stderr.count("\n") == 1 and cli.stderr.startswith(f"Error: Setting {name}=")
    assert _run_refs(repo) == [] and list((repo / ".git" / "gitml").rglob("*.log")) == []
    assert json.loads(gitml_cli(repo, "runs", "list", "--json").stdout) == []


def test_a_bad_setting_in_git_config_leaves_no_live_log(repo):
    """Issue 14 (13): the same rule for a value in git config, read when the first writer starts."""
    git(repo, "config", "gitml.flushinterval", "soon")
    out = run_python("import gitml\ngitml.start_run()\n", repo)
    assert out.returncode == 1 and "git config gitml.flushinterval='soon'" in out.stderr
    assert _run_refs(repo) == [] and list((repo / ".git" / "gitml").rglob("*.log")) == []


def _log_runs(repo: Path, n: int) -> list[str]:
    code = (f"import gitml\nfor i in range({n}):\n    with gitml.start_run(run_name=f'r{{i}}') as r:\n"
            "        gitml.log_param('i', i)\n        gitml.log_metric('loss', 1.0 / (i + 1))\n        print(r.info.run_id)\n")
    out = run_python(code, repo)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("damage", ["not-a-database", "torn", "page-garbage"])
def test_a_damaged_index_is_rebuilt_from_the_refs(repo, damage):
    """Issue 14 (12): a corrupted index.sqlite made every search and `gitml reindex` fail with
    "unexpected DatabaseError". The index is derived: a damaged one is deleted and rebuilt from the
    run refs, with a one-line warning."""
    ids = _log_runs(repo, 5)
    index = repo / ".git" / "gitml" / "index.sqlite"
    run_python("import gitml\ngitml.search_runs()\nimport sqlite3\n"
               f"sqlite3.connect({str(index)!r}).execute('PRAGMA wal_checkpoint(TRUNCATE)')\n", repo)
    data = bytearray(index.read_bytes())
    assert len(data) >= 4096 * 3
    if damage == "not-a-database":
        data = bytearray(b"garbage " * 1000)
    elif damage == "torn":
        data = data[: len(data) // 2 + 100]
    else:
        data[4096:4096 * 3] = os.urandom(4096 * 2)  # b-tree pages of the tables
    index.write_bytes(bytes(data))
    out = gitml_cli(repo, "runs", "list", "--json")
    assert sorted(r["info"]["run_id"] for r in json.loads(out.stdout)) == sorted(ids)
    assert "damaged" in out.stderr and str(index) in out.stderr and out.stderr.count("\n") == 1
    found = run_python("import gitml\nprint(len(gitml.search_runs(filter_string='params.i = \"3\"')))\n", repo)
    assert found.stdout.strip() == "1", found.stderr
    index.write_bytes(b"garbage " * 1000)
    assert gitml_cli(repo, "reindex").stdout.startswith("indexed 5 runs")


def test_a_read_only_gitml_dir_still_allows_reads(repo, tmp_path):
    """Issue 14 (12): with .git/gitml not writable (another user's repository, a read-only
    mount), searches read the runs into an index in memory, with a one-line warning."""
    import shutil
    import tempfile

    ids = _log_runs(repo, 3)
    shared = Path(tempfile.mkdtemp(prefix="gitml-ro-"))
    try:
        os.chmod(shared, 0o755)
        target = shared / "repo"
        shutil.copytree(repo, target)
        (target / ".git" / "gitml" / "index.sqlite").write_bytes(b"stale and damaged" * 100)
        as_other = []
        if os.geteuid() == 0:  # root ignores file modes: read as another user instead
            as_other = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        else:
            for d in [target / ".git" / "gitml", *(target / ".git" / "gitml").rglob("*")]:
                if d.is_dir():
                    d.chmod(0o555)
        home = shared / "home"
        home.mkdir()
        (home / ".gitconfig").write_text(f"[safe]\n\tdirectory = *\n[user]\n\tname = x\n\temail = x@y\n")
        os.chmod(home, 0o755)
        env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
        probe = subprocess.run([*as_other, sys.executable, "-c", "import gitml"], capture_output=True, env=env)
        if probe.returncode != 0:
            pytest.skip(f"cannot run Python as another user here: {probe.stderr[-200:]!r}")
        out = subprocess.run([*as_other, sys.executable, "-m", "gitml", "-C", str(target), "runs", "list", "--json"],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        assert sorted(r["info"]["run_id"] for r in json.loads(out.stdout)) == sorted(ids)
        assert "cannot write the run index" in out.stderr and out.stderr.count("\n") == 1, out.stderr
        shown = subprocess.run([*as_other, sys.executable, "-m", "gitml", "-C", str(target), "runs", "show", ids[0][:8]],
                               capture_output=True, text=True, env=env)
        assert shown.returncode == 0 and ids[0] in shown.stdout, shown.stderr
    finally:
        for d in shared.rglob("*"):
            if d.is_dir():
                d.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)


def test_a_run_with_thousands_of_metric_keys_is_written_as_one_pack(repo):
    """Issue 14 (9): end_run cost 0.5 ms per distinct metric key (one loose blob and tree each;
    20k keys: 10 s). A flush that changes many files writes its objects as one pack."""
    code = ("import gitml\nwith gitml.start_run() as r:\n    for i in range(3000):\n"
            "        gitml.log_metric(f'layer{i % 300}/stat{i}', float(i), step=i % 5)\nprint(r.info.run_id)\n")
    out = run_python(code, repo, env={"GITML_FLUSH_INTERVAL": "0"})
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    counts = dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())
    assert int(counts["in-pack"]) >= 6000 and int(counts["count"]) < 50, counts
    git(repo, "fsck", "--strict", "--no-dangling")
    check = run_python(f"import gitml\nc = gitml.Client()\nr = c.get_run('{run_id}')\n"
                       "print(len(r.data.metrics), r.data.metrics['layer7/stat2107'])\n"
                       f"print([(m.step, m.value) for m in c.get_metric_history('{run_id}', 'layer7/stat2107')])\n"
                       f"c.log_metric('{run_id}', 'layer7/stat2107', 1.5, step=9)\n"
                       f"print(c.get_metric_history('{run_id}', 'layer7/stat2107')[-1].value)\n", repo)
    assert check.stdout.split("\n")[:3] == ["3000 2107.0", "[(2, 2107.0)]", "1.5"], check.stderr
    git(repo, "fsck", "--strict", "--no-dangling")


def test_run_keys_follow_new_runs(tracking, repo):
    import time

    from gitml.tracking import runs as runs_module

    with tracking.start_run():
        tracking.log_param("alpha", 1)
    handle = runs_module.open_repo(str(repo))
    time.sleep(1.1)  # past the index's racy second, so its stamp is trusted and the keys are kept
    assert runs_module.run_keys(handle)["params"] == ["alpha"]
    assert runs_module.run_keys(handle)["params"] == ["alpha"]  # from memory
    with tracking.start_run():
        tracking.log_param("beta", 2)
        tracking.log_metric("loss", 0.1)
    keys = runs_module.run_keys(handle)
    assert keys["params"] == ["alpha", "beta"] and keys["metrics"] == ["loss"]
