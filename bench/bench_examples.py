"""Public MLflow examples as the yardstick of ``import gitml as mlflow``.

Each script in ``bench/examples/`` (public MLflow examples and docs snippets,
adapted to run offline on scikit-learn's bundled data sets) runs twice, each
time in a fresh temporary directory:

- **MLflow**: the script as it is, with real ``mlflow`` on a sqlite store
  (``MLFLOW_TRACKING_URI=sqlite:///<dir>/mlflow.db``, copied from one template
  database migrated once);
- **gitml**: in a fresh git repository (one commit), with only the imports
  renamed: ``import mlflow`` and ``import mlflow.<x>`` become ``import gitml as
  mlflow``, ``from mlflow.<x> import ...`` becomes ``from gitml.<x> import ...``;
- **plugin**: the script as it is, with real ``mlflow`` and
  ``MLFLOW_TRACKING_URI=gitml:<a fresh git repository>`` (the store plugin).

It prints one row per script (ok, or the first error line) and a summary.
``--gitml-path`` picks the gitml checkout to test (its directory goes first on
``PYTHONPATH``), so the same bench measures a base checkout and a branch::

    python bench/bench_examples.py                           # this checkout
    python bench/bench_examples.py --gitml-path /work/base   # another one
    python bench/bench_examples.py --only 07,08 --side gitml --show-output
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
ROOT = HERE.parent

# Scripts that need a part of issue 16 built elsewhere (merged later), so a
# failure under gitml on a branch without it is expected.
NEEDS: dict[str, str] = {}

_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Denied|Model|Found|Mismatch)\b|"
                       r"[A-Za-z_][\w.]*: )")


@dataclass
class Outcome:
    ok: bool
    seconds: float
    error: str  # the first error line, "" when ok
    stdout: str
    stderr: str


def rename_imports(source: str) -> str:
    """The script as a user switching to gitml would edit it: only the import lines change."""
    out = []
    for line in source.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if re.fullmatch(r"import mlflow(\.[\w.]+)?( as mlflow)?", stripped):
            line = f"{indent}import gitml as mlflow"
        elif m := re.fullmatch(r"from mlflow((\.[\w.]+)?) import (.+)", stripped):
            line = f"{indent}from gitml{m.group(1)} import {m.group(3)}"
        out.append(line)
    return "\n".join(out) + "\n"


def first_error(stderr: str) -> str:
    """The line naming the exception (the last ``Name: message`` line of a traceback)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    tail = []
    for i, ln in enumerate(lines):
        if ln.startswith("Traceback (most recent call last)"):
            tail = lines[i:]
    for ln in reversed(tail or lines):
        if _EXC_LINE.match(ln) and not ln.startswith(("File ", "warnings.warn")) and "Warning" not in ln.split(":")[0]:
            return ln
    return (tail or lines or ["(no output)"])[-1]


def run(script: Path, cwd: Path, env: dict[str, str], timeout: float) -> Outcome:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, script.name], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return Outcome(False, time.perf_counter() - start, f"timed out after {timeout:.0f} s",
                       str(e.stdout or ""), str(e.stderr or ""))
    seconds = time.perf_counter() - start
    ok = proc.returncode == 0
    return Outcome(ok, seconds, "" if ok else first_error(proc.stderr), proc.stdout, proc.stderr)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME",
                "MLFLOW_EXPERIMENT_ID", "GITML_REPO", "GITML_RUN_ID", "GITML_EXPERIMENT_ID",
                "GITML_EXPERIMENT_NAME", "GITML_ALLOW_PICKLE", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(var, None)
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONWARNINGS": "ignore",
                "MPLBACKEND": "Agg", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"})
    return env


def mlflow_template(tmp: Path, env: dict[str, str]) -> Path:
    """A sqlite database with MLflow's schema, migrated once (migrations are setup, not the examples)."""
    db = tmp / "template.db"
    code = f"import mlflow; mlflow.MlflowClient('sqlite:///{db}').search_experiments()"
    subprocess.run([sys.executable, "-c", code], cwd=tmp, env=env, check=True, capture_output=True, timeout=600)
    return db


def run_mlflow(script: Path, tmp: Path, template: Path, env: dict[str, str], timeout: float) -> Outcome:
    cwd = tmp / "mlflow" / script.stem
    cwd.mkdir(parents=True)
    shutil.copy(template, cwd / "mlflow.db")
    shutil.copy(script, cwd / script.name)
    return run(script, cwd, {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}, timeout)


def run_gitml(script: Path, tmp: Path, gitml_path: Path, env: dict[str, str], timeout: float) -> Outcome:
    cwd = tmp / "gitml" / script.stem
    fresh_repo(cwd, env)
    (cwd / script.name).write_text(rename_imports(script.read_text()))
    path = os.pathsep.join(p for p in (str(gitml_path), env.get("PYTHONPATH", "")) if p)
    return run(script, cwd, {**env, "PYTHONPATH": path}, timeout)


def fresh_repo(cwd: Path, env: dict[str, str]) -> None:
    cwd.mkdir(parents=True)
    git = ["git", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=cwd, check=True, env=env)
    (cwd / "README.md").write_text("# bench\n")
    subprocess.run(["git", "add", "README.md"], cwd=cwd, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "initial"], cwd=cwd, check=True, env=env)
    (cwd / ".gitignore").write_text("*\n")  # what the examples write is not source


