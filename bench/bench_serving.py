#!/usr/bin/env python
"""Scoring server throughput and latency: `gitml serve` vs `mlflow models serve`, same model, same payload.

Target (issue 6): >= 5x MLflow's requests/s and p50 <= 3 ms at 4 connections.

Both servers serve one scikit-learn model directory (LogisticRegression on
3 columns, saved by gitml; MLflow loads it too) on 127.0.0.1 and get the
same 2-row ``dataframe_split`` payload from `wrk` (Debian package `wrk`):
4 connections, --seconds each, after a 2 s warm-up. MLflow runs with
``--env-manager local`` and its default worker count; gitml with --workers.

    python bench/bench_serving.py [--seconds 10] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{cmd[:4]} exited with {proc.returncode}")
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{cmd[:4]} did not start")


def wrk(port: int, script: Path, seconds: int, connections: int) -> tuple[float, float]:
    url = f"http://127.0.0.1:{port}/invocations"
    subprocess.run(["wrk", "-t2", f"-c{connections}", "-d2s", "-s", str(script), url], capture_output=True)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{errors.group(1)} failed requests:\n{out}")
    return rps, float(p50.group(1)) * scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="gitml serve --workers")
    ap.add_argument("--threads", type=int, help="gitml serve --threads (default: its own)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import gitml.sklearn

    tmp = Path(tempfile.mkdtemp(prefix="gitml-bench-serving-"))
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(200), "b": rng.random(200), "c": rng.random(200)})
    y = (X.a + X.b > 1).astype(int)
    model_dir = tmp / "model"
    gitml.sklearn.save_model(LogisticRegression().fit(X, y), str(model_dir), input_example=X[:2])
    body = json.dumps({"dataframe_split": X[:2].to_dict(orient="split")})
    script = tmp / "post.lua"
    script.write_text(LUA.format(body=body))
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    sides = {"gitml": lambda p: [sys.executable, "-m", "gitml", "serve", str(model_dir), "--port", str(p),
                                 "--workers", str(args.workers)]
                                + (["--threads", str(args.threads)] if args.threads else [])}
    if not args.no_mlflow:
        sides["mlflow"] = lambda p: [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
                                     "-p", str(p), "--env-manager", "local"]
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    try:
        for name, cmd in sides.items():
            port = free_port()
            proc = start(cmd(port), port, env)
            try:
                for _ in range(args.repeat):
                    results[name].append(wrk(port, script, args.seconds, args.connections))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.connections} connections, {args.seconds} s per run, median of {args.repeat}; "
          f"gitml --workers {args.workers}" + (f" --threads {args.threads}" if args.threads else ""))
    med = {}
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p50 = statistics.median(p for _, p in runs)
        med[name] = (rps, p50)
        print(f"{name:8s} {rps:9.0f} req/s   p50 {p50:6.2f} ms   runs: "
              + ", ".join(f"{r:.0f}/{p:.2f}" for r, p in runs))
    if "mlflow" in med:
        print(f"throughput gitml / mlflow: {med['gitml'][0] / med['mlflow'][0]:.1f}x (target >= 8x, issue 17); "
              f"gitml p50 {med['gitml'][1]:.2f} ms (target <= 2 ms)")


if __name__ == "__main__":
    main()
