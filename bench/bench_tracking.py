#!/usr/bin/env python
"""Benchmark gitml's tracking core against MLflow (sqlite backend) in one run.

The same workloads run on both, each in fresh temporary stores:

  a  log_metric cost per call inside one run (hot loop, and amortized with
     end_run and the final commit)
  b  create + finish a run with 2 params, 2 metrics and 1 tag
  c  `import` time and CLI `--version` time (subprocesses)
  d  search_runs with a filter and order_by over N runs (10k), and with no
     filter; cold (first search after creating), warm (median of repeats) and
     in a fresh process

Prints gitml time, MLflow time and the ratio MLflow/gitml ("x faster") for
each, then a summary table with the targets of issue 2, and writes every
sample to --json. See bench/README.md.

    python bench/bench_tracking.py               # full sizes, ~5-10 minutes
    python bench/bench_tracking.py --quick       # small sizes, about a minute
    python bench/bench_tracking.py --profile /tmp/prof   # + cProfile of gitml's side
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# No network and no chatter from MLflow, here and in the subprocesses.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

FILTER = "metrics.rmse < 0.5 and params.alpha = '0.3'"
ORDER_BY = ["metrics.rmse DESC"]
EXPERIMENT = "bench"

FULL = {
    "metric_calls_gitml": 100_000,
    "metric_calls_mlflow": 2_000,
    "runs_gitml": 1_000,
    "runs_mlflow": 200,
    "search_runs": 10_000,
    "subprocess_reps": 5,
    "search_process_reps": 3,
}
QUICK = {
    "metric_calls_gitml": 100_000,
    "metric_calls_mlflow": 200,
    "runs_gitml": 200,
    "runs_mlflow": 30,
    "search_runs": 1_000,
    "subprocess_reps": 3,
    "search_process_reps": 1,
}

# Issue 2's targets for gitml: summary row -> (limit, unit).
TARGETS = {
    "log_metric_amortized": 5.0,  # us/call
    "run_create_finish": 2.0,  # ms/run
    "search_filtered_warm": 100.0,  # ms
    "import": 100.0,  # ms
    "cli_version": 250.0,  # ms
}


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def now() -> float:
    return time.perf_counter()


def say(msg: str = "") -> None:
    print(msg, flush=True)


# -- fresh stores ------------------------------------------------------------------


class Workspace:
    """Fresh temporary directories for one repetition of one workload."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._n = 0

    def new_dir(self, label: str) -> Path:
        self._n += 1
        d = self.root / f"{self._n:03d}-{label}"
        d.mkdir(parents=True)
        return d


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def new_git_repo(ws: Workspace, label: str) -> Path:
    """A fresh `git init` repo with one commit (so runs have a source commit)."""
    d = ws.new_dir(label) / "repo"
    d.mkdir()
    git(d, "init", "-q", "-b", "main")
    git(d, "config", "user.name", "gitml bench")
    git(d, "config", "user.email", "bench@example.com")
    git(d, "config", "commit.gpgsign", "false")
    (d / "README.md").write_text("bench project\n")
    (d / "train.py").write_text("print('train')\n")
    git(d, "add", "-A")
    git(d, "commit", "-q", "-m", "initial")
    return d


class MlflowDbs:
    """Fresh MLflow sqlite databases, copied from one migrated template.

    Creating an MLflow sqlite database runs its migrations (seconds); that is
    setup, not workload, so it is done once and copied.
    """

    def __init__(self, ws: Workspace) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.ws = ws
        d = ws.new_dir("mlflow-template")
        self.template = d / "mlflow.db"
        mlflow.set_tracking_uri(f"sqlite:///{self.template}")
        MlflowClient().search_experiments()

    def fresh(self, label: str) -> tuple[str, str, Path]:
        """(tracking uri, experiment id, directory) of a new database with experiment 'bench'."""
        import mlflow
        from mlflow import MlflowClient

        d = self.ws.new_dir(label)
        for f in self.template.parent.iterdir():
            if f.name.startswith("mlflow.db"):
                shutil.copy(f, d / f.name)
        uri = f"sqlite:///{d / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        exp_id = MlflowClient().create_experiment(EXPERIMENT, artifact_location=str(d / "artifacts"))
        mlflow.set_experiment(experiment_id=exp_id)
        return uri, exp_id, d


