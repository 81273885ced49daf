#!/usr/bin/env python
"""Benchmark real MLflow client code on the gitml plugin (MLFLOW_TRACKING_URI=gitml:) vs MLflow's sqlite store.

The same `import mlflow` workloads run in one process, once with the
tracking URI ``gitml:<fresh repo>`` and once with ``sqlite:///<fresh db>``:

  a  mlflow.log_metric per call inside one run (hot loop, and amortized with
     end_run, which commits the run to git)
  b  create + finish a run (mlflow.start_run ... 2 log_param, 2 log_metric,
     1 set_tag ... end)
  c  search_runs with a filter and order_by over N runs (10k), and with no
     filter: MlflowClient.search_runs (Run entities: the store's work, the
     target's measure) and mlflow.search_runs (a DataFrame, which MLflow
     assembles the same way on both sides); first call and warm (median of
     repeats). gitml's side is filled with gitml's own API, MLflow's with a
     bulk insert through its ORM models, as bench_tracking.py does; both are
     filled before either is searched.
  d  MLflow's UI runs page on a real `mlflow server` over each store filled in
     (c): the POST /ajax-api/2.0/mlflow/runs/search the page sends (100 runs,
     newest first), first and warm (median), server-side time as the client
     sees it on loopback. Target: gitml within 2x of sqlite. Needs c.

Prints gitml time, MLflow time and the ratio MLflow/gitml ("x faster") for
each, then a summary table with issue 16's targets (>= 20x, >= 5x, >= 10x).
Shares its stores, data set and report with bench_tracking.py.

    python bench/bench_mlflow_plugin.py --quick     # small sizes, about a minute
    python bench/bench_mlflow_plugin.py             # full sizes (10k runs)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tracking as bt  # noqa: E402 - the shared stores, data set and report

FULL = {"metric_calls_gitml": 20_000, "metric_calls_mlflow": 500, "runs_gitml": 300, "runs_mlflow": 60,
        "search_runs": 10_000, "search_reps": 3}
QUICK = {"metric_calls_gitml": 3_000, "metric_calls_mlflow": 100, "runs_gitml": 60, "runs_mlflow": 15,
         "search_runs": 1_000, "search_reps": 3}

# Issue 16's targets: summary row -> the ratio MLflow/gitml to reach.
RATIO_TARGETS = {"log_metric": 20.0, "run_create_finish": 5.0, "search_filtered_client_warm": 10.0}


def fresh_gitml(ws: bt.Workspace, label: str) -> tuple[Path, str]:
    """A fresh repository; MLflow's fluent API pointed at it through the plugin, experiment 'bench'."""
    import mlflow

    repo = bt.new_git_repo(ws, label)
    mlflow.set_tracking_uri(f"gitml:{repo}")
    exp = mlflow.set_experiment(bt.EXPERIMENT)
    return repo, exp.experiment_id


def a_log_metric(n: int) -> dict[str, float]:
    import mlflow

    return bt._log_metric_loop(mlflow, n, lambda: None)


def b_create_finish(n: int) -> dict[str, float]:
    import mlflow

    t0 = bt.now()
    bt.b_loop(mlflow, n)
    return {"runs": n, "per_run_ms": (bt.now() - t0) / n * 1e3}


