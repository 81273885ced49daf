#!/usr/bin/env python
"""Long runs: one run of 10 metric keys x 100k steps (1M points), gitml vs MLflow (sqlite), in one
process run (issue 17, item 5).

gitml, each repetition in a fresh child process (so peak RSS is the run's own) on a fresh repo:

  a  the run through `gitml.log_metric` with the background flusher as configured
     (GITML_FLUSH_INTERVAL, default 5 s, plus the early flushes that MAX_PENDING waiting
     events trigger): per-call time in each tenth of the run (blocks of calls timed; the
     median block and the mean, which includes the flusher's share of the CPU), every
     background flush (time, points), RSS before and during the run and its peak, the live
     log's size, end_run; then get_metric_history of one 100k-point key, warm
  b  the same run with no flusher (GITML_FLUSH_INTERVAL=0) and `gitml.flush()` every
     --flush-every steps: each flush's time against the points it carried (early flushes
     against late ones), and log_metric per call with no flusher beside it
  c  get_metric_history of the same key in a fresh process (import excluded)

MLflow (sqlite, fresh database): log_metric per call on a sample (--mlflow-calls; each call
is a sqlite transaction, so a 1M-call run would take hours), and get_metric_history of a key
of the same size, logged with log_batch (1000 points a batch, MLflow's limit), warm and in a
fresh process.

Prints each figure as it goes, then a summary (ratio = MLflow / gitml), and the memory bound.

    python bench/bench_long_runs.py --quick                              # ~1 minute
    python bench/bench_long_runs.py --json bench/results/long_runs.json  # full sizes, ~5 minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tracking as bt  # noqa: E402 - the shared stores, helpers and report

FULL = {"steps": 100_000, "keys": 10, "flush_every": 1_000, "mlflow_calls": 2_000, "block_steps": 10}
QUICK = {"steps": 20_000, "keys": 10, "flush_every": 1_000, "mlflow_calls": 200, "block_steps": 10}
HISTORY_KEY = "m0"
TENTHS = 10


def now() -> float:
    return time.perf_counter()


def rss_mb() -> float:
    """This process's resident memory now (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): VmHWM, which starts afresh at exec. (ru_maxrss
    does not: a child forked from a parent that has imported MLflow starts at the parent's peak.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tenths(samples: list[float]) -> list[list[float]]:
    n = len(samples)
    return [samples[i * n // TENTHS:(i + 1) * n // TENTHS] for i in range(TENTHS)]


def step_values(steps: int) -> list[float]:
    return bt.values(steps, seed=7)


# -- the gitml run, in a child process ----------------------------------------------------------------


def child_run(cfg: dict[str, Any]) -> dict[str, Any]:
    """One long run (workload a or b) in this fresh process; its figures as a dict."""
    if cfg["mode"] == "b":
        os.environ["GITML_FLUSH_INTERVAL"] = "0"
    import gitml
    from gitml.tracking import writer as gitml_writer

    gitml.set_tracking_uri(cfg["repo"])
    gitml.set_experiment(bt.EXPERIMENT)
    live = Path(cfg["repo"]) / ".git" / "gitml" / "live"

    # Instrumentation: every commit a writer makes goes through writer.commit_events; time each
    # one with the points it carries (the background flusher's included). The work is unchanged.
    commits: list[dict[str, Any]] = []
    commit_events = gitml_writer.commit_events
    t_start = now()

    def timed(*args: Any, **kwargs: Any) -> Any:
        points = sum(map(len, (kwargs.get("metrics") or {}).values()))
        t0 = now()
        out = commit_events(*args, **kwargs)
        commits.append({"at_s": t0 - t_start, "s": now() - t0, "points": points,
                        "thread": threading.current_thread().name})
        return out

    gitml_writer.commit_events = timed  # type: ignore[assignment]

    steps, keys, block = cfg["steps"], [f"m{k}" for k in range(cfg["keys"])], cfg["block_steps"]
    flush_every = cfg["flush_every"] if cfg["mode"] == "b" else 0
    vals = step_values(steps)
    log_metric = gitml.log_metric
    blocks: list[float] = []  # us per call of each block of block * len(keys) calls
    samples: list[dict[str, float]] = []
    explicit: list[dict[str, float]] = []
    sample_every = max(1, steps // block // 100)

    rss_before = rss_mb()
    run = gitml.start_run()
    t_loop = now()
    for b, first in enumerate(range(0, steps, block)):
        t0 = now()
        for s in range(first, min(first + block, steps)):
            v = vals[s]
            for k in keys:
                log_metric(k, v, step=s)
        blocks.append((now() - t0) / ((min(first + block, steps) - first) * len(keys)) * 1e6)
        done = min(first + block, steps)
        if flush_every and done % flush_every == 0:
            t0 = now()
            gitml.flush()
            explicit.append({"step": done, "s": now() - t0, "points": flush_every * len(keys)})
        if b % sample_every == 0:
            logs = sum(p.stat().st_size for p in live.glob("*.log")) if live.exists() else 0
            samples.append({"step": done, "rss_mb": rss_mb(), "live_log_bytes": logs})
    loop_s = now() - t_loop
    rss_after_loop = rss_mb()
    t0 = now()
    gitml.end_run()
    end_run_s = now() - t0
    t0 = now()
    gitml.flush()  # the batched git notes
    notes_s = now() - t0
    peak = peak_rss_mb()

    client = gitml.Client()
    warm = []
    history_len = 0
    for _ in range(cfg["history_reps"] + 1):  # the first read is untimed (libgit2 opens the pack index...)
        t0 = now()
        history_len = len(client.get_metric_history(run.info.run_id, HISTORY_KEY))
        warm.append(now() - t0)
    gitml_writer.commit_events = commit_events  # type: ignore[assignment]

    calls = steps * len(keys)
    return {
        "mode": cfg["mode"], "repo": cfg["repo"], "run_id": run.info.run_id, "calls": calls, "keys": len(keys), "steps": steps,
        "block_calls": block * len(keys), "block_us": blocks,
        "tenth_median_us": [statistics.median(t) for t in tenths(blocks)],
        "tenth_mean_us": [statistics.fmean(t) for t in tenths(blocks)],
        "loop_s": loop_s, "mean_us": loop_s / calls * 1e6,
        "end_run_s": end_run_s, "notes_flush_s": notes_s,
        "amortized_us": (loop_s + end_run_s + notes_s) / calls * 1e6,
        "commits": commits, "explicit_flushes": explicit,
        "rss_before_mb": rss_before, "rss_after_loop_mb": rss_after_loop, "rss_peak_mb": peak, "samples": samples,
        "live_log_max_bytes": max((s["live_log_bytes"] for s in samples), default=0),
        "history_points": history_len, "history_warm_s": warm[1:],
        # (absent in a gitml without the bounds: the bench also measures older checkouts)
        "max_pending": getattr(gitml_writer, "MAX_PENDING", None),
        "rotate_bytes": getattr(gitml_writer, "ROTATE_BYTES", None),
    }


def run_child(cfg: dict[str, Any]) -> dict[str, Any]:
    env = bt.subprocess_env()
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"gitml child ({cfg['mode']}) failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


FRESH_HISTORY = r"""
import json, sys, time
lib = sys.argv[1]
t0 = time.perf_counter()
if lib == "gitml":
    import gitml
    client = gitml.Client(sys.argv[2])
else:
    import mlflow
    mlflow.set_tracking_uri(sys.argv[2])
    client = mlflow.MlflowClient()
t1 = time.perf_counter()
n = len(client.get_metric_history(sys.argv[3], sys.argv[4]))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "history_s": t2 - t1, "points": n}))
"""


def fresh_history(lib: str, uri: str, run_id: str, key: str, reps: int) -> dict[str, Any]:
    """get_metric_history in fresh interpreters: one untimed run, then ``reps`` timed ones."""
    env = bt.subprocess_env()
    samples = []
    for i in range(reps + 1):
        t0 = now()
        proc = subprocess.run([sys.executable, "-c", FRESH_HISTORY, lib, uri, run_id, key],
                              capture_output=True, text=True, env=env)
        wall = now() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{lib} history subprocess failed:\n{proc.stderr}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["wall_s"] = wall
        if i:
            samples.append(res)
    return {"samples": samples, "history_ms": bt.median([s["history_s"] for s in samples]) * 1e3,
            "wall_ms": bt.median([s["wall_s"] for s in samples]) * 1e3, "points": samples[-1]["points"]}


# -- MLflow ---------------------------------------------------------------------------------------------


def mlflow_per_call(dbs: bt.MlflowDbs, calls: int, keys: int) -> dict[str, Any]:
    """mlflow.log_metric in a loop over keys and steps (as gitml's run), ``calls`` calls, one at a time."""
    import mlflow

    dbs.fresh("mlflow-per-call")
    vals = step_values(calls)
    per_call = []
    mlflow.start_run()
    t_loop = now()
    for i in range(calls):
        t0 = now()
        mlflow.log_metric(f"m{i % keys}", vals[i], step=i // keys)
        per_call.append((now() - t0) * 1e6)
    loop_s = now() - t_loop
    mlflow.end_run()
    return {"calls": calls, "median_us": statistics.median(per_call), "mean_us": loop_s / calls * 1e6,
            "tenth_median_us": [statistics.median(t) for t in tenths(per_call)]}


def mlflow_history(dbs: bt.MlflowDbs, points: int, reps: int, proc_reps: int) -> dict[str, Any]:
    """A key of ``points`` points logged with log_batch (1000 a batch), then get_metric_history."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri, exp_id, _ = dbs.fresh("mlflow-history")
    client = MlflowClient()
    run_id = client.create_run(exp_id).info.run_id
    vals = step_values(points)
    base = int(time.time() * 1000)
    t0 = now()
    for first in range(0, points, 1000):
        client.log_batch(run_id, metrics=[Metric(HISTORY_KEY, vals[s], base + s, s)
                                          for s in range(first, min(first + 1000, points))])
    populate_s = now() - t0
    client.set_terminated(run_id)
    warm = []
    n = 0
    for _ in range(reps):
        t0 = now()
        n = len(client.get_metric_history(run_id, HISTORY_KEY))
        warm.append(now() - t0)
    return {"points": n, "populate_s": populate_s, "populate_us_per_point": populate_s / points * 1e6,
            "warm_s": warm, "warm_ms": bt.median(warm) * 1e3,
            "fresh_process": fresh_history("mlflow", uri, run_id, HISTORY_KEY, proc_reps)}


# -- report -----------------------------------------------------------------------------------------------


def flush_rows(flushes: list[dict[str, Any]]) -> dict[str, Any]:
    """Early (first tenth) and late (last tenth) flushes: median ms a flush and us a point."""
    real = [f for f in flushes if f["points"]]
    if not real:
        return {}
    k = max(1, len(real) // TENTHS)
    early, late = real[:k], real[-k:]

    def per_point(fs: list[dict[str, Any]]) -> float:
        return bt.median([f["s"] / f["points"] * 1e6 for f in fs])

    return {"count": len(real), "median_points": bt.median([f["points"] for f in real]),
            "early_ms": bt.median([f["s"] for f in early]) * 1e3, "late_ms": bt.median([f["s"] for f in late]) * 1e3,
            "early_us_per_point": per_point(early), "late_us_per_point": per_point(late),
            "early_points": bt.median([f["points"] for f in early]),
            "late_points": bt.median([f["points"] for f in late])}


def med(runs: list[dict[str, Any]], key: str) -> float:
    return bt.median([r[key] for r in runs])


def med_tenth(runs: list[dict[str, Any]], key: str, i: int) -> float:
    return bt.median([r[key][i] for r in runs])


def summarize(res: dict[str, Any]) -> list[dict[str, Any]]:
    a, b, w = res["gitml"]["a"], res["gitml"]["b"], res["workloads"]
    m, mh = w["mlflow_per_call"], w["mlflow_history"]
    rows: list[dict[str, Any]] = []

    def add(key: str, label: str, unit: str, g: float | None, ml: float | None) -> None:
        rows.append({"key": key, "workload": label, "unit": unit, "gitml": g, "mlflow": ml,
                     "ratio": bt.ratio(ml, g) if g is not None and ml is not None else None,
                     "target": None, "meets_target": None})

    add("log_metric_first_tenth", "log_metric, 1st tenth of run (median)", "us/call",
        med_tenth(a, "tenth_median_us", 0), m["median_us"])
    add("log_metric_last_tenth", "log_metric, last tenth of run (median)", "us/call",
        med_tenth(a, "tenth_median_us", TENTHS - 1), m["median_us"])
    add("log_metric_mean", "log_metric, whole run (mean, flushes incl.)", "us/call", med(a, "mean_us"),
        m["mean_us"])
    add("log_metric_amortized", "log_metric incl. end_run", "us/call", med(a, "amortized_us"), m["mean_us"])
    add("no_flusher_first_tenth", "(b) log_metric, 1st tenth, no flusher", "us/call",
        med_tenth(b, "tenth_median_us", 0), None)
    add("no_flusher_last_tenth", "(b) log_metric, last tenth, no flusher", "us/call",
        med_tenth(b, "tenth_median_us", TENTHS - 1), None)
    fb = [flush_rows(r["explicit_flushes"]) for r in b]
    add("flush_early", f"(b) flush of {fb[0]['early_points']:,.0f} pts, first tenth", "ms",
        bt.median([f["early_ms"] for f in fb]), None)
    add("flush_late", f"(b) flush of {fb[0]['late_points']:,.0f} pts, last tenth", "ms",
        bt.median([f["late_ms"] for f in fb]), None)
    add("flush_early_per_point", "(b) flush per point, first tenth", "us/pt",
        bt.median([f["early_us_per_point"] for f in fb]), None)
    add("flush_late_per_point", "(b) flush per point, last tenth", "us/pt",
        bt.median([f["late_us_per_point"] for f in fb]), None)
    fa = [flush_rows([c for c in r["commits"] if c["thread"] == "gitml-flush"]) for r in a]
    fa = [f for f in fa if f]
    if fa:
        add("bg_flush_early_per_point", "(a) background flush per point, early", "us/pt",
            bt.median([f["early_us_per_point"] for f in fa]), None)
        add("bg_flush_late_per_point", "(a) background flush per point, late", "us/pt",
            bt.median([f["late_us_per_point"] for f in fa]), None)
    add("end_run", "end_run (last commit)", "ms", med(a, "end_run_s") * 1e3, None)
    add("rss_before", "RSS before the loop", "MB", med(a, "rss_before_mb"), None)
    add("rss_peak", "peak RSS during the run", "MB", med(a, "rss_peak_mb"), None)
    add("live_log_max", "live log, largest seen", "MB", med(a, "live_log_max_bytes") / 2**20, None)
    add("history_warm", f"get_metric_history {mh['points']:,} pts, warm", "ms",
        bt.median([bt.median(r["history_warm_s"]) for r in a]) * 1e3, mh["warm_ms"])
    add("history_fresh", f"get_metric_history {mh['points']:,} pts, new process", "ms",
        w["gitml_fresh_history"]["history_ms"], mh["fresh_process"]["history_ms"])
    add("mlflow_log_batch", "MLflow log_batch (1000/batch), per point", "us/pt", None,
        mh["populate_us_per_point"])
    return rows


def print_tenths(label: str, runs: list[dict[str, Any]], key: str) -> None:
    cells = " ".join(f"{med_tenth(runs, key, i):6.2f}" for i in range(TENTHS))
    bt.say(f"    {label:<34} {cells}")


def memory_bound(a: dict[str, Any]) -> str:
    mp = a["max_pending"]
    if mp is None:
        return "none: this gitml keeps every event logged between two flushes in memory"
    return (f"events waiting in memory <= 2 x MAX_PENDING = {2 * mp:,} (~250 B each: ~{2 * mp * 250 / 2**20:.0f} MB), "
            f"+ the last chunk of each metric key (<= 1000 lines), + libgit2's object cache (<= 4 MiB of "
            f"objects, ~25 MB of memory); the live log <= ROTATE_BYTES ({a['rotate_bytes'] / 2**20:.0f} MiB) "
            f"+ what is not committed yet. None of it grows with the run's length.")


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--child"]:
        print(json.dumps(child_run(json.loads(argv[1]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k steps (200k points), 200 MLflow calls; ~1 minute")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions of the gitml runs and MLflow's sample, "
                    "median reported (default 3; 1 with --quick); warm history reads repeat max(3, N) times")
    ap.add_argument("--steps", type=int, help="steps of the run (default 100000)")
    ap.add_argument("--keys", type=int, help="metric keys logged at each step (default 10)")
    ap.add_argument("--flush-every", type=int, help="(b): gitml.flush() every this many steps (default 1000)")
    ap.add_argument("--mlflow-calls", type=int, help="MLflow log_metric calls timed (default 2000)")
    ap.add_argument("--json", type=Path, help="write every sample, the medians and the summary here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)

    sizes = dict(QUICK if args.quick else FULL)
    for name in ("steps", "keys", "flush_every", "mlflow_calls"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    reps = max(1, args.repeat if args.repeat is not None else (1 if args.quick else 3))
    history_reps = max(3, reps)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    root, old_cwd = bt.enter_scratch("gitml-bench-long-")
    ws = bt.Workspace(root)
    bt._PYCACHE = root / "pycache"
    t_start = now()
    try:
        import mlflow  # noqa: F401

        from gitml import settings as gitml_settings

        meta = {"mode": "quick" if args.quick else "full", "repeat": reps, "sizes": sizes,
                "versions": bt.versions(), "gitml_flush_interval_s": gitml_settings.get("flush_interval"),
                "tmp": str(root)}
        points = sizes["steps"] * sizes["keys"]
        bt.say(f"gitml long-run bench ({meta['mode']}, repeat {reps}): {sizes['keys']} keys x "
               f"{sizes['steps']:,} steps = {points:,} points, in {root}")
        bt.say("  " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
        bt.say(f"  GITML_FLUSH_INTERVAL={meta['gitml_flush_interval_s']} s (default unless set)")
        res: dict[str, Any] = {"meta": meta, "gitml": {"a": [], "b": []}, "workloads": {}}

        for mode in ("a", "b"):
            what = "background flusher" if mode == "a" else f"no flusher, gitml.flush() every {sizes['flush_every']:,} steps"
            bt.say(f"\n== ({mode}) gitml: one run, {what}")
            for i in range(reps):
                repo = bt.new_git_repo(ws, f"{mode}-gitml")
                cfg = {"mode": mode, "repo": str(repo), "history_reps": history_reps, **sizes}
                r = run_child(cfg)
                res["gitml"][mode].append(r)
                fl = flush_rows(r["explicit_flushes"] if mode == "b" else
                                [c for c in r["commits"] if c["thread"] == "gitml-flush"])
                bt.say(f"    rep {i + 1}: {r['mean_us']:.2f} us/call mean, 1st/last tenth median "
                       f"{r['tenth_median_us'][0]:.2f}/{r['tenth_median_us'][-1]:.2f} us; end_run "
                       f"{r['end_run_s'] * 1e3:.0f} ms; RSS {r['rss_before_mb']:.0f} -> peak {r['rss_peak_mb']:.0f} MB; "
                       f"live log <= {r['live_log_max_bytes'] / 2**20:.1f} MB; history {r['history_points']:,} pts "
                       f"{bt.median(r['history_warm_s']) * 1e3:.0f} ms")
                inline = sum(1 for c in r["commits"] if c["thread"] != "gitml-flush")
                bt.say(f"           commits: {len(r['commits']) - inline} by the background flusher, {inline} in the "
                       "logging thread (explicit, backlog, end_run)")
                if fl:
                    bt.say(f"           {fl['count']} flushes of ~{fl['median_points']:,.0f} points: first tenth "
                           f"{fl['early_ms']:.1f} ms ({fl['early_us_per_point']:.2f} us/pt), last tenth "
                           f"{fl['late_ms']:.1f} ms ({fl['late_us_per_point']:.2f} us/pt)")
            runs = res["gitml"][mode]
            bt.say(f"    per-call us by tenth of the run ({runs[0]['block_calls']} calls a block):")
            print_tenths("median block", runs, "tenth_median_us")
            print_tenths("mean (incl. what flushes take)", runs, "tenth_mean_us")

        last = res["gitml"]["a"][-1]
        bt.say(f"\n== (c) get_metric_history of {last['history_points']:,} points in a new process")
        w = res["workloads"]
        w["gitml_fresh_history"] = fresh_history("gitml", last["repo"], last["run_id"], HISTORY_KEY, history_reps)
        bt.say(f"    gitml : {w['gitml_fresh_history']['history_ms']:.0f} ms (wall with import "
               f"{w['gitml_fresh_history']['wall_ms']:.0f} ms)")

        bt.say(f"\n== MLflow (sqlite): log_metric per call ({sizes['mlflow_calls']:,} calls over {sizes['keys']} keys)")
        dbs = bt.MlflowDbs(ws)
        samples = [mlflow_per_call(dbs, sizes["mlflow_calls"], sizes["keys"]) for _ in range(reps)]
        w["mlflow_per_call"] = {"samples": samples, "median_us": med(samples, "median_us"),
                                "mean_us": med(samples, "mean_us")}
        bt.say(f"    median {w['mlflow_per_call']['median_us']:,.0f} us/call, mean {w['mlflow_per_call']['mean_us']:,.0f}")
        bt.say(f"\n== MLflow: get_metric_history of {sizes['steps']:,} points (logged with log_batch, 1000 a batch)")
        w["mlflow_history"] = mlflow_history(dbs, sizes["steps"], history_reps, history_reps)
        mh = w["mlflow_history"]
        bt.say(f"    populate {mh['populate_s']:.1f} s ({mh['populate_us_per_point']:.0f} us/point); warm "
               f"{mh['warm_ms']:,.0f} ms; new process {mh['fresh_process']['history_ms']:,.0f} ms")

        res["memory_bound"] = memory_bound(last)
        summary = summarize(res)
        res["summary"] = summary
        res["meta"]["elapsed_s"] = now() - t_start
        bt.print_summary(summary)
        bt.say(f"\nmemory bound: {res['memory_bound']}")
        bt.say(f"\nelapsed {res['meta']['elapsed_s']:.0f} s")
        bt.write_results(res, args.json, old_cwd)
    finally:
        bt.leave_scratch(root, old_cwd, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