def gitml_fresh(ws: Workspace, label: str) -> tuple[Path, str]:
    """A fresh repo, made gitml's tracking target, with experiment 'bench' active."""
    import gitml

    repo = new_git_repo(ws, label)
    gitml.set_tracking_uri(str(repo))
    exp = gitml.set_experiment(EXPERIMENT)
    return repo, exp.experiment_id


# -- (a) log_metric ----------------------------------------------------------------


def values(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


def _log_metric_loop(lib: Any, n: int, finish: Callable[[], None]) -> dict[str, float]:
    """Workload (a) on either library: one run, n log_metric calls, then end (+ finish)."""
    vals = values(n)
    log_metric = lib.log_metric
    t0 = now()
    lib.start_run()
    t1 = now()
    for i in range(n):
        log_metric("loss", vals[i], step=i)
    t2 = now()
    lib.end_run()
    finish()
    t3 = now()
    return {
        "calls": n,
        "start_run_s": t1 - t0,
        "loop_s": t2 - t1,
        "end_s": t3 - t2,
        "hot_us": (t2 - t1) / n * 1e6,
        "amortized_us": (t3 - t1) / n * 1e6,
    }


def a_gitml(ws: Workspace, n: int) -> dict[str, float]:
    import gitml

    gitml_fresh(ws, "a-gitml")
    return _log_metric_loop(gitml, n, gitml.flush)  # flush: git notes are written in batches


def a_mlflow(dbs: MlflowDbs, n: int) -> dict[str, float]:
    import mlflow

    dbs.fresh("a-mlflow")
    return _log_metric_loop(mlflow, n, lambda: None)


# -- (b) run create + finish ----------------------------------------------------------


def b_loop(lib: Any, n: int) -> None:
    for i in range(n):
        with lib.start_run():
            lib.log_param("alpha", "0.5")
            lib.log_param("l1_ratio", str(i))
            lib.log_metric("rmse", 0.75)
            lib.log_metric("r2", 0.25)
            lib.set_tag("model", "ridge")


def b_gitml(ws: Workspace, n: int) -> dict[str, float]:
    import gitml

    gitml_fresh(ws, "b-gitml")
    t0 = now()
    b_loop(gitml, n)
    t1 = now()
    gitml.flush()  # the batched git notes; runs are committed at end_run already
    t2 = now()
    return {"runs": n, "loop_s": t1 - t0, "flush_s": t2 - t1, "per_run_ms": (t2 - t0) / n * 1e3}


def b_mlflow(dbs: MlflowDbs, n: int) -> dict[str, float]:
    import mlflow

    dbs.fresh("b-mlflow")
    t0 = now()
    b_loop(mlflow, n)
    t1 = now()
    return {"runs": n, "loop_s": t1 - t0, "flush_s": 0.0, "per_run_ms": (t1 - t0) / n * 1e3}


# -- (c) import and CLI ------------------------------------------------------------------


_PYCACHE: Path | None = None


def subprocess_env() -> dict[str, str]:
    """The environment for timed subprocesses: bytecode cached, as an installed package has it.

    With PYTHONDONTWRITEBYTECODE set (common in containers and CI) an editable
    gitml would be compiled from source on every start while MLflow's wheel
    ships its .pyc files. A private PYTHONPYCACHEPREFIX under the bench's tmp
    dir gives both a bytecode cache without writing into the source tree.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if _PYCACHE is not None:
        env["PYTHONPYCACHEPREFIX"] = str(_PYCACHE)
    return env


def time_cmd(argv: list[str], reps: int, cwd: Path) -> list[float]:
    """Wall times (s) of ``reps`` runs of ``argv``, after one untimed run (fills the bytecode cache)."""
    samples = []
    env = subprocess_env()
    for i in range(reps + 1):
        t0 = now()
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
        dt = now() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
        if i:
            samples.append(dt)
    return samples


def console_script(name: str) -> list[str]:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", name]


def c_startup(ws: Workspace, reps: int) -> dict[str, Any]:
    cwd = ws.new_dir("c")
    py = sys.executable
    out: dict[str, Any] = {}
    cases = {
        "python_baseline": [py, "-c", "pass"],
        "gitml_import": [py, "-c", "import gitml"],
        "mlflow_import": [py, "-c", "import mlflow"],
        # gitml's package import is lazy (PEP 562); this is what a script pays
        # once it touches the API (pygit2, the tracking modules).
        "gitml_import_api": [py, "-c", "import gitml; gitml.start_run"],
        "gitml_cli_version": [*console_script("gitml"), "--version"],
        "mlflow_cli_version": [*console_script("mlflow"), "--version"],
    }
    for name, argv in cases.items():
        samples = time_cmd(argv, reps, cwd)
        out[name] = {"argv": argv, "samples_s": samples, "median_ms": median(samples) * 1e3}
        say(f"    {name:<20} {median(samples) * 1e3:8.1f} ms   ({' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv))})")
    return out


# -- (d) search ----------------------------------------------------------------------------


def dataset(n: int, seed: int = 42) -> list[dict[str, dict[str, Any]]]:
    """The runs searched by (d): identical on both sides."""
    rng = random.Random(seed)
    alphas = ["0.1", "0.2", "0.3", "0.4", "0.5"]
    models = ["ridge", "lasso", "elasticnet"]
    return [
        {
            "params": {"alpha": rng.choice(alphas), "l1_ratio": f"{rng.random():.4f}"},
            "metrics": {"rmse": rng.random(), "r2": rng.random()},
            "tags": {"model": rng.choice(models)},
        }
        for _ in range(n)
    ]


def populate_gitml(data: list[dict[str, dict[str, Any]]]) -> float:
    import gitml

    t0 = now()
    for run in data:
        with gitml.start_run():
            gitml.log_params(run["params"])
            gitml.log_metrics(run["metrics"])
            gitml.set_tags(run["tags"])
    gitml.flush()
    return now() - t0


def populate_mlflow_api(exp_id: str, data: list[dict[str, dict[str, Any]]]) -> float:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient()
    t0 = now()
    for run in data:
        r = client.create_run(exp_id)
        ts = int(time.time() * 1000)
        client.log_batch(
            r.info.run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in run["metrics"].items()],
            params=[Param(k, v) for k, v in run["params"].items()],
            tags=[RunTag(k, v) for k, v in run["tags"].items()],
        )
        client.set_terminated(r.info.run_id)
    return now() - t0


def populate_mlflow_orm(uri: str, exp_id: str, art: Path, data: list[dict[str, dict[str, Any]]]) -> float:
    """Insert the runs with MLflow's own ORM models in bulk (what create_run+log_batch write)."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, str(art))
    user = os.environ.get("USER", "bench")
    t0 = now()
    base = int(time.time() * 1000)
    rows: list[Any] = []
    for i, run in enumerate(data):
        rid = uuid.uuid4().hex
        start = base + i
        rows.append(
            SqlRun(
                run_uuid=rid, name=f"run-{i}", source_type="LOCAL", source_name="bench_tracking.py",
                entry_point_name="", user_id=user, status="FINISHED", start_time=start,
                end_time=start + 1, source_version="", lifecycle_stage="active",
                artifact_uri=f"{art}/{exp_id}/{rid}/artifacts", experiment_id=int(exp_id),
            )
        )
        tags = {"mlflow.runName": f"run-{i}", "mlflow.user": user,
                "mlflow.source.name": "bench_tracking.py", "mlflow.source.type": "LOCAL",
                **run["tags"]}
        rows += [SqlTag(key=k, value=v, run_uuid=rid) for k, v in tags.items()]
        rows += [SqlParam(key=k, value=v, run_uuid=rid) for k, v in run["params"].items()]
        for k, v in run["metrics"].items():
            rows.append(SqlMetric(key=k, value=v, timestamp=start, step=0, is_nan=False, run_uuid=rid))
            rows.append(SqlLatestMetric(key=k, value=v, timestamp=start, step=0, is_nan=False, run_uuid=rid))
    # Runs first (foreign keys), then the rest.
    with store.ManagedSessionMaker(read_only=False) as session:
        session.add_all([r for r in rows if isinstance(r, SqlRun)])
    with store.ManagedSessionMaker(read_only=False) as session:
        session.add_all([r for r in rows if not isinstance(r, SqlRun)])
    store.engine.dispose()
    return now() - t0


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = now()
    out = fn()
    return now() - t0, out


def search_series(search: Callable[[str], Any], warm_reps: int) -> dict[str, Any]:
    """Cold (first) then warm searches, filtered and unfiltered.

    ``warm_reps=0`` times each search once: its one (first) call stands for the
    warm figure too, and ``warm_is_first`` says so.
    """
    out: dict[str, Any] = {}
    for name, flt in (("filtered", FILTER), ("all", "")):
        cold, df = _timed(lambda: search(flt))
        warm = [_timed(lambda: search(flt))[0] for _ in range(warm_reps)] or [cold]
        out[name] = {
            "warm_is_first": not warm_reps,
            "rows": len(df),
            "cold_s": cold,
            "warm_samples_s": warm,
            "warm_ms": median(warm) * 1e3,
            "cold_ms": cold * 1e3,
            "rmse_head": [float(x) for x in df["metrics.rmse"].head(20)] if len(df) else [],
        }
    return out


SUBPROC_SEARCH = r"""
import json, sys, time
t0 = time.perf_counter()
import {lib} as lib
import pandas  # both return DataFrames; `import mlflow` has pandas loaded already
lib.set_tracking_uri(sys.argv[1])
t1 = time.perf_counter()
df = lib.search_runs(experiment_ids=[sys.argv[2]], filter_string=sys.argv[3], order_by=[sys.argv[4]])
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "search_s": t2 - t1, "rows": len(df)}}))
"""


def search_subprocess(lib: str, uri: str, exp_id: str, reps: int, warmup: bool) -> dict[str, Any]:
    samples = []
    env = subprocess_env()
    first = 0 if warmup else 1
    for i in range(first, reps + 1):  # i == 0: untimed, fills the bytecode cache
        t0 = now()
        proc = subprocess.run(
            [sys.executable, "-c", SUBPROC_SEARCH.format(lib=lib), uri, exp_id, FILTER, ORDER_BY[0]],
            capture_output=True, text=True, env=env,
        )
        wall = now() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{lib} search subprocess failed:\n{proc.stderr}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["wall_s"] = wall
        if i:
            samples.append(res)
    return {
        "samples": samples,
        "search_ms": median([s["search_s"] for s in samples]) * 1e3,
        "wall_ms": median([s["wall_s"] for s in samples]) * 1e3,
    }


def d_search(ws: Workspace, dbs: MlflowDbs, n: int, warm_reps: int, proc_reps: int,
             populate: str, warmup: bool) -> dict[str, Any]:
    import gitml
    import mlflow

    data = dataset(n)
    out: dict[str, Any] = {"runs": n, "filter": FILTER, "order_by": ORDER_BY, "mlflow_populate": populate}

    repo, g_exp = gitml_fresh(ws, "d-gitml")
    g_pop = populate_gitml(data)
    say(f"    gitml : populated {n} runs via the API in {g_pop:.1f} s ({g_pop / n * 1e3:.2f} ms/run)")
    g = search_series(
        lambda f: gitml.search_runs(experiment_ids=[g_exp], filter_string=f, order_by=ORDER_BY), warm_reps
    )
    g["populate_s"] = g_pop
    g["fresh_process"] = search_subprocess("gitml", str(repo), g_exp, proc_reps, warmup)
    g["repo"] = str(repo)
    g["experiment_id"] = g_exp
    out["gitml"] = g

    uri, m_exp, mdir = dbs.fresh("d-mlflow")
    if populate == "api":
        m_pop = populate_mlflow_api(m_exp, data)
    else:
        m_pop = populate_mlflow_orm(uri, m_exp, mdir / "artifacts", data)
    say(f"    mlflow: populated {n} runs ({populate}) in {m_pop:.1f} s")
    m = search_series(
        lambda f: mlflow.search_runs(experiment_ids=[m_exp], filter_string=f, order_by=ORDER_BY), warm_reps
    )
    m["populate_s"] = m_pop
    m["fresh_process"] = search_subprocess("mlflow", uri, m_exp, proc_reps, warmup)
    out["mlflow"] = m

    # Both sides must give the same answer, or the timings mean nothing.
    for kind in ("filtered", "all"):
        same = g[kind]["rows"] == m[kind]["rows"] and g[kind]["rmse_head"] == m[kind]["rmse_head"]
        out[f"{kind}_results_agree"] = same
        if not same:
            say(f"    WARNING: {kind} search results differ: gitml {g[kind]['rows']} rows, "
                f"MLflow {m[kind]['rows']} rows; heads {g[kind]['rmse_head'][:3]} vs {m[kind]['rmse_head'][:3]}")
    return out


# -- profiling of gitml's side ----------------------------------------------------------------


def profile_to(path: Path, fn: Callable[[], Any], top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    prof.dump_stats(path)
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf).strip_dirs()
    total = st.total_tt  # type: ignore[attr-defined]
    buf.write(f"total {total:.3f} s\n")
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def run_profiles(ws: Workspace, outdir: Path, sizes: dict[str, int], search_repo: str | None,
                 search_exp: str | None, top: int) -> None:
    import gitml

    outdir.mkdir(parents=True, exist_ok=True)
    say(f"\n== cProfile of gitml's side -> {outdir}")

    gitml_fresh(ws, "prof-b")
    n = sizes["runs_gitml"]

    def b() -> None:
        b_loop(gitml, n)
        gitml.flush()

    text = profile_to(outdir / "b_run_create_finish.prof", b, top)
    (outdir / "b_run_create_finish.txt").write_text(text)
    say(f"-- (b) {n} runs create+finish\n{text}")

    gitml_fresh(ws, "prof-a")
    vals = values(sizes["metric_calls_gitml"])

    def a() -> None:
        gitml.start_run()
        for i, v in enumerate(vals):
            gitml.log_metric("loss", v, step=i)
        gitml.end_run()
        gitml.flush()

    text = profile_to(outdir / "a_log_metric.prof", a, top)
    (outdir / "a_log_metric.txt").write_text(text)
    say(f"-- (a) {len(vals)} log_metric calls + end_run\n{text}")

    if search_repo is None or search_exp is None:
        return
    # A copy of (d)'s populated repo without its index: the cold search rebuilds it.
    src = Path(search_repo)
    copy = ws.new_dir("prof-d") / "repo"
    shutil.copytree(src, copy, symlinks=True)
    shutil.rmtree(copy / ".git" / "gitml" / "live", ignore_errors=True)
    for f in (copy / ".git" / "gitml").glob("index.sqlite*"):
        f.unlink()
    gitml.set_tracking_uri(str(copy))

    def search(flt: str) -> Any:
        return gitml.search_runs(experiment_ids=[search_exp], filter_string=flt, order_by=ORDER_BY)

    text = profile_to(outdir / "d_search_cold.prof", lambda: search(FILTER), top)
    (outdir / "d_search_cold.txt").write_text(text)
    say(f"-- (d) cold filtered search (index rebuilt from refs)\n{text}")

    def warm() -> None:
        for _ in range(5):
            search(FILTER)

    text = profile_to(outdir / "d_search_warm.prof", warm, top)
    (outdir / "d_search_warm.txt").write_text(text)
    say(f"-- (d) 5 warm filtered searches\n{text}")

    def warm_all() -> None:
        for _ in range(3):
            search("")

    text = profile_to(outdir / "d_search_all_warm.prof", warm_all, top)
    (outdir / "d_search_all_warm.txt").write_text(text)
    say(f"-- (d) 3 warm unfiltered searches\n{text}")


# -- report ------------------------------------------------------------------------------------


def ratio(mlflow_v: float, gitml_v: float) -> float:
    return mlflow_v / gitml_v if gitml_v else float("nan")


def summary_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    w = res["workloads"]

    def add(key: str, label: str, unit: str, g: float, m: float | None) -> None:
        target = TARGETS.get(key)
        rows.append(
            {
                "key": key, "workload": label, "unit": unit, "gitml": g, "mlflow": m,
                "ratio": ratio(m, g) if m is not None else None, "target": target,
                "meets_target": (g <= target) if target is not None else None,
            }
        )

    if "a" in w:
        ga, ma = w["a"]["gitml"], w["a"]["mlflow"]
        add("log_metric_hot", "(a) log_metric, hot loop", "us/call", ga["hot_us"], ma["hot_us"])
        add("log_metric_amortized", "(a) log_metric incl. end_run", "us/call",
            ga["amortized_us"], ma["amortized_us"])
    if "b" in w:
        add("run_create_finish", "(b) run create+finish", "ms/run",
            w["b"]["gitml"]["per_run_ms"], w["b"]["mlflow"]["per_run_ms"])
    if "c" in w:
        c = w["c"]
        add("import", "(c) import", "ms", c["gitml_import"]["median_ms"], c["mlflow_import"]["median_ms"])
        add("import_api", "(c) import + touch API (gitml)", "ms",
            c["gitml_import_api"]["median_ms"], c["mlflow_import"]["median_ms"])
        add("cli_version", "(c) CLI --version", "ms",
            c["gitml_cli_version"]["median_ms"], c["mlflow_cli_version"]["median_ms"])
        add("python_baseline", "(c) python -c pass (baseline)", "ms",
            c["python_baseline"]["median_ms"], None)
    if "d" in w:
        d = w["d"]
        n = d["runs"]
        g, m = d["gitml"], d["mlflow"]
        add("search_filtered_cold", f"(d) search {n} filtered, cold", "ms",
            g["filtered"]["cold_ms"], m["filtered"]["cold_ms"])
        add("search_filtered_warm", f"(d) search {n} filtered, warm", "ms",
            g["filtered"]["warm_ms"], m["filtered"]["warm_ms"])
        add("search_all_cold", f"(d) search {n} all, cold", "ms", g["all"]["cold_ms"], m["all"]["cold_ms"])
        add("search_all_warm", f"(d) search {n} all, warm", "ms", g["all"]["warm_ms"], m["all"]["warm_ms"])
        add("search_filtered_fresh_process", f"(d) search {n} filtered, new process", "ms",
            g["fresh_process"]["search_ms"], m["fresh_process"]["search_ms"])
        add("populate_per_run", f"(d) populate {n} runs (gitml: API)", "ms/run",
            g["populate_s"] / n * 1e3, m["populate_s"] / n * 1e3 if d["mlflow_populate"] == "api" else None)
    return rows


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def enter_scratch(prefix: str) -> tuple[Path, str]:
    """A fresh temporary directory made the working directory (MLflow's default experiment
    points at ./mlruns: keep it in there); returns it and the working directory to go back to."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    old_cwd = os.getcwd()
    os.chdir(root)
    return root, old_cwd


def leave_scratch(root: Path, old_cwd: str, keep: bool) -> int:
    """Back to ``old_cwd``; the scratch directory removed unless ``keep``. The exit status, 0."""
    os.chdir(old_cwd)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def finish(res: dict[str, Any], summary: list[dict[str, Any]], t_start: float, path: Path | None, cwd: str) -> None:
    """Print the summary table and the elapsed time; write the results as JSON with ``--json``."""
    res["summary"] = summary
    res["meta"]["elapsed_s"] = now() - t_start
    print_summary(summary)
    say(f"\nelapsed {res['meta']['elapsed_s']:.0f} s")
    write_results(res, path, cwd)


def write_results(res: dict[str, Any], path: Path | None, cwd: str) -> None:
    """Write every sample, the medians and the summary as JSON (``--json``), relative to where the bench started."""
    if path:
        path = path if path.is_absolute() else Path(cwd) / path
        path.write_text(json.dumps(res, indent=2, default=str))
        say(f"results written to {path}")


def print_summary(rows: list[dict[str, Any]]) -> None:
    say("\n== Summary (medians; ratio = MLflow / gitml, i.e. how many times faster gitml is)")
    head = f"{'workload':<40} {'unit':<8} {'gitml':>10} {'MLflow':>10} {'ratio':>9}  {'target':>8}  ok"
    say(head)
    say("-" * len(head))
    for r in rows:
        target = f"<= {r['target']:g}" if r["target"] is not None else ""
        ok = "" if r["meets_target"] is None else ("yes" if r["meets_target"] else "NO")
        rt = f"{r['ratio']:.1f}x" if r["ratio"] is not None else "-"
        say(f"{r['workload']:<40} {r['unit']:<8} {fmt(r['gitml'], r['unit']):>10} "
            f"{fmt(r['mlflow'], r['unit']):>10} {rt:>9}  {target:>8}  {ok}")


def versions() -> dict[str, str]:
    import gitml
    import mlflow
    import pygit2

    return {
        "gitml": gitml.__version__,
        "mlflow": mlflow.__version__,
        "pygit2": pygit2.__version__,
        "libgit2": pygit2.LIBGIT2_VERSION,
        "python": sys.version.split()[0],
        "git": git(Path.cwd(), "--version"),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes; finishes in about a minute")
    ap.add_argument("--repeat", type=int, help="repetitions of (a) and (b), median reported (default 3, quick 1)")
    ap.add_argument("--only", default="abcd", help="workloads to run, e.g. 'bd' (default: abcd)")
    ap.add_argument("--search-runs", type=int, help="runs searched in (d) (default 10000, quick 1000)")
    ap.add_argument("--mlflow-populate", choices=("orm", "api"), default="orm",
                    help="how (d) fills MLflow: bulk insert with MLflow's ORM models (fast, default) "
                         "or MlflowClient create_run+log_batch+set_terminated (~40 ms/run)")
    ap.add_argument("--json", type=Path, help="write all samples and the summary here")
    ap.add_argument("--profile", type=Path, help="also cProfile gitml's side of (a), (b), (d) into this dir")
    ap.add_argument("--profile-top", type=int, default=25, help="functions shown per profile listing")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)

    sizes = dict(QUICK if args.quick else FULL)
    if args.search_runs:
        sizes["search_runs"] = args.search_runs
    reps = max(1, args.repeat if args.repeat is not None else (1 if args.quick else 3))

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    root, old_cwd = enter_scratch("gitml-bench-")
    ws = Workspace(root)
    global _PYCACHE
    _PYCACHE = root / "pycache"
    t_start = now()
    try:
        import gitml  # noqa: F401
        import mlflow  # noqa: F401
        from gitml import settings as gitml_settings

        meta = {
            "mode": "quick" if args.quick else "full",
            "repeat": reps,
            "sizes": sizes,
            "versions": versions(),
            "gitml_flush_interval_s": gitml_settings.get("flush_interval"),
            "tmp": str(root),
        }
        say(f"gitml bench ({meta['mode']}, repeat {reps}) in {root}")
        say("  " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
        say(f"  GITML_FLUSH_INTERVAL={meta['gitml_flush_interval_s']} s (default unless set)")
        dbs = MlflowDbs(ws)

        # Untimed warm-up of both sides (lazy imports, first-use caches).
        gitml_fresh(ws, "warmup")
        b_loop(gitml, 3)
        gitml.flush()
        dbs.fresh("warmup")
        b_loop(mlflow, 3)

        res: dict[str, Any] = {"meta": meta, "workloads": {}}
        w = res["workloads"]

        if "a" in args.only:
            ng, nm = sizes["metric_calls_gitml"], sizes["metric_calls_mlflow"]
            say(f"\n== (a) log_metric: gitml {ng:,} calls, MLflow {nm:,} calls per run")
            gs, ms = [], []
            for i in range(reps):
                gs.append(a_gitml(ws, ng))
                ms.append(a_mlflow(dbs, nm))
                say(f"    rep {i + 1}: gitml hot {gs[-1]['hot_us']:.2f} us, amortized {gs[-1]['amortized_us']:.2f} us "
                    f"(end_run {gs[-1]['end_s'] * 1e3:.0f} ms) | MLflow {ms[-1]['hot_us'] / 1e3:.2f} ms/call")
            w["a"] = {
                "gitml": {"samples": gs, "hot_us": median([s["hot_us"] for s in gs]),
                          "amortized_us": median([s["amortized_us"] for s in gs]),
                          "end_ms": median([s["end_s"] for s in gs]) * 1e3},
                "mlflow": {"samples": ms, "hot_us": median([s["hot_us"] for s in ms]),
                           "amortized_us": median([s["amortized_us"] for s in ms]),
                           "end_ms": median([s["end_s"] for s in ms]) * 1e3},
            }
            a = w["a"]
            say(f"    median: gitml {a['gitml']['hot_us']:.2f} us/call hot, {a['gitml']['amortized_us']:.2f} us/call "
                f"amortized | MLflow {a['mlflow']['hot_us']:.0f} us/call | "
                f"{ratio(a['mlflow']['hot_us'], a['gitml']['amortized_us']):.0f}x")

        if "b" in args.only:
            ng, nm = sizes["runs_gitml"], sizes["runs_mlflow"]
            say(f"\n== (b) run create+finish (2 params, 2 metrics, 1 tag): gitml {ng} runs, MLflow {nm} runs")
            gs, ms = [], []
            for i in range(reps):
                gs.append(b_gitml(ws, ng))
                ms.append(b_mlflow(dbs, nm))
                say(f"    rep {i + 1}: gitml {gs[-1]['per_run_ms']:.3f} ms/run | MLflow {ms[-1]['per_run_ms']:.2f} ms/run")
            w["b"] = {
                "gitml": {"samples": gs, "per_run_ms": median([s["per_run_ms"] for s in gs])},
                "mlflow": {"samples": ms, "per_run_ms": median([s["per_run_ms"] for s in ms])},
            }
            b = w["b"]
            say(f"    median: gitml {b['gitml']['per_run_ms']:.3f} ms/run | MLflow {b['mlflow']['per_run_ms']:.2f} ms/run"
                f" | {ratio(b['mlflow']['per_run_ms'], b['gitml']['per_run_ms']):.1f}x")

        if "c" in args.only:
            say(f"\n== (c) startup, median of {sizes['subprocess_reps']} subprocess runs")
            w["c"] = c_startup(ws, sizes["subprocess_reps"])

        search_repo = search_exp = None
        if "d" in args.only:
            n = sizes["search_runs"]
            say(f"\n== (d) search_runs over {n} runs: filter {FILTER!r}, order_by {ORDER_BY}")
            d = d_search(ws, dbs, n, max(3, reps), sizes["search_process_reps"], args.mlflow_populate,
                         warmup=not args.quick)
            w["d"] = d
            for kind in ("filtered", "all"):
                g, m = d["gitml"][kind], d["mlflow"][kind]
                say(f"    {kind:<8} ({g['rows']} rows): gitml cold {g['cold_ms']:.0f} ms, warm {g['warm_ms']:.1f} ms | "
                    f"MLflow cold {m['cold_ms']:.0f} ms, warm {m['warm_ms']:.0f} ms | "
                    f"warm {ratio(m['warm_ms'], g['warm_ms']):.1f}x")
            gp, mp = d["gitml"]["fresh_process"], d["mlflow"]["fresh_process"]
            say(f"    new process, filtered: gitml search {gp['search_ms']:.0f} ms (wall {gp['wall_ms']:.0f} ms) | "
                f"MLflow search {mp['search_ms']:.0f} ms (wall {mp['wall_ms']:.0f} ms)")
            search_repo, search_exp = d["gitml"]["repo"], d["gitml"]["experiment_id"]

        finish(res, summary_rows(res), t_start, args.json, old_cwd)

        if args.profile:
            outdir = args.profile if args.profile.is_absolute() else Path(old_cwd) / args.profile
            run_profiles(ws, outdir, sizes, search_repo, search_exp, args.profile_top)
    finally:
        leave_scratch(root, old_cwd, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
