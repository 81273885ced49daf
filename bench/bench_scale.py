#!/usr/bin/env python
"""Growth curves of gitml vs MLflow (sqlite) as the number of runs grows (issue 17, item 1).

For each size N (``--sizes``, default 1000,10000) the same N runs
(bench_tracking's data set) are written to a fresh gitml repo and a fresh
MLflow sqlite database, then, in this one process run:

  search      filtered search_runs warm (in process) and in a new process;
              search all as a DataFrame (warm)
  cold        gitml: delete .git/gitml/index.sqlite, first search in a new
              process (index rebuilt from the refs); MLflow: first search in a
              new process
  list        first page of `gitml runs list` vs `mlflow runs list` (subprocesses)
  size        .git on disk before and after `git gc` vs MLflow's db + artifact dir
  viewer      gitml's `GET /runs` page (Flask test client of `gitml ui`'s app, 50
              a page, default order) vs MLflow's tracking server answering the
              UI's `runs/search` for 50 runs: warm, and the first request after
              NEW_RUNS more runs arrived (gitml: logged by the API, so the
              index catches up inside the request; MLflow: ORM insert)
  plain git   `git status`, `git log --decorate -5`, a no-op `git fetch` from a
              bare mirror and `git push origin main` of a one-commit change, in
              the gitml repo and in a copy with refs/gitml/* and refs/notes/*
              deleted; timed with both copies as written (loose refs and
              objects) and again with both `git gc`'d

Prints a table per size (gitml, MLflow, ratio MLflow/gitml) and a plain-git
table (with / without gitml's refs); --json writes every figure, --plot DIR writes
log-log PNGs. 100000 runs is allowed (--sizes 1000,10000,100000) but takes
long (the better part of an hour on 2 cores: populating gitml alone is ~7 min,
MLflow's search-all ~2 min a rep, and copying and gc'ing the loose repo as much
again) and needs ~15 GB of temporary disk (~5 GB of loose objects, copied twice).

    python bench/bench_scale.py --sizes 1000,3000                # ~3 minutes
    python bench/bench_scale.py --sizes 10000 --only search      # search + cold index only
    python bench/bench_scale.py --json bench/results/scale.json --plot bench/results/
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tracking as bt  # noqa: E402 - the shared stores, data set, searches and report
import bench_webview as bw  # noqa: E402 - the viewer and MLflow server clients

#: runs added before each "first request after new runs" of the viewer
NEW_RUNS = 100

GIT_CMDS = {
    "status": ["status"],
    "log_decorate": ["log", "--decorate", "-5", "--oneline"],
    "fetch_noop": ["fetch", "origin"],
    "push_one_commit": ["push", "origin", "main"],
}
GIT_LABELS = {
    "status": "git status",
    "log_decorate": "git log --decorate -5",
    "fetch_noop": "git fetch (no-op)",
    "push_one_commit": "git push main (1 commit)",
}


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (as du), files and directories."""
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*")) + path.stat().st_blocks * 512


def git_ms(repo: Path, args: list[str], reps: int, before: Any = None) -> float:
    """Median wall ms of ``git args`` in ``repo``, after one untimed run; ``before()`` runs untimed each time."""
    samples = []
    for i in range(reps + 1):
        if before:
            before()
        t0 = bt.now()
        bt.git(repo, *args)
        if i:
            samples.append(bt.now() - t0)
    return bt.median(samples) * 1e3


def plain_git(repo: Path, reps: int) -> dict[str, float]:
    """Plain git commands in ``repo`` (which has an 'origin' bare mirror)."""
    counter = iter(range(10**6))

    def one_commit() -> None:
        (repo / "train.py").write_text(f"print('train {next(counter)}')\n")
        bt.git(repo, "commit", "-q", "-am", "bench change")

    out = {}
    for key, args in GIT_CMDS.items():
        out[key] = git_ms(repo, args, reps, one_commit if key == "push_one_commit" else None)
    return out


def with_mirror(repo: Path) -> None:
    """A bare mirror of ``repo`` (all refs, gitml's included) as its remote 'origin'."""
    remote = repo.parent / (repo.name + "-remote.git")
    bt.git(repo.parent, "clone", "-q", "-c", "gc.auto=0", "--mirror", str(repo), str(remote))
    bt.git(repo, "remote", "add", "origin", str(remote))
    bt.git(repo, "fetch", "-q", "origin")
    bt.git(repo, "branch", "-q", "--set-upstream-to=origin/main", "main")


