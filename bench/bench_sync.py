#!/usr/bin/env python
"""Team sync at scale (issue 17, item 4): push and pull of N runs, the index catch-up after a
pull, and K clones pushing to one bare remote at the same moment.

For each size N (``--sizes``, default 1000,10000):

  push       clone A logs N runs (bench_tracking's data set, no artifacts) and
             runs `gitml push` to a bare remote (wall time, one subprocess)
  pull       a fresh clone B runs `gitml pull` (wall)
  first      B's first filtered search after the pull, in a new process (the
             pull has built the index for the N runs that arrived)
  catch-up   A logs 1000 more runs and pushes; B pulls them (wall) and its next
             search in a new process catches the index up (only the new runs
             are read)

Then K clones (``--clones``, default 20) each log 2 runs and push at the same
moment: how many pushes succeed, how long the slowest took, and whether a
fresh clone then sees every run and every note line.

MLflow has no counterpart (a tracking server is one shared database; there is
nothing to push or pull), so this bench has no MLflow side: the figures are
gitml's against the targets in issue 17.

    python bench/bench_sync.py --sizes 1000 --clones 8      # ~1 minute
    python bench/bench_sync.py --json bench/results/sync.json
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tracking as bt  # noqa: E402 - the shared data set, timing and report helpers

# The index refresh plus a filtered search, as a list (a DataFrame would time pandas' import).
SEARCH = ("import gitml, time; t = time.perf_counter(); "
          "gitml.search_runs(filter_string='metrics.rmse < 0.5', max_results=10, output_format='list'); "
          "print(time.perf_counter() - t)")
LOG_TWO = ("import gitml, sys\nfor i in range(2):\n    with gitml.start_run(run_name=f'{sys.argv[1]}-{i}'):\n"
           "        gitml.log_metric('m', i)\n")


def gitml(repo: Path, *args: str) -> float:
    """Wall seconds of one ``gitml`` command in ``repo`` (it must succeed)."""
    t0 = bt.now()
    out = subprocess.run([*bt.console_script("gitml"), *args], cwd=repo, capture_output=True, text=True,
                         env=bt.subprocess_env())
    if out.returncode != 0:
        raise SystemExit(f"gitml {' '.join(args)} failed in {repo}: {out.stderr[-2000:]}")
    return bt.now() - t0


def search_s(repo: Path) -> float:
    out = subprocess.run([sys.executable, "-c", SEARCH], cwd=repo, capture_output=True, text=True,
                         env=bt.subprocess_env(), check=True)
    return float(out.stdout.strip().splitlines()[-1])


def log_in(repo: Path, n: int, seed: int) -> float:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench_tracking as bt\n"
            "print(bt.populate_gitml(bt.dataset(int(sys.argv[2]), seed=int(sys.argv[3]))))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(n), str(seed)],
                         cwd=repo, capture_output=True, text=True, env=bt.subprocess_env(), check=True)
    return float(out.stdout.strip().splitlines()[-1])


def clone(ws: bt.Workspace, bare: Path, label: str) -> Path:
    d = ws.new_dir(label) / "repo"
    bt.git(d.parent, "clone", "-q", "-b", "main", str(bare), str(d))
    for k, v in (("user.name", "Bench"), ("user.email", "bench@example.com"), ("gc.auto", "0")):
        bt.git(d, "config", k, v)
    return d


def one_size(ws: bt.Workspace, n: int) -> dict[str, Any]:
    a = bt.new_git_repo(ws, f"n{n}-a")
    bt.git(a, "config", "gc.auto", "0")
    bare = a.parent / "remote.git"
    bt.git(a.parent, "init", "-q", "--bare", str(bare))
    bt.git(a, "remote", "add", "origin", str(bare))
    bt.git(a, "push", "-q", "origin", "HEAD:main")
    res: dict[str, Any] = {"runs": n, "populate_s": log_in(a, n, 1)}
    bt.say(f"    populated {n} runs in {res['populate_s']:.1f} s")
    res["push_s"] = gitml(a, "push")
    b = clone(ws, bare, f"n{n}-b")
    res["pull_s"] = gitml(b, "pull")
    res["first_search_s"] = search_s(b)
    res["warm_search_s"] = search_s(b)
    log_in(a, 1000, 2)
    res["push_1000_more_s"] = gitml(a, "push")
    res["pull_1000_more_s"] = gitml(b, "pull")
    res["catch_up_search_s"] = search_s(b)
    # search_runs returns at most 100000 by default (as MLflow's): ask for every run
    count = f"import gitml; print(len(gitml.search_runs(max_results={n + 10_000})))"
    got = subprocess.run([sys.executable, "-c", count], cwd=b,
                         capture_output=True, text=True, check=True, env=bt.subprocess_env()).stdout.split()[-1]
    res["runs_in_b"] = int(got)
    bt.say(f"    push {res['push_s']:.1f} s, pull {res['pull_s']:.1f} s, first search {res['first_search_s']:.2f} s; "
           f"1000 more: pull {res['pull_1000_more_s']:.1f} s, catch-up search {res['catch_up_search_s']:.3f} s; "
           f"B has {res['runs_in_b']} runs")
    return res


def clones_at_once(ws: bt.Workspace, k: int) -> dict[str, Any]:
    seed = bt.new_git_repo(ws, "clones-seed")
    bare = seed.parent / "remote.git"
    bt.git(seed.parent, "init", "-q", "--bare", str(bare))
    bt.git(seed, "remote", "add", "origin", str(bare))
    bt.git(seed, "push", "-q", "origin", "HEAD:main")
    repos = [clone(ws, bare, f"clone{i}") for i in range(k)]
    for r in repos:
        subprocess.run([sys.executable, "-c", LOG_TWO, r.parent.name], cwd=r, check=True, env=bt.subprocess_env())
    t0 = bt.now()
    procs = [subprocess.Popen([*bt.console_script("gitml"), "push"], cwd=r, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=bt.subprocess_env()) for r in repos]
    codes, errs = [], []
    for p in procs:
        _, err = p.communicate()
        codes.append(p.returncode)
        if p.returncode:
            errs.append(err[-500:])
    wall = bt.now() - t0
    check = clone(ws, bare, "clones-check")
    gitml(check, "pull")
    runs = subprocess.run([sys.executable, "-c", "import gitml; print(len(gitml.search_runs()))"], cwd=check,
                          capture_output=True, text=True, check=True, env=bt.subprocess_env()).stdout.split()[-1]
    notes = bt.git(check, "log", "--notes=gitml", "--format=%N", "main").count("run ")
    return {"clones": k, "succeeded": codes.count(0), "wall_s": wall, "runs_expected": 2 * k,
            "runs_on_remote": int(runs), "note_lines": notes, "errors": errs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated run counts (default 1000,10000)")
    ap.add_argument("--clones", type=int, default=20, help="clones pushing at once (default 20)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    root, old_cwd = bt.enter_scratch("gitml-bench-sync-")
    ws = bt.Workspace(root)
    t_start = bt.now()
    res: dict[str, Any] = {"meta": {"versions": bt.versions(), "tmp": str(root)}, "sizes": {}}
    try:
        bt.say(f"gitml sync bench in {root}")
        for n in [int(s) for s in args.sizes.split(",") if s.strip()]:
            bt.say(f"\n== N = {n} runs")
            res["sizes"][str(n)] = one_size(ws, n)
            bt.write_results(res, args.json, old_cwd)
        bt.say(f"\n== {args.clones} clones pushing at once")
        res["clones"] = c = clones_at_once(ws, args.clones)
        bt.say(f"    {c['succeeded']}/{c['clones']} pushes succeeded in {c['wall_s']:.1f} s; the remote has "
               f"{c['runs_on_remote']}/{c['runs_expected']} runs and {c['note_lines']} note lines")
        for e in c["errors"]:
            bt.say("    error: " + e.strip().replace("\n", " | "))
        res["elapsed_s"] = bt.now() - t_start
        bt.write_results(res, args.json, old_cwd)
    finally:
        bt.leave_scratch(root, old_cwd, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
