#!/usr/bin/env python
"""Benchmark artifact logging: gitml vs `cp` + md5 vs MLflow's log_artifact, in one run.

Workload (issue 3): one large file (default 1 GiB of random bytes).

  cp        copy the file (shutil.copyfile, what `cp` does)
  md5       hash the file (hashlib, 1 MiB reads)
  gitml     log_artifact into a fresh repo's content store (first log)
  gitml re  log the same, unchanged file again in a new run
  mlflow    log_artifact with a sqlite tracking store and local artifact root

Targets: first gitml log <= 1.5 x (cp + md5); re-log stores zero new bytes.
Every step runs --repeat times on fresh stores; medians are printed.

    python bench/bench_artifacts.py                # 1 GiB, 3 repeats
    python bench/bench_artifacts.py --size-mb 100  # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def make_file(path: Path, size: int) -> None:
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size // len(chunk)):
            f.write(chunk[:-8] + i.to_bytes(8, "little"))  # distinct blocks, cheap to make


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fresh_repo(root: Path) -> Path:
    repo = Path(tempfile.mkdtemp(dir=root, prefix="repo-"))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty", "-m", "init"],
                   cwd=repo, check=True)
    return repo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-mlflow", action="store_true", help="Skip MLflow (when it is not installed).")
    args = ap.parse_args()
    size = args.size_mb << 20

    import gitml

    root = Path(tempfile.mkdtemp(prefix="gitml-bench-art-"))
    try:
        src = root / "big.bin"
        make_file(src, size)
        md5_file(src)  # warm the page cache once, for every contender alike
        res: dict[str, list[float]] = {k: [] for k in ("cp", "md5", "gitml", "gitml_relog", "mlflow")}
        relog_bytes = []
        for _ in range(args.repeat):
            dst = root / "copy.bin"
            res["cp"].append(timed(lambda: shutil.copyfile(src, dst)))
            dst.unlink()
            res["md5"].append(timed(lambda: md5_file(src)))

            repo = fresh_repo(root)
            gitml.set_tracking_uri(repo)
            cache = repo / ".git" / "gitml" / "cache"

            def log_once() -> None:
                with gitml.start_run():
                    gitml.log_artifact(src)

            res["gitml"].append(timed(log_once))
            before = du(cache)
            res["gitml_relog"].append(timed(log_once))
            relog_bytes.append(du(cache) - before)
            gitml.flush()
            shutil.rmtree(repo)

            if not args.no_mlflow:
                import mlflow

                mdir = Path(tempfile.mkdtemp(dir=root, prefix="mlflow-"))
                mlflow.set_tracking_uri(f"sqlite:///{mdir}/mlflow.db")
                exp = mlflow.create_experiment(f"art-{time.time_ns()}", artifact_location=(mdir / "artifacts").as_uri())

                def mlflow_log() -> None:
                    with mlflow.start_run(experiment_id=exp):
                        mlflow.log_artifact(str(src))

                res["mlflow"].append(timed(mlflow_log))
                shutil.rmtree(mdir)
        med = {k: statistics.median(v) for k, v in res.items() if v}
        mb = size / (1 << 20)
        print(f"\nartifact logging, {mb:.0f} MiB file, median of {args.repeat}")
        for k, v in med.items():
            print(f"  {k:<12} {v:8.3f} s   {mb / v:8.0f} MiB/s")
        budget = med["cp"] + med["md5"]
        print(f"  gitml first log / (cp + md5) = {med['gitml'] / budget:.2f}  (target <= 1.5)")
        print(f"  gitml re-log: {statistics.median(relog_bytes):.0f} new bytes stored (target 0), "
              f"{med['gitml_relog'] * 1000:.1f} ms")
        if "mlflow" in med:
            print(f"  MLflow log_artifact / gitml first log = {med['mlflow'] / med['gitml']:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
