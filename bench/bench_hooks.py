#!/usr/bin/env python
"""Post-commit hook overhead: `git commit` with gitml's hooks installed minus without.

Targets (issue 8, part 1; issue 17): <= 100 ms for a commit that changes no params or
metrics file (the hook decides in the shell and never starts Python), and
<= 150 ms for a commit that changes params.yaml and metrics.json (the hook
logs a run from them).

Two identical repositories, one with `gitml hooks install` and one without,
get the same commits in turn; each `git commit` is timed as a user runs it.
Figures are medians over --commits commits of each kind.

    python bench/bench_hooks.py [--commits 21]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def timed_commit(repo: Path, message: str) -> float:
    git(repo, "add", "-A")
    t0 = time.perf_counter()
    out = subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, capture_output=True, text=True,
                         check=False)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"git commit failed in {repo}: {out.stderr}")
    if "warning" in out.stderr:
        raise SystemExit(f"the hook warned in {repo}: {out.stderr}")
    return elapsed


def edit(repo: Path, i: int, watched: bool) -> None:
    with open(repo / "train.py", "a") as f:
        f.write(f"# change {i}\n")
    if watched:
        (repo / "params.yaml").write_text(f"train:\n  lr: {0.001 * (i + 1)}\n  epochs: {i}\nseed: 42\n")
        (repo / "metrics.json").write_text(json.dumps({"acc": 0.5 + i / 1000, "loss": {"train": 1 / (i + 1)}}))


def count_runs(repo: Path) -> int:
    out = subprocess.run([sys.executable, "-m", "gitml", "runs", "list", "--json", "-n", "100000"], cwd=repo,
                         capture_output=True, text=True, check=True)
    return len(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=21, help="commits of each kind per repository")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitml-bench-hooks-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n"
                                         "[init]\n\tdefaultBranch = main\n")
        os.environ.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
        for var in ("GIT_DIR", "GIT_WORK_TREE", "GITML_REPO"):
            os.environ.pop(var, None)
        plain, hooked = root / "plain", root / "hooked"
        for repo in (plain, hooked):
            repo.mkdir()
            git(repo, "init", "-q")
            (repo / "train.py").write_text("print('train')\n")
            edit(repo, 0, watched=True)
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "initial")
        subprocess.run([sys.executable, "-m", "gitml", "hooks", "install", "--post-commit"], cwd=hooked, check=True,
                       capture_output=True)
        times: dict[tuple[str, bool], list[float]] = {}
        for watched in (False, True):
            for i in range(1, args.commits + 2):  # the first commit of each kind is a warm-up
                for repo in (plain, hooked):
                    edit(repo, i, watched)
                    t = timed_commit(repo, f"commit {i}")
                    if i > 1:
                        times.setdefault((repo.name, watched), []).append(t)
        runs = count_runs(hooked)
        assert runs == args.commits + 1, f"expected {args.commits + 1} runs, found {runs}"
        assert count_runs(plain) == 0

    print(f"post-commit hook overhead, median of {args.commits} commits (git {git_version()}, "
          f"Python {sys.version.split()[0]})")
    print(f"{'commit':<28}{'without hook':>14}{'with hook':>12}{'overhead':>11}{'target':>9}")
    for watched, label, target in ((False, "nothing to log", 100), (True, "params.yaml + metrics.json", 150)):
        base = statistics.median(times[("plain", watched)]) * 1000
        with_hook = statistics.median(times[("hooked", watched)]) * 1000
        overhead = with_hook - base
        verdict = "ok" if overhead <= target else "MISSED"
        print(f"{label:<28}{base:>11.1f} ms{with_hook:>9.1f} ms{overhead:>8.1f} ms{target:>6} ms  {verdict}")


def git_version() -> str:
    return subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