def strip_run_refs(repo: Path) -> int:
    refs = bt.git(repo, "for-each-ref", "--format=%(refname)", "refs/gitml/", "refs/notes/").split()
    if refs:
        subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, check=True, text=True,
                       input="".join(f"delete {r}\n" for r in refs))
    return len(refs)


def git_with_without(ws: bt.Workspace, repo: Path, reps: int) -> dict[str, Any]:
    """Plain git in a copy of the gitml repo and a copy without gitml's refs, loose then gc'd."""
    copies = {}
    for label in ("with_refs", "without_refs"):
        d = ws.new_dir(f"git-{label}") / "repo"
        shutil.copytree(repo, d, symlinks=True)
        copies[label] = d
    deleted = strip_run_refs(copies["without_refs"])
    for d in copies.values():
        # No background `gc --auto` (a commit over ~6700 loose objects starts one): it would
        # change the 'loose' state mid-measure and hold gc.pid against the explicit gc.
        bt.git(d, "config", "gc.auto", "0")
    for d in copies.values():
        with_mirror(d)
    out: dict[str, Any] = {"refs_deleted": deleted}
    for state in ("loose", "gc"):
        if state == "gc":
            for d in copies.values():
                bt.git(d, "gc", "-q", "--prune=now")
                bt.git(d.parent / "repo-remote.git", "gc", "-q", "--prune=now")
        out[state] = {label: plain_git(d, reps) for label, d in copies.items()}
    return out


def one_size(ws: bt.Workspace, dbs: bt.MlflowDbs, n: int, reps: int, proc_reps: int,
             only_search: bool = False, mlflow_once: bool = False) -> dict[str, Any]:
    """Every workload at ``n`` runs; ``only_search``: the search and cold-index ones only.

    ``mlflow_once``: MLflow's searches are timed once each (its search-all of
    100k runs takes minutes a call); gitml's keep their repetitions.
    """
    import gitml
    import mlflow

    data = bt.dataset(n)
    res: dict[str, Any] = {"runs": n, "mlflow_timed_once": mlflow_once}
    m_reps, m_proc_reps = (0, 1) if mlflow_once else (reps, proc_reps)

    # gitml
    repo, g_exp = bt.gitml_fresh(ws, f"n{n}-gitml")
    g: dict[str, Any] = {"populate_s": bt.populate_gitml(data)}
    bt.say(f"    gitml : populated in {g['populate_s']:.1f} s")
    g.update(bt.search_series(
        lambda f: gitml.search_runs(experiment_ids=[g_exp], filter_string=f, order_by=bt.ORDER_BY), reps))
    g["fresh_process"] = bt.search_subprocess("gitml", str(repo), g_exp, proc_reps, warmup=True)
    index = repo / ".git" / "gitml" / "index.sqlite"
    cold = []
    for _ in range(proc_reps):
        for f in index.parent.glob("index.sqlite*"):
            f.unlink()
        cold.append(bt.search_subprocess("gitml", str(repo), g_exp, 1, warmup=False)["samples"][0])
    g["cold_index"] = {"samples": cold, "search_ms": bt.median([s["search_s"] for s in cold]) * 1e3,
                       "wall_ms": bt.median([s["wall_s"] for s in cold]) * 1e3}
    if only_search:
        res["gitml"] = g
        uri, m_exp, mdir = dbs.fresh(f"n{n}-mlflow")
        m0: dict[str, Any] = {"populate_s": bt.populate_mlflow_orm(uri, m_exp, mdir / "artifacts", data)}
        m0["first_process"] = bt.search_subprocess("mlflow", uri, m_exp, 1, warmup=False)
        m0.update(bt.search_series(
            lambda f: mlflow.search_runs(experiment_ids=[m_exp], filter_string=f, order_by=bt.ORDER_BY), m_reps))
        m0["fresh_process"] = bt.search_subprocess("mlflow", uri, m_exp, m_proc_reps, warmup=not mlflow_once)
        res["mlflow"] = m0
        return agreement(res)
    g["runs_list_ms"] = bt.median(bt.time_cmd([*bt.console_script("gitml"), "runs", "list"],
                                              proc_reps, repo)) * 1e3
    g["git_bytes_loose"] = disk_bytes(repo / ".git")
    bt.say("    gitml : searched; plain git with/without gitml refs ...")
    res["git"] = git_with_without(ws, repo, proc_reps)
    bt.git(repo, "gc", "-q", "--prune=now")
    g["git_bytes_gc"] = disk_bytes(repo / ".git")
    g["viewer"] = viewer_gitml(repo, g_exp, reps, proc_reps)
    res["gitml"] = g

    # MLflow
    uri, m_exp, mdir = dbs.fresh(f"n{n}-mlflow")
    m: dict[str, Any] = {"populate_s": bt.populate_mlflow_orm(uri, m_exp, mdir / "artifacts", data)}
    bt.say(f"    mlflow: populated (ORM bulk insert) in {m['populate_s']:.1f} s")
    m["first_process"] = bt.search_subprocess("mlflow", uri, m_exp, 1, warmup=False)
    m.update(bt.search_series(
        lambda f: mlflow.search_runs(experiment_ids=[m_exp], filter_string=f, order_by=bt.ORDER_BY), m_reps))
    bt.say("    mlflow: searched")
    m["fresh_process"] = bt.search_subprocess("mlflow", uri, m_exp, m_proc_reps, warmup=not mlflow_once)
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        m["runs_list_ms"] = bt.median(bt.time_cmd(
            [*bt.console_script("mlflow"), "runs", "list", "--experiment-id", m_exp], m_proc_reps, mdir)) * 1e3
    finally:
        if env_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_uri
    m["store_bytes"] = sum(disk_bytes(p) for p in mdir.iterdir())
    m["viewer"] = viewer_mlflow(uri, m_exp, mdir / "artifacts", max(m_reps, 1), m_proc_reps)
    res["mlflow"] = m
    return agreement(res)