def c_search(uri: str, exp_id: str, reps: int) -> dict[str, Any]:
    """First and warm searches through MlflowClient (Run entities) and mlflow.search_runs (a DataFrame)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.store.tracking import SEARCH_MAX_RESULTS_THRESHOLD

    client = MlflowClient(uri)
    mlflow.set_tracking_uri(uri)
    out: dict[str, Any] = {}
    for kind, flt in (("filtered", bt.FILTER), ("all", "")):
        for api in ("client", "fluent"):
            times: list[float] = []
            for _ in range(reps + 1):  # the first call also builds the index (gitml) or warms caches
                t0 = bt.now()
                if api == "client":
                    found = client.search_runs([exp_id], flt, max_results=SEARCH_MAX_RESULTS_THRESHOLD,
                                               order_by=bt.ORDER_BY)
                    head = [len(found)] + [r.data.metrics["rmse"] for r in found[:20]]
                else:
                    df = mlflow.search_runs([exp_id], flt, order_by=bt.ORDER_BY)
                    head = [len(df)] + [float(x) for x in df["metrics.rmse"].head(20)]
                times.append((bt.now() - t0) * 1e3)
            out[f"{kind}_{api}"] = {"cold_ms": times[0], "warm_ms": bt.median(times[1:]), "rows": head[0],
                                    "samples_ms": times, "head": head}
    return out


def d_server_page(store_uri: str, exp_id: str, cwd: Path, reps: int) -> dict[str, Any]:
    """Time the runs page's search request against `mlflow server --backend-store-uri store_uri`."""
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--backend-store-uri", store_uri],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=5)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"mlflow server on {store_uri} did not start") from None
                time.sleep(0.2)
        body = json.dumps({"experiment_ids": [exp_id], "max_results": 100, "run_view_type": "ACTIVE_ONLY",
                           "order_by": ["attributes.start_time DESC"]}).encode()
        times, count = [], 0
        for _ in range(reps + 1):
            req = urllib.request.Request(base + "/ajax-api/2.0/mlflow/runs/search", data=body,
                                         headers={"Content-Type": "application/json"})
            t0 = bt.now()
            with urllib.request.urlopen(req, timeout=300) as r:
                count = len(json.loads(r.read()).get("runs", []))
            times.append((bt.now() - t0) * 1e3)
        return {"cold_ms": times[0], "warm_ms": bt.median(times[1:]), "samples_ms": times, "runs_returned": count}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def summary(w: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(key: str, label: str, unit: str, g: float, m: float) -> None:
        r = bt.ratio(m, g)
        want = RATIO_TARGETS.get(key)
        rows.append({"key": key, "workload": label, "unit": unit, "gitml": g, "mlflow": m, "ratio": r,
                     "target": None, "ratio_target": want, "meets_target": (r >= want) if want else None})

    if "a" in w:
        add("log_metric", "(a) mlflow.log_metric", "us/call", w["a"]["gitml"]["hot_us"], w["a"]["mlflow"]["hot_us"])
        add("log_metric_amortized", "(a) mlflow.log_metric incl. end_run", "us/call",
            w["a"]["gitml"]["amortized_us"], w["a"]["mlflow"]["amortized_us"])
    if "b" in w:
        add("run_create_finish", "(b) run create+finish", "ms/run", w["b"]["gitml"]["per_run_ms"],
            w["b"]["mlflow"]["per_run_ms"])
    if "c" in w:
        n = w["c"]["runs"]
        for kind in ("filtered", "all"):
            for api, label in (("client", "MlflowClient"), ("fluent", "DataFrame")):
                add(f"search_{kind}_{api}_warm", f"(c) search {n} {kind}, {label}", "ms",
                    w["c"]["gitml"][f"{kind}_{api}"]["warm_ms"], w["c"]["mlflow"][f"{kind}_{api}"]["warm_ms"])
    if "d" in w:
        add("server_runs_page_warm", f"(d) mlflow server runs page, {w['d']['runs']} runs", "ms",
            w["d"]["gitml"]["warm_ms"], w["d"]["mlflow"]["warm_ms"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes; about a minute")
    ap.add_argument("--only", default="abcd", help="workloads to run, e.g. 'ac' (default: abcd; d needs c)")
    ap.add_argument("--search-runs", type=int, help="runs searched in (c) (default 10000, quick 1000)")
    ap.add_argument("--json", type=Path, help="write all samples and the summary here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.search_runs:
        sizes["search_runs"] = args.search_runs
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    root, old_cwd = bt.enter_scratch("gitml-bench-plugin-")
    ws = bt.Workspace(root)
    t_start = bt.now()
    try:
        import mlflow

        import gitml

        meta = {"mode": "quick" if args.quick else "full", "sizes": sizes, "versions": bt.versions(), "tmp": str(root)}
        bt.say(f"gitml MLflow-plugin bench ({meta['mode']}) in {root}")
        bt.say("  " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
        dbs = bt.MlflowDbs(ws)
        fresh_gitml(ws, "warmup")  # untimed: lazy imports and first-use caches on both sides
        bt.b_loop(mlflow, 3)
        dbs.fresh("warmup")
        bt.b_loop(mlflow, 3)
        res: dict[str, Any] = {"meta": meta, "workloads": {}}
        w = res["workloads"]

        if "a" in args.only:
            ng, nm = sizes["metric_calls_gitml"], sizes["metric_calls_mlflow"]
            bt.say(f"\n== (a) mlflow.log_metric: gitml: {ng:,} calls, sqlite: {nm:,} calls")
            fresh_gitml(ws, "a")
            g = a_log_metric(ng)
            dbs.fresh("a")
            m = a_log_metric(nm)
            w["a"] = {"gitml": g, "mlflow": m}
            bt.say(f"    gitml {g['hot_us']:.0f} us/call ({g['amortized_us']:.0f} with end_run) | "
                   f"sqlite {m['hot_us']:.0f} us/call | {bt.ratio(m['hot_us'], g['hot_us']):.0f}x")

        if "b" in args.only:
            ng, nm = sizes["runs_gitml"], sizes["runs_mlflow"]
            bt.say(f"\n== (b) run create+finish: gitml: {ng} runs, sqlite: {nm} runs")
            fresh_gitml(ws, "b")
            g = b_create_finish(ng)
            dbs.fresh("b")
            m = b_create_finish(nm)
            w["b"] = {"gitml": g, "mlflow": m}
            bt.say(f"    gitml {g['per_run_ms']:.2f} ms/run | sqlite {m['per_run_ms']:.1f} ms/run | "
                   f"{bt.ratio(m['per_run_ms'], g['per_run_ms']):.1f}x")

        if "c" in args.only:
            n = sizes["search_runs"]
            data = bt.dataset(n)
            bt.say(f"\n== (c) mlflow.search_runs over {n:,} runs: filter {bt.FILTER!r}, order_by {bt.ORDER_BY}")
            repo = bt.new_git_repo(ws, "c")
            gitml.set_tracking_uri(str(repo))
            g_exp = gitml.set_experiment(bt.EXPERIMENT).experiment_id
            populate_g = bt.populate_gitml(data)
            uri, m_exp, d = dbs.fresh("c")
            populate_m = bt.populate_mlflow_orm(uri, m_exp, d / "artifacts", data)
            bt.say(f"    populated: gitml (its API) {populate_g:.1f} s, sqlite (ORM bulk insert) {populate_m:.1f} s")
            g = c_search(f"gitml:{repo}", g_exp, sizes["search_reps"])
            m = c_search(uri, m_exp, sizes["search_reps"])
            w["c"] = {"runs": n, "gitml": {**g, "populate_s": populate_g}, "mlflow": {**m, "populate_s": populate_m}}
            for key in g:
                w["c"][f"{key}_results_agree"] = g[key]["head"] == m[key]["head"]  # else the timings mean nothing
                if g[key]["head"] != m[key]["head"]:
                    bt.say(f"    WARNING: {key} results differ: {g[key]['head'][:3]} vs {m[key]['head'][:3]}")
                bt.say(f"    {key:<16} ({g[key]['rows']} rows): gitml warm {g[key]['warm_ms']:.0f} ms "
                       f"(first {g[key]['cold_ms']:.0f}) | sqlite warm {m[key]['warm_ms']:.0f} ms | "
                       f"{bt.ratio(m[key]['warm_ms'], g[key]['warm_ms']):.1f}x")

        if "d" in args.only and "c" in w:
            bt.say(f"\n== (d) MLflow's runs page on `mlflow server` over {w['c']['runs']:,} runs")
            g = d_server_page(f"gitml:{repo}", g_exp, root, sizes["search_reps"] + 2)
            m = d_server_page(uri, m_exp, root, sizes["search_reps"] + 2)
            w["d"] = {"runs": w["c"]["runs"], "gitml": g, "mlflow": m}
            within = g["warm_ms"] <= 2 * m["warm_ms"]
            bt.say(f"    gitml warm {g['warm_ms']:.0f} ms (first {g['cold_ms']:.0f}) | sqlite warm {m['warm_ms']:.0f} ms "
                   f"(first {m['cold_ms']:.0f}) | {bt.ratio(m['warm_ms'], g['warm_ms']):.1f}x; target within 2x of "
                   f"sqlite: {'met' if within else 'MISSED'}")

        rows = summary(w)
        bt.finish(res, rows, t_start, args.json, old_cwd)
        bt.say("targets (issue 16, ratio MLflow/gitml): "
               + ", ".join(f"{r['workload']} >= {r['ratio_target']:g}x: {'met' if r['meets_target'] else 'MISSED'}"
                           for r in rows if r["ratio_target"]))
    finally:
        bt.leave_scratch(root, old_cwd, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
