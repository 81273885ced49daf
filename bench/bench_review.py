#!/usr/bin/env python
"""`gitml diff` between two branches with 1000 runs each, vs the same question asked of MLflow.

Target (issue 8): `gitml diff main feature` <= 500 ms (a new process, warm index).

gitml: a repository whose branches `main` and `feature` each have a tip commit
with --runs runs (a param, two metrics); timed is `gitml diff main feature`
as a user runs it, and the same with `--pick best:rmse`. MLflow: the same runs
in a sqlite store, tagged with their commit as `mlflow.source.git.commit`;
timed is a new process that finds each side's latest run with
`mlflow.search_runs` and prints the metric differences.

    python bench/bench_review.py [--runs 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["MLFLOW_DISABLE_TELEMETRY"] = "true"

MLFLOW_DIFF = """
import sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
sides = []
for commit in sys.argv[2:4]:
    df = mlflow.search_runs(experiment_names=["bench"], filter_string=f"tags.`mlflow.source.git.commit` = '{commit}'",
                            order_by=["attributes.start_time DESC"], max_results=1)
    sides.append(df.iloc[0])
for key in ("metrics.rmse", "metrics.acc"):
    print(key, sides[0][key], sides[1][key], sides[1][key] - sides[0][key])
"""


def timed(cmd: list[str], cwd: Path, repeat: int) -> float:
    subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True)  # warm-up (bytecode, index)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if out.returncode != 0:
            raise SystemExit(f"{cmd} failed: {out.stderr}")
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gitml-bench-review-"))
    repo = tmp / "repo"
    try:
        import gitml

        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        (repo / "train.py").write_text("print('train')\n")
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", "main"], check=True)
        gitml.set_tracking_uri(repo)
        commits = {}
        t0 = time.perf_counter()
        for branch in ("main", "feature"):
            if branch == "feature":
                subprocess.run(["git", "-C", str(repo), "checkout", "-qb", "feature"], check=True)
                (repo / "train.py").write_text("print('train better')\n")
                subprocess.run(["git", "-C", str(repo), "commit", "-qam", "feature"], check=True)
            commits[branch] = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                             text=True, check=True).stdout.strip()
            for i in range(args.runs):
                with gitml.start_run():
                    gitml.log_param("lr", i)
                    gitml.log_metrics({"rmse": 1.0 / (i + 1), "acc": i / args.runs})
        print(f"{2 * args.runs} runs logged in {time.perf_counter() - t0:.1f} s")
        gitml_cmd = [sys.executable, "-m", "gitml"]
        ours = timed([*gitml_cmd, "diff", "main", "feature"], repo, args.repeat)
        best = timed([*gitml_cmd, "diff", "main", "feature", "--pick", "best:rmse"], repo, args.repeat)
        print(f"gitml diff main feature                {ours * 1e3:8.0f} ms  (target <= 500 ms)")
        print(f"gitml diff main feature --pick best:rmse {best * 1e3:6.0f} ms")
        if not args.no_mlflow:
            import mlflow

            uri = f"sqlite:///{tmp / 'mlflow.db'}"
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment("bench")
            client = mlflow.MlflowClient()
            exp = client.get_experiment_by_name("bench").experiment_id
            from mlflow.entities import Metric, Param, RunTag

            t0 = time.perf_counter()
            for commit in commits.values():
                for i in range(args.runs):
                    run = client.create_run(exp, tags={"mlflow.source.git.commit": commit})
                    now = int(time.time() * 1000)
                    client.log_batch(run.info.run_id, metrics=[Metric("rmse", 1.0 / (i + 1), now, 0),
                                                               Metric("acc", i / args.runs, now, 0)],
                                     params=[Param("lr", str(i))], tags=[RunTag("x", "y")])
                    client.set_terminated(run.info.run_id)
            print(f"MLflow: {2 * args.runs} runs logged in {time.perf_counter() - t0:.1f} s")
            theirs = timed([sys.executable, "-c", MLFLOW_DIFF, uri, commits["main"], commits["feature"]], tmp,
                           args.repeat)
            print(f"MLflow search_runs x2 + diff           {theirs * 1e3:8.0f} ms")
            print(f"ratio MLflow / gitml: {theirs / ours:.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
