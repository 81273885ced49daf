"""kill -9 soak: processes logging to runs are SIGKILLed at random moments; count what is lost.

Each trial starts a writer process that logs params, tags, metric points and
small artifacts to one run, with the background flusher committing every
few milliseconds (so kills land inside git writes: ref locks, CAS rounds,
note batches). After each call returns, the writer prints an acknowledgement
on its stdout. The parent SIGKILLs it after a random delay, sometimes kills
a recoverer half-way too, then recovers with ``gitml runs recover`` and
compares what the run holds with what was acknowledged:

- points acknowledged but missing from the recovered run (the goal: 0);
- points recovered twice;
- artifacts and params acknowledged but missing;
- runs not KILLED after recovery, logs left in live/ or live-failed/, stale ref locks.

    python bench/soak_kill9.py --trials 200            # about 5-8 minutes on 2 cores
    python bench/soak_kill9.py --trials 20 --json out.json

Exit status 1 if anything was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = r"""
import os, sys, gitml
run = gitml.start_run(run_name="soak")
print("run", run.info.run_id, flush=True)
gitml.log_param("seed", sys.argv[1])
print("param seed", flush=True)
i = 0
while True:
    gitml.log_metric("loss", 1.0 / (i + 1), step=i)
    print("m", i, flush=True)
    if i % 25 == 0:
        gitml.set_tag("at", str(i))
        with open(f"art{i}.txt", "w") as f:
            f.write(f"artifact {i}\n")
        gitml.log_artifact(f"art{i}.txt", "arts")
        print("a", i, flush=True)
    i += 1
"""


def sh(cwd: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {out.stderr}")
    return out


def read_acks(proc: subprocess.Popen, seconds: float) -> list[str]:
    """Lines the writer printed during ``seconds`` (then it is killed)."""
    lines: list[str] = []
    buf = b""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read()  # type: ignore[union-attr]
    buf += rest
    text = buf.decode(errors="replace")
    lines = text.split("\n")
    return lines[:-1]  # a line cut by the kill is not an acknowledgement


def trial(repo: Path, env: dict[str, str], rng: random.Random, n: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(n)], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = read_acks(proc, rng.uniform(0.3, 1.5))
    proc.stderr.close()  # type: ignore[union-attr]
    run_id = next((ln.split()[1] for ln in lines if ln.startswith("run ")), None)
    if run_id is None:
        return {"trial": n, "skipped": "killed before start_run returned"}
    acked = [int(ln.split()[1]) for ln in lines if ln.startswith("m ")]
    arts = [int(ln.split()[1]) for ln in lines if ln.startswith("a ")]
    killed_recoverer = rng.random() < 0.25
    if killed_recoverer:  # a recoverer killed half-way must not lose or double anything either
        rec = subprocess.Popen([sys.executable, "-m", "gitml", "runs", "recover"], cwd=repo, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.4))
        rec.send_signal(signal.SIGKILL)
        rec.wait()
    out = sh(repo, sys.executable, "-m", "gitml", "runs", "recover", env=env)
    check = sh(repo, sys.executable, "-c", (
        "import json, sys, gitml\n"
        "c = gitml.Client()\nr = c.get_run(sys.argv[1])\n"
        "h = [m.step for m in c.get_metric_history(sys.argv[1], 'loss')]\n"
        "a = [f.path for f in c.list_artifacts(sys.argv[1], 'arts')]\n"
        "print(json.dumps({'status': r.info.status, 'steps': h, 'arts': a, 'params': r.data.params}))\n"),
        run_id, env=env)
    got = json.loads(check.stdout)
    steps = got["steps"]
    lost = sorted(set(acked) - set(steps))
    doubled = len(steps) - len(set(steps))
    missing_arts = sorted(set(f"arts/art{i}.txt" for i in arts) - set(got["arts"]))
    git_dir = repo / ".git"
    locks = [str(p) for p in (git_dir / "refs").rglob("*.lock")]
    return {
        "trial": n, "run": run_id, "acked": len(acked), "recovered": len(set(steps)), "lost": len(lost),
        "lost_steps": lost[:20], "doubled": doubled, "artifacts_acked": len(arts),
        "artifacts_lost": len(missing_arts), "param_lost": "seed" not in got["params"],
        "status": got["status"], "recoverer_killed": killed_recoverer,
        "left_live": len(list((git_dir / "gitml" / "live").glob("*.log"))),
        "left_failed": len(list((git_dir / "gitml" / "live-failed").glob("*.log"))),
        "stale_locks": locks, "recover_stderr": out.stderr.strip()[-300:],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--flush-interval", default="0.005", help="GITML_FLUSH_INTERVAL of the writers (seconds)")
    ap.add_argument("--json", help="write every trial's figures here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="gitml-soak-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        env = {**os.environ, "GITML_FLUSH_INTERVAL": args.flush_interval, "GIT_AUTHOR_NAME": "soak",
               "GIT_AUTHOR_EMAIL": "soak@example.com", "GIT_COMMITTER_NAME": "soak",
               "GIT_COMMITTER_EMAIL": "soak@example.com"}
        sh(repo, "git", "init", "-q", env=env)
        (repo / ".gitignore").write_text("art*.txt\n")
        sh(repo, "git", "add", ".", env=env)
        sh(repo, "git", "commit", "-qm", "init", env=env)
        started = time.monotonic()
        results = []
        for n in range(args.trials):
            r = trial(repo, env, rng, n)
            results.append(r)
            bad = r.get("lost") or r.get("doubled") or r.get("artifacts_lost") or r.get("param_lost") \
                or r.get("left_live") or r.get("left_failed") or r.get("stale_locks") \
                or (r.get("status") not in (None, "KILLED"))
            if bad or n % 20 == 0:
                print(json.dumps(r), flush=True)
        done = [r for r in results if "run" in r]
        summary = {
            "trials": args.trials, "runs": len(done),
            "points_acknowledged": sum(r["acked"] for r in done),
            "points_recovered": sum(r["recovered"] for r in done),
            "points_lost": sum(r["lost"] for r in done),
            "points_doubled": sum(r["doubled"] for r in done),
            "artifacts_acknowledged": sum(r["artifacts_acked"] for r in done),
            "artifacts_lost": sum(r["artifacts_lost"] for r in done),
            "params_lost": sum(r["param_lost"] for r in done),
            "not_killed_status": sum(r["status"] != "KILLED" for r in done),
            "recoverers_killed": sum(r["recoverer_killed"] for r in done),
            "logs_left": sum(r["left_live"] + r["left_failed"] for r in done),
            "stale_locks_left": sum(len(r["stale_locks"]) for r in done),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(summary, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps({"summary": summary, "trials": results}, indent=2))
        lost = summary["points_lost"] + summary["points_doubled"] + summary["artifacts_lost"] + summary["params_lost"]
        return 1 if lost or summary["not_killed_status"] or summary["logs_left"] or summary["stale_locks_left"] else 0


if __name__ == "__main__":
    sys.exit(main())