def agreement(res: dict[str, Any]) -> dict[str, Any]:
    g, m = res["gitml"], res["mlflow"]
    for kind in ("filtered", "all"):
        res[f"{kind}_results_agree"] = (g[kind]["rows"] == m[kind]["rows"]
                                        and g[kind]["rmse_head"] == m[kind]["rmse_head"])
    return res


def viewer_gitml(repo: Path, exp: str, reps: int, proc_reps: int) -> dict[str, Any]:
    """``GET /runs`` of the viewer: warm, and first after NEW_RUNS runs were logged (the last measure of a size)."""
    from gitml.webview import create_app

    client = create_app(repo).test_client()
    page = bw.gitml_get(client, "/runs", experiment_id=exp)
    warm = bw.timed(page, reps)
    firsts = []
    for i in range(proc_reps):
        bt.populate_gitml(bt.dataset(NEW_RUNS, seed=1000 + i))
        t0 = bt.now()
        page()
        firsts.append((bt.now() - t0) * 1e3)
    return {"warm_ms": warm["warm_ms"], "first_ms": warm["cold_ms"], "first_after_new_ms": bt.median(firsts),
            "samples_after_new_ms": firsts, "page_bytes": len(warm["answer"])}


def viewer_mlflow(uri: str, exp: str, art: Path, reps: int, proc_reps: int) -> dict[str, Any]:
    """MLflow's server answering the runs page's search (50 runs), the same way as ``viewer_gitml``."""
    client = bw.mlflow_app(uri, art)
    search = bw.mlflow_search(client, {"experiment_ids": [exp], "max_results": 50})
    warm = bw.timed(search, reps)
    firsts = []
    for i in range(proc_reps):
        bt.populate_mlflow_orm(uri, exp, art, bt.dataset(NEW_RUNS, seed=1000 + i))
        t0 = bt.now()
        search()
        firsts.append((bt.now() - t0) * 1e3)
    return {"warm_ms": warm["warm_ms"], "first_ms": warm["cold_ms"], "first_after_new_ms": bt.median(firsts),
            "samples_after_new_ms": firsts}


