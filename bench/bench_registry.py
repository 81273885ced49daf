#!/usr/bin/env python
"""Registry reads at scale: `gitml models show/list` vs `gto show` on one repo with 1500 registry tags.

Target (issue 5): `gitml models show` >= 20x faster than `gto show`, <= 200 ms.

The repo has --models models; each has versions registered on real gitml
run commits, and stage events (promotions that move production and staging
back and forth) until there are --tags registry tags in all. Both tools are
timed as a user runs them: a new process per command, medians of --repeat.

    python bench/bench_registry.py [--tags 1500] [--models 5] [--repeat 3]
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


def build(repo: Path, n_tags: int, n_models: int) -> None:
    """Runs with a model artifact, then registry tags in GTO's grammar, written in bulk."""
    import numpy as np

    import gitml
    from gitml.registry import tags as grammar
    from gitml.store.repo import GitRepo
    from gitml.tracking import process

    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "init"], check=True)
    gitml.set_tracking_uri(repo)
    per_model = n_tags // n_models
    n_versions = max(1, per_model // 3)
    model_dir = repo.parent / "model"
    from sklearn.linear_model import LinearRegression

    X = np.arange(8, dtype=float).reshape(-1, 2)
    gitml.sklearn.save_model(LinearRegression().fit(X, X.sum(axis=1)), str(model_dir))
    run_commits = []
    for i in range(n_versions):
        with gitml.start_run() as run:
            gitml.log_metric("rmse", 1.0 / (i + 1))
            gitml.log_artifacts(str(model_dir), "model")
        run_commits.append(run.info.run_id)
    process.flush_all()
    g = GitRepo.discover(repo)
    from gitml.store.ledger import run_commit

    commits = [run_commit(g, r) for r in run_commits]
    t0 = int(time.time()) - n_tags - 10
    refs = {}
    for m in range(n_models):
        name = f"model-{m}"
        t, counter = t0, 0
        for i, (run_id, commit) in enumerate(zip(run_commits, commits)):
            tag = f"{name}@v0.0.{i + 1}"
            msg = f"Registering model {name} version v0.0.{i + 1}\n\nGitml-Model-Path: model\nGitml-Run: {run_id}\n"
            refs["refs/tags/" + tag] = g.write_tag(tag, commit, msg, t)
            t += 1
        holder: dict[str, int] = {}
        i = 0
        while sum(1 for r in refs if r.startswith(f"refs/tags/{name}@") or r.startswith(f"refs/tags/{name}#")) < per_model:
            stage = ("staging", "production")[i % 2]
            v = (i * 7) % n_versions
            if stage in holder:
                counter += 1
                tag = grammar.format(grammar.TagName(name, grammar.UNASSIGN, stage=stage, counter=counter))
                refs["refs/tags/" + tag] = g.write_tag(tag, commits[holder[stage]], "moving\n", t)
            counter += 1
            tag = grammar.format(grammar.TagName(name, grammar.ASSIGN, stage=stage, counter=counter))
            refs["refs/tags/" + tag] = g.write_tag(tag, commits[v], "promote\n", t)
            holder[stage] = v
            t += 1
            i += 1
    assert g.create_refs(refs)
    subprocess.run(["git", "-C", str(repo), "pack-refs", "--all"], check=True)
    subprocess.run(["git", "-C", str(repo), "gc", "-q"], check=True)


# As users run them: Python caches bytecode (some sandboxes turn that off).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], cwd: Path, repeat: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV)
        times.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr}")
        out = p.stdout
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=1500)
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="Keep the repo and print its path.")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gitml-bench-registry-"))
    repo = tmp / "repo"
    t = time.perf_counter()
    build(repo, args.tags, args.models)
    n = len(subprocess.run(["git", "-C", str(repo), "tag"], capture_output=True, text=True).stdout.split())
    print(f"repo: {n} registry tags, {args.models} models (built in {time.perf_counter() - t:.1f} s)")

    gitml_cmd = [sys.executable, "-m", "gitml"]
    gto_exe = shutil.which("gto", path=os.path.dirname(sys.executable)) or shutil.which("gto")
    cache = repo / ".git" / "gitml" / "registry-cache.json"
    timed([*gitml_cmd, "--version"], repo, 1)  # bytecode written once, as after any first use
    if gto_exe:
        timed([gto_exe, "--help"], repo, 1)
    cache.unlink(missing_ok=True)
    cold, _ = timed([*gitml_cmd, "models", "show", "model-0"], repo, 1)
    rows = [("gitml models show model-0 (cold: no tag cache)", cold)]
    for label, cmd in (("gitml models show model-0", [*gitml_cmd, "models", "show", "model-0"]),
                       ("gitml models list", [*gitml_cmd, "models", "list"])):
        rows.append((label, timed(cmd, repo, args.repeat)[0]))
    theirs = {}
    if gto_exe:
        for label, cmd in (("gto show model-0", [gto_exe, "show", "model-0"]), ("gto show", [gto_exe, "show"])):
            theirs[label] = timed(cmd, repo, args.repeat)[0]
    for label, secs in rows:
        print(f"{label:50s} {secs * 1e3:9.1f} ms")
    for label, secs in theirs.items():
        print(f"{label:50s} {secs * 1e3:9.1f} ms")
    if theirs:
        show = dict(rows)["gitml models show model-0"]
        lst = dict(rows)["gitml models list"]
        print(f"ratio gto show model-0 / gitml models show: {theirs['gto show model-0'] / show:.1f}x (target >= 20x)")
        print(f"ratio gto show / gitml models list:          {theirs['gto show'] / lst:.1f}x")
    else:
        print("gto not installed: pip install -e '.[bench]'")
    if args.keep:
        print(f"kept: {repo}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
