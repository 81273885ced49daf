"""gitml end to end, in a throwaway git repository.

A tiny training script is committed, run a few times with different
params (one run from uncommitted changes), and the results are read back
the ways a team would: the CLI, a search, `git log --notes=gitml`, and a
plain `git diff` of two runs. The best model is registered and promoted
with git tags (GTO's grammar), loaded by `models:/` URI, and the whole
thing travels to a teammate's clone through a bare remote.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TRAIN = textwrap.dedent(
    '''
    """Fit y = 3x + 1 by gradient descent and log it with the MLflow API names."""
    import random
    import sys

    import gitml as mlflow


    class Linear(mlflow.pyfunc.PythonModel):
        def __init__(self, w, b):
            self.w, self.b = w, b

        def predict(self, context, model_input, params=None):
            return [self.w * x + self.b for x in model_input["x"]]


    lr = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    random.seed(0)
    data = [(x / 10, 3 * x / 10 + 1 + random.gauss(0, 0.1)) for x in range(20)]

    mlflow.set_experiment("linear")
    with mlflow.start_run(run_name=f"lr-{lr}"):
        mlflow.log_params({"lr": lr, "epochs": epochs})
        w = b = 0.0
        for epoch in range(epochs):
            gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
            gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
            w, b = w - lr * gw, b - lr * gb
            mse = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
            mlflow.log_metric("mse", mse, step=epoch)
        mlflow.log_metrics({"w": w, "b": b})
        mlflow.set_tag("model", "linear")
        mlflow.log_dict({"w": w, "b": b}, "weights.json")   # an artifact
        mlflow.pyfunc.log_model(Linear(w, b), name="model")  # a model in MLflow's format
    print(f"lr={lr}: mse={mse:.4f} w={w:.3f} b={b:.3f}")
    '''
)


def sh(*args: str, cwd: Path) -> str:
    print(f"\n$ {' '.join(args)}", flush=True)
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    text = out.stdout + out.stderr
    print(text.rstrip(), flush=True)
    if out.returncode != 0:
        raise SystemExit(f"demo step failed: {' '.join(args)}")
    return out.stdout


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, body: dict | None = None) -> bytes:
    import json
    import urllib.request

    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


@contextlib.contextmanager
def background(cmd: list[str], repo: Path, ready_url: str):
    """Start a server, wait until ``ready_url`` answers, stop it afterwards."""
    import time

    print(f"\n$ {' '.join(cmd)} &", flush=True)
    server = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(150):
            try:
                http_get(ready_url)
                break
            except OSError:
                time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def serve_and_follow(gitml: list[str], repo: Path) -> None:
    import json
    import time

    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def get(path: str, body: dict | None = None) -> dict:
        return json.loads(http_get(url + path, body))

    cmd = [*gitml, "serve", "linear#production", "--port", str(port), "--workers", "2", "--poll", "0.5"]
    with background(cmd, repo, url + "/version"):
        payload = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}
        print(f"$ curl -X POST {url}/invocations -H 'Content-Type: application/json' -d '{json.dumps(payload)}'")
        print(json.dumps(get("/invocations", payload)))
        v = get("/version")
        print(f"$ curl {url}/version  ->  {v['model']} {v['version']} (run {v['run_id'][:12]})")
        sh(*gitml, "models", "promote", "linear", "v0.0.1", "production", "-m", "roll back to test", cwd=repo)
        for _ in range(100):
            if get("/version")["version"] == "v0.0.1":
                break
            time.sleep(0.2)
        v = get("/version")
        print(f"$ curl {url}/version  ->  {v['model']} {v['version']} (run {v['run_id'][:12]}): followed the tag")
        print(json.dumps(get("/invocations", payload)))
        sh(*gitml, "models", "promote", "linear", "v0.0.2", "production", cwd=repo)


def browse(gitml: list[str], repo: Path) -> None:
    """The web viewer: the same runs, charts and registry, over HTTP."""
    import json

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background([*gitml, "ui", "--port", str(port), "--workers", "1"], repo, url + "/api/models"):
        page = json.loads(http_get(url + "/api/runs?order_by=metrics.mse&per_page=3"))
        print(f"$ curl '{url}/api/runs?order_by=metrics.mse&per_page=3'   # {page['total']} runs; best three:")
        for r in page["runs"]:
            print(f"  {r['info']['run_id'][:8]}  {r['info']['run_name']:<20} mse={r['data']['metrics'].get('mse')}")
        trained = next(r for r in page["runs"] if r["info"]["run_name"].startswith("lr-"))["info"]["run_id"]
        history = json.loads(http_get(f"{url}/api/runs/{trained}/metrics/mse"))
        print(f"$ curl {url}/api/runs/{trained[:8]}/metrics/mse   # {len(history['values'])} points: its chart")
        best = page["runs"][0]["info"]["run_id"]
        for path in ("/runs", f"/runs/{best}", "/commits", "/models/linear", "/diff?base=HEAD~1&head=HEAD"):
            html = http_get(url + path)
            print(f"  GET {path:<45} {len(html):>6} bytes of HTML")
        print("(This viewer stops with the demo. To browse these runs yourself: ./demo.sh --keep, then the "
              "`gitml -C <repo> ui` it prints at the end.)")


def main() -> None:
    keep = "--keep" in sys.argv
    root = Path(tempfile.mkdtemp(prefix="gitml-demo-"))
    repo = root / "project"
    repo.mkdir()
    gitml = [sys.executable, "-m", "gitml"]
    python = sys.executable
    env_note = {"GIT_AUTHOR_NAME": "Demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
                "GIT_COMMITTER_NAME": "Demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}
    os.environ.update(env_note)
    try:
        print(f"# gitml demo in {repo}")
        sh("git", "init", "-q", "-b", "main", cwd=repo)
        (repo / "train.py").write_text(TRAIN)
        (repo / ".gitignore").write_text("data/\n")
        sh("git", "add", ".", cwd=repo)
        sh("git", "commit", "-q", "-m", "Add linear model training", cwd=repo)

        print("\n# 1. Train three times from the committed code")
        for lr in ("0.01", "0.1", "0.3"):
            sh(python, "train.py", lr, cwd=repo)

        print("\n# 2. Train once more from uncommitted changes: the run keeps a snapshot")
        (repo / "train.py").write_text(TRAIN.replace("else 50", "else 100"))
        sh(python, "train.py", "0.2", cwd=repo)  # 100 epochs now

        print("\n# 3. Read it back")
        sh(*gitml, "runs", "list", cwd=repo)
        sh(*gitml, "runs", "list", "-f", "metrics.mse < 0.02", "-o", "metrics.mse", cwd=repo)
        sh(*gitml, "log", cwd=repo)
        sh("git", "log", "--notes=gitml", "-1", cwd=repo)

        import json

        runs = json.loads(sh(*gitml, "runs", "list", "--json", "-o", "attributes.start_time ASC", cwd=repo))
        first, last = runs[0]["info"]["run_id"], runs[-1]["info"]["run_id"]
        sh(*gitml, "runs", "show", last[:8], cwd=repo)

        print("\n# 4. Runs are plain git: diff two of them, and see the snapshot of the dirty run")
        # Finished runs are entries of the runs ledger (16 refs however many runs); `gitml runs
        # commit` names a run's commit for plain git.
        sh("git", "for-each-ref", "refs/gitml/", cwd=repo)
        a = sh(*gitml, "runs", "commit", first[:8], cwd=repo).strip()
        b = sh(*gitml, "runs", "commit", last[:8], cwd=repo).strip()
        sh("git", "diff", "--stat", a, b, "--", "params.json", "run.json", "metrics", cwd=repo)
        sh("git", "diff", a, b, "--", "params.json", cwd=repo)
        sh("git", "diff", "HEAD", f"{b}^", "--", "train.py", cwd=repo)
        sh("git", "status", "--short", cwd=repo)

        print("\n# 5. Share with the team: runs through a git remote, artifacts through a DVC remote")
        remote = root / "origin.git"
        sh("git", "init", "-q", "--bare", "-b", "main", str(remote), cwd=root)
        sh("git", "remote", "add", "origin", str(remote), cwd=repo)
        sh("git", "push", "-q", "origin", "main", cwd=repo)
        sh(*gitml, "remote", "add", "-d", "store", str(root / "artifact-store"), cwd=repo)
        sh(*gitml, "push", cwd=repo)
        mate = root / "teammate"
        sh("git", "clone", "-q", str(remote), str(mate), cwd=root)
        sh(*gitml, "remote", "add", "-d", "store", str(root / "artifact-store"), cwd=mate)
        sh(*gitml, "pull", cwd=mate)
        sh(*gitml, "runs", "list", "-o", "metrics.mse", "-n", "2", cwd=mate)
        sh(*gitml, "artifacts", "download", last, "weights.json", "-d", str(root / "downloaded"), cwd=mate)
        print((root / "downloaded" / "weights.json").read_text())

        print("\n# 6. Register the two best models and promote one: the registry is git tags")
        best = json.loads(sh(*gitml, "runs", "list", "--json", "-o", "metrics.mse", "-n", "2", cwd=repo))
        for run in reversed(best):
            sh(*gitml, "models", "register", "linear", f"runs:/{run['info']['run_id']}/model",
               "-m", f"lr={run['data']['params']['lr']}", cwd=repo)
        sh(*gitml, "models", "promote", "linear", "v0.0.1", "staging", cwd=repo)
        sh(*gitml, "models", "promote", "linear", "v0.0.2", "production", cwd=repo)
        sh(*gitml, "models", "comment", "linear", "v0.0.2", "lowest mse; checked by hand", cwd=repo)
        sh(*gitml, "models", "show", "linear", cwd=repo)
        sh("git", "tag", "-n1", cwd=repo)
        sh(python, "-c", "import gitml, pandas; m = gitml.pyfunc.load_model('models:/linear/Production'); "
           "print('prediction at x=2:', m.predict(pandas.DataFrame({'x': [2.0]})))", cwd=repo)
        sh(*gitml, "push", cwd=repo)
        sh(*gitml, "pull", cwd=mate)
        sh(*gitml, "models", "history", "linear", cwd=mate)
        # A pickled model someone else saved runs code when loaded: gitml refuses it until the
        # teammate says they trust it (a model this machine saved in this repository needs nothing).
        sh(python, "-c", "import gitml, pandas\n"
           "try:\n    gitml.pyfunc.load_model('models:/linear@production')\n"
           "except gitml.models.trust.UntrustedModel as e:\n    print('refused without the opt-in:', str(e)[:110], '...')\n"
           "m = gitml.pyfunc.load_model('models:/linear@production', allow_pickle=True)\n"
           "print('teammate, same model at x=2:', m.predict(pandas.DataFrame({'x': [2.0]})))", cwd=mate)

        print("\n# 7. Serve the production model over HTTP (MLflow's scoring protocol); it follows the stage")
        serve_and_follow(gitml, repo)

        print("\n# 8. Batch scoring and a Docker build context")
        (root / "batch.csv").write_text("x\n0\n1\n2\n")
        sh(*gitml, "predict", "linear#production", "-i", str(root / "batch.csv"), "-o", str(root / "scored.csv"), cwd=repo)
        print((root / "scored.csv").read_text())
        sh(*gitml, "build-docker", "linear#production", "-d", str(root / "image"), cwd=repo)
        sh("ls", str(root / "image"), cwd=repo)

        print("\n# 9. Git workflow: a post-commit hook logs a run from params.yaml/metrics.json; diff and report")
        sh(*gitml, "hooks", "install", "--post-commit", cwd=repo)
        (repo / "params.yaml").write_text("lr: 0.25\nepochs: 80\n")
        (repo / "metrics.json").write_text('{"mse": 0.0115, "w": 3.01}\n')
        sh("git", "add", "params.yaml", "metrics.json", cwd=repo)
        sh("git", "commit", "-q", "-m", "Record tuned params and metrics", cwd=repo)
        sh(*gitml, "log", "--graph", "-n", "3", cwd=repo)
        sh(*gitml, "diff", "HEAD~1", "HEAD", cwd=repo)
        sh(*gitml, "report", "HEAD~1..HEAD", "-o", str(root / "pr-report"), "--max-plots", "0", cwd=repo)
        print((root / "pr-report" / "report.md").read_text())
        sh(*gitml, "hooks", "uninstall", cwd=repo)

        print("\n# 10. The web viewer (gitml ui): runs table, run pages with charts, commits, diff, registry")
        browse(gitml, repo)

        print("\n# 11. From Python, as with MLflow")
        sh(python, "-c", "import gitml; print(gitml.search_runs(experiment_names=['linear'], "
           "order_by=['metrics.mse'])[['params.lr', 'metrics.mse', 'status']].to_string())", cwd=repo)
        print(f"\nDemo finished. Repository: {repo}" + ("" if keep else " (removed; pass --keep to keep it)"))
        if keep:
            print(f"Browse it: {' '.join(gitml)} -C {repo} ui    (then open http://127.0.0.1:5050/)")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