def rows_for(r: dict[str, Any]) -> list[dict[str, Any]]:
    n, g, m = r["runs"], r["gitml"], r["mlflow"]
    mb = 1 / 2**20
    if "viewer" not in g:  # --only search
        spec = [
            ("search_filtered_warm", "search filtered, warm", "ms", g["filtered"]["warm_ms"], m["filtered"]["warm_ms"]),
            ("search_filtered_fresh_process", "search filtered, new process", "ms",
             g["fresh_process"]["search_ms"], m["fresh_process"]["search_ms"]),
            ("search_all_warm", "search all -> DataFrame, warm", "ms", g["all"]["warm_ms"], m["all"]["warm_ms"]),
            ("search_all_first", "search all -> DataFrame, 1st in process", "ms", g["all"]["cold_ms"],
             m["all"]["cold_ms"]),
            ("cold_first_search", "cold 1st search, new process", "ms",
             g["cold_index"]["search_ms"], m["first_process"]["search_ms"]),
        ]
        return [{"key": k, "workload": f"N={n:<6} {label}", "unit": u, "gitml": gv, "mlflow": mv,
                 "ratio": bt.ratio(mv, gv), "target": None, "meets_target": None, "runs": n}
                for k, label, u, gv, mv in spec]
    spec = [
        ("search_filtered_warm", "search filtered, warm", "ms", g["filtered"]["warm_ms"], m["filtered"]["warm_ms"]),
        ("search_filtered_fresh_process", "search filtered, new process", "ms",
         g["fresh_process"]["search_ms"], m["fresh_process"]["search_ms"]),
        ("search_all_warm", "search all -> DataFrame, warm", "ms", g["all"]["warm_ms"], m["all"]["warm_ms"]),
        ("cold_first_search", "cold 1st search, new process", "ms",
         g["cold_index"]["search_ms"], m["first_process"]["search_ms"]),
        ("runs_list", "`runs list` first page (wall)", "ms", g["runs_list_ms"], m["runs_list_ms"]),
        ("viewer_runs_warm", "viewer /runs vs server search, warm", "ms",
         g["viewer"]["warm_ms"], m["viewer"]["warm_ms"]),
        ("viewer_runs_after_new", f"viewer /runs, 1st after {NEW_RUNS} new runs", "ms",
         g["viewer"]["first_after_new_ms"], m["viewer"]["first_after_new_ms"]),
        ("size_loose", "size: .git as written / db+art", "MB", g["git_bytes_loose"] * mb, m["store_bytes"] * mb),
        ("size_gc", "size: .git after gc / db+art", "MB", g["git_bytes_gc"] * mb, m["store_bytes"] * mb),
        ("populate_per_run", "populate (gitml API, MLflow ORM)", "ms/run",
         g["populate_s"] / n * 1e3, m["populate_s"] / n * 1e3),
    ]
    return [{"key": k, "workload": f"N={n:<6} {label}", "unit": u, "gitml": gv, "mlflow": mv,
             "ratio": bt.ratio(mv, gv), "target": None, "meets_target": None, "runs": n}
            for k, label, u, gv, mv in spec]


def git_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for state in ("loose", "gc"):
        w, wo = r["git"][state]["with_refs"], r["git"][state]["without_refs"]
        for key in GIT_CMDS:
            rows.append({"runs": r["runs"], "state": state, "key": key, "with_refs_ms": w[key],
                         "without_refs_ms": wo[key], "slowdown": w[key] / wo[key] if wo[key] else float("nan")})
    return rows


def print_git(rows: list[dict[str, Any]]) -> None:
    bt.say("\n   plain git, gitml repo with its refs (runs ledger, notes, experiments) vs the same repo without them (ms)")
    head = f"   {'N':>7} {'state':<6} {'command':<26} {'with refs':>10} {'without':>10} {'slowdown':>9}"
    bt.say(head)
    for x in rows:
        bt.say(f"   {x['runs']:>7} {x['state']:<6} {GIT_LABELS[x['key']]:<26} {x['with_refs_ms']:>10.1f} "
               f"{x['without_refs_ms']:>10.1f} {x['slowdown']:>8.2f}x")