def run_plugin(script: Path, tmp: Path, gitml_path: Path, env: dict[str, str], timeout: float) -> Outcome:
    """The script unmodified, real mlflow, logging into a git repository through the plugin."""
    cwd = tmp / "plugin" / script.stem
    fresh_repo(cwd, env)
    shutil.copy(script, cwd / script.name)
    path = os.pathsep.join(p for p in (str(gitml_path), env.get("PYTHONPATH", "")) if p)
    return run(script, cwd, {**env, "PYTHONPATH": path, "MLFLOW_TRACKING_URI": f"gitml:{cwd}"}, timeout)


def cell(o: Outcome | None, width: int) -> str:
    if o is None:
        return "-"
    text = f"ok ({o.seconds:.1f} s)" if o.ok else f"FAIL: {o.error}"
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated script prefixes or names, e.g. 07,08")
    ap.add_argument("--side", choices=("all", "mlflow", "gitml", "plugin"), default="all")
    ap.add_argument("--gitml-path", type=Path, default=ROOT, help="gitml checkout to test (default: this one)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per script run")
    ap.add_argument("--width", type=int, default=70, help="width of each result column")
    ap.add_argument("--json", type=Path, help="write every outcome (with output) here")
    ap.add_argument("--show-output", action="store_true", help="print each failing run's stderr tail")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    scripts = sorted(EXAMPLES.glob("[0-9]*.py"))
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        scripts = [s for s in scripts if any(s.stem.startswith(w) for w in wanted)]
    env = base_env()
    tmp = Path(tempfile.mkdtemp(prefix="gitml-bench-examples-"))
    print(f"scripts: {len(scripts)}  gitml: {args.gitml_path}  tmp: {tmp}", flush=True)
    results: dict[str, dict[str, Outcome | None]] = {}
    try:
        template = mlflow_template(tmp, env) if args.side in ("all", "mlflow") else None
        for script in scripts:
            row: dict[str, Outcome | None] = {"mlflow": None, "gitml": None, "plugin": None}
            if template is not None:
                row["mlflow"] = run_mlflow(script, tmp, template, env, args.timeout)
            if args.side in ("all", "gitml"):
                row["gitml"] = run_gitml(script, tmp, args.gitml_path.resolve(), env, args.timeout)
            if args.side in ("all", "plugin"):
                row["plugin"] = run_plugin(script, tmp, args.gitml_path.resolve(), env, args.timeout)
            results[script.stem] = row
            print(f"  {script.stem:<32} mlflow: {cell(row['mlflow'], 30):<32} gitml: {cell(row['gitml'], 30):<32} "
                  f"plugin: {cell(row['plugin'], 30)}", flush=True)
            if args.show_output:
                for side, o in row.items():
                    if o is not None and not o.ok:
                        print(f"    --- {side} stderr (tail) ---")
                        print("\n".join("    " + ln for ln in o.stderr.splitlines()[-15:]))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    w = args.width
    print()
    print(f"| {'script':<30} | {'MLflow (sqlite)':<{w}} | {'import gitml as mlflow':<{w}} | "
          f"{'mlflow + gitml: URI':<{w}} |")
    print(f"|{'-' * 32}|{'-' * (w + 2)}|{'-' * (w + 2)}|{'-' * (w + 2)}|")
    for name, row in results.items():
        print(f"| {name:<30} | {cell(row['mlflow'], w):<{w}} | {cell(row['gitml'], w):<{w}} | "
              f"{cell(row['plugin'], w):<{w}} |")
    print()
    n = len(results)
    m_ok = {k for k, r in results.items() if r["mlflow"] is not None and r["mlflow"].ok}
    g_ok = {k for k, r in results.items() if r["gitml"] is not None and r["gitml"].ok}
    p_ok = {k for k, r in results.items() if r["plugin"] is not None and r["plugin"].ok}
    if args.side in ("all", "mlflow"):
        print(f"MLflow runs {len(m_ok)} of {n}")
    if args.side in ("all", "gitml"):
        print(f"gitml (import renamed) runs {len(g_ok)} of {n}")
    if args.side in ("all", "plugin"):
        print(f"real mlflow with MLFLOW_TRACKING_URI=gitml: runs {len(p_ok)} of {n}")
    if args.side == "all":
        print(f"  of the {len(m_ok)} MLflow runs on sqlite, the plugin runs {len(m_ok & p_ok)}"
              + (f" (not: {', '.join(sorted(m_ok - p_ok))})" if m_ok - p_ok else ""))
        print(f"  of the {len(m_ok)} MLflow runs, gitml runs {len(m_ok & g_ok)}"
              + (f" (not: {', '.join(sorted(m_ok - g_ok))})" if m_ok - g_ok else ""))
        print(f"  gitml runs {len(g_ok - m_ok)} that MLflow fails" + (f": {', '.join(sorted(g_ok - m_ok))}"
                                                                    if g_ok - m_ok else ""))
    for name, why in NEEDS.items():
        if name in results and name not in g_ok:
            print(f"  {name} needs {why}")
    if args.json:
        args.json.write_text(json.dumps({k: {s: asdict(o) if o else None for s, o in r.items()}
                                         for k, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