def plot(res: dict[str, Any], outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    keys = dict.fromkeys(r["key"] for r in res["summary"])
    for key in keys:
        rows = [r for r in res["summary"] if r["key"] == key]
        ns = [r["runs"] for r in rows]
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.plot(ns, [r["gitml"] for r in rows], "o-", label="gitml")
        ax.plot(ns, [r["mlflow"] for r in rows], "s-", label="MLflow (sqlite)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("runs")
        ax.set_ylabel(rows[0]["unit"])
        ax.set_title(rows[0]["workload"].split(None, 1)[1].strip(), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        p = outdir / f"scale_{key}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    for state in ("loose", "gc"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, key in enumerate(GIT_CMDS):
            rows = [x for x in res["git_summary"] if x["state"] == state and x["key"] == key]
            ns = [x["runs"] for x in rows]
            color = f"C{i}"
            ax.plot(ns, [x["with_refs_ms"] for x in rows], "o-", color=color, label=f"{GIT_LABELS[key]}, gitml refs")
            ax.plot(ns, [x["without_refs_ms"] for x in rows], "o--", color=color, alpha=0.6,
                    label=f"{GIT_LABELS[key]}, none")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("runs")
        ax.set_ylabel("ms")
        how = "both gc'd" if state == "gc" else "both as written, not gc'd"
        ax.set_title(f"plain git with / without gitml refs ({how})", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = outdir / f"scale_git_{state}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000",
                    help="comma-separated run counts (default 1000,10000; 100000 takes long, see above)")
    ap.add_argument("--repeat", type=int, default=3, help="warm search repetitions, median reported (default 3)")
    ap.add_argument("--proc-reps", type=int, default=3,
                    help="subprocess / cold / git repetitions, median reported (default 3)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--plot", type=Path, help="write PNG plots into this directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--only", choices=["search"],
                    help="'search': only the search workloads and the cold index build (no runs list, "
                         "viewer, sizes or plain git); for quick before/after figures, not for --plot")
    ap.add_argument("--mlflow-once-above", type=int, default=50_000, metavar="N",
                    help="above N runs, time each of MLflow's searches once, no repetitions (default 50000: "
                         "its search-all of 100k runs takes minutes a call)")
    ap.add_argument("--merge", type=Path, metavar="JSON",
                    help="an earlier --json file: its sizes that this run does not measure join the summary, "
                         "the JSON and the plots (to add 100000 to the 1000,10000 figures)")
    args = ap.parse_args(argv)
    if args.only and args.plot:
        ap.error("--plot needs every workload (no --only)")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    earlier = json.loads(args.merge.read_text()) if args.merge else None

    root, old_cwd = bt.enter_scratch("gitml-bench-scale-")
    ws = bt.Workspace(root)
    bt._PYCACHE = root / "pycache"
    t_start = bt.now()
    try:
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        meta = {"sizes": sizes, "repeat": args.repeat, "proc_reps": args.proc_reps, "only": args.only,
                "versions": bt.versions(), "tmp": str(root),
                "git_states": "each plain-git figure measured twice: 'loose' (both copies as written: "
                              "loose objects, loose refs; gc.auto=0) and 'gc' (both copies and their remotes git gc'd)"}
        bt.say(f"gitml scale bench, sizes {sizes}, in {root}")
        bt.say("  " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
        dbs = bt.MlflowDbs(ws)
        res: dict[str, Any] = {"meta": meta, "sizes": {}}
        summary: list[dict[str, Any]] = []
        gsum: list[dict[str, Any]] = []
        if earlier:
            kept = {k: v for k, v in earlier["sizes"].items() if int(k) not in sizes}
            res["sizes"].update(kept)
            summary += [x for x in earlier["summary"] if str(x["runs"]) in kept]
            gsum += [x for x in earlier.get("git_summary", []) if str(x["runs"]) in kept]
            meta["merged"] = {"from": str(args.merge), "sizes": sorted(int(k) for k in kept),
                              "meta": earlier["meta"]}
        for n in sizes:
            bt.say(f"\n== N = {n} runs")
            r = one_size(ws, dbs, n, args.repeat, args.proc_reps, only_search=args.only == "search",
                         mlflow_once=n > args.mlflow_once_above)
            res["sizes"][str(n)] = r
            res["sizes"] = dict(sorted(res["sizes"].items(), key=lambda kv: int(kv[0])))
            rows, grows = rows_for(r), (git_rows(r) if "git" in r else [])
            summary += rows
            gsum += grows
            bt.print_summary(rows)
            print_git(grows)
            if not (r["filtered_results_agree"] and r["all_results_agree"]):
                bt.say("    WARNING: gitml and MLflow search results differ")
            res["git_summary"] = gsum
            bt.write_results({**res, "summary": summary}, args.json, old_cwd)  # partial results survive
        summary.sort(key=lambda x: x["runs"])
        gsum.sort(key=lambda x: x["runs"])
        res["git_summary"] = gsum
        bt.say("\n== All sizes")
        bt.finish(res, summary, t_start, args.json, old_cwd)
        print_git(gsum)
        if args.plot:
            outdir = args.plot if args.plot.is_absolute() else Path(old_cwd) / args.plot
            for p in plot(res, outdir):
                bt.say(f"plot written to {p}")
    finally:
        bt.leave_scratch(root, old_cwd, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
