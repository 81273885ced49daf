"""`gitml run` / `gitml rerun` on small MLproject repositories made by the tests, with real git."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import git, gitml_cli, run_rev

TRAIN = """
import json, sys
import gitml

with gitml.start_run():
    gitml.log_metric("alpha_seen", float(sys.argv[1]))
    gitml.log_text(open("version.txt").read(), "version_used.txt")
print("VERSION", open("version.txt").read().strip(), "ARGS", json.dumps(sys.argv[1:]))
if float(sys.argv[1]) < 0:
    sys.exit(3)
"""

MLPROJECT = """
name: demo
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      label: {type: string, default: "x"}
    command: "python train.py {alpha} {label}"
  count:
    parameters:
      n: int
    command: "python -c 'import sys; print(int(sys.argv[1]) * 2)' {n}"
  quoted:
    parameters:
      label: string
    command: "python train.py 1 \\"label={label}\\" 'sq={label}' $'ansi={label}'"
"""


@pytest.fixture
def project(repo: Path) -> Path:
    (repo / "MLproject").write_text(MLPROJECT)
    (repo / "train.py").write_text(TRAIN)
    (repo / "version.txt").write_text("v1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "project v1")
    git(repo, "tag", "v1")
    (repo / "version.txt").write_text("v2\n")
    git(repo, "commit", "-qam", "project v2")
    return repo


def run_json(repo: Path, run_id: str) -> dict:
    return json.loads(gitml_cli(repo, "runs", "show", run_id, "--json").stdout)


def last_run_id(out: str) -> str:
    line = [ln for ln in out.splitlines() if ln.startswith("gitml run ")][-1]
    return line.split()[2].rstrip(":")


def test_run_at_a_tag_uses_the_tags_code(project):
    out = gitml_cli(project, "run", ".", "-v", "v1", "-P", "alpha=0.7")
    assert "VERSION v1" in out.stdout
    run_id = last_run_id(out.stderr)
    run = run_json(project, run_id)
    assert run["data"]["params"] == {"alpha": "0.7", "label": "x"}
    assert run["data"]["metrics"]["alpha_seen"] == 0.7
    tags = run["data"]["tags"]
    assert tags["mlflow.project.entryPoint"] == "main" and tags["mlflow.source.type"] == "PROJECT"
    v1 = git(project, "rev-parse", "v1^{commit}").strip()
    assert tags["mlflow.source.git.commit"] == v1
    assert git(project, "rev-parse", f"{run_rev(project, run_id)}^").strip() == v1
    assert run["info"]["status"] == "FINISHED"
    # stdout kept as an artifact; the user's work tree untouched, no worktree left behind
    files = {f["path"] for f in json.loads(gitml_cli(project, "artifacts", "list", run_id, "--json").stdout)}
    assert {"stdout.txt", "stderr.txt", "version_used.txt"} <= files
    assert (project / "version.txt").read_text() == "v2\n"
    assert git(project, "status", "--short") == ""
    assert git(project, "worktree", "list").count("\n") == 1


def test_run_from_a_bare_repo_url_with_subdir(project, tmp_path, monkeypatch):
    bare = tmp_path / "remote.git"
    sub = project / "sub"
    sub.mkdir()
    (sub / "MLproject").write_text("entry_points:\n  main:\n    command: python -c \"print('from the subdir')\"\n")
    git(project, "add", ".")
    git(project, "commit", "-qm", "subdir project")
    git(tmp_path, "clone", "-q", "--bare", str(project), str(bare))
    tracker = tmp_path / "tracker"
    tracker.mkdir()
    git(tracker, "init", "-q")
    git(tracker, "commit", "-q", "--allow-empty", "-m", "init")
    monkeypatch.delenv("GITML_REPO", raising=False)
    out = gitml_cli(tracker, "run", f"file://{bare}", "-v", "v1", "-P", "alpha=1.5")
    assert "VERSION v1" in out.stdout
    run_id = last_run_id(out.stderr)
    run = run_json(tracker, run_id)
    v1 = git(project, "rev-parse", "v1^{commit}").strip()
    assert run["data"]["tags"]["mlflow.source.git.repoURL"] == f"file://{bare}"
    assert git(tracker, "rev-parse", f"{run_rev(tracker, run_id)}^").strip() == v1
    assert git(tracker, "for-each-ref", "refs/gitml-incoming") == ""
    assert git(tracker, "fsck", "--strict", "--no-dangling").strip() == ""
    out = gitml_cli(tracker, "run", f"{bare}#sub")
    assert "from the subdir" in out.stdout


def test_failing_entry_point_is_failed_with_its_exit_code(project):
    out = gitml_cli(project, "run", ".", "-P", "alpha=-1", check=False)
    assert out.returncode == 3
    run_id = last_run_id(out.stderr)
    run = run_json(project, run_id)
    assert run["info"]["status"] == "FAILED"
    assert run["data"]["tags"]["gitml.exit_code"] == "3"


@pytest.mark.parametrize("args, words", [
    (["-e", "nope"], "nope"),
    (["-e", "count"], "'n'"),
    (["-P", "alpha=abc"], "alpha"),
    (["-e", "count", "-P", "n=1.5"], "int"),
    (["-v", "no-such-tag"], "no-such-tag"),
    (["-P", "noequals"], "key=value"),
])
def test_bad_input_is_refused_before_anything_runs(project, args, words):
    before = gitml_cli(project, "runs", "list", "--json").stdout
    out = gitml_cli(project, "run", ".", *args, check=False)
    assert out.returncode != 0 and words in out.stderr, out.stderr
    assert "VERSION" not in out.stdout
    assert gitml_cli(project, "runs", "list", "--json").stdout == before


def test_malformed_mlproject_and_conda_env_are_clear_errors(project):
    (project / "MLproject").write_text("entry_points: [unclosed\n")
    out = gitml_cli(project, "run", ".", check=False)
    assert out.returncode != 0 and "MLproject" in out.stderr
    (project / "MLproject").write_text("conda_env: conda.yaml\npython_env: python_env.yaml\n"
                                       "entry_points:\n  main:\n    command: python train.py 1 x\n")
    out = gitml_cli(project, "run", ".", check=False)
    assert out.returncode != 0 and "conda_env" in out.stderr and "python_env" in out.stderr
    (project / "MLproject").write_text("conda_env: conda.yaml\nentry_points:\n  main:\n    command: python train.py 1 x\n")
    (project / "conda.yaml").write_text("name: x\ndependencies: [python=3.11]\n")
    out = gitml_cli(project, "run", ".", "--env-manager", "virtualenv", check=False)
    assert out.returncode != 0 and "--env-manager local" in out.stderr
    out = gitml_cli(project, "run", ".", "--env-manager", "local")
    assert "VERSION v2" in out.stdout


def test_hostile_parameter_values_reach_the_program_verbatim(project):
    hostile = "x'; touch pwned; echo '$(touch pwned2) `touch pwned3`"
    out = gitml_cli(project, "run", ".", "-P", "alpha=1", "-P", f"label={hostile}", "-P", "extra=a b")
    args = json.loads(out.stdout.split("ARGS", 1)[1].strip())
    assert args == ["1", hostile, "--extra", "a b"]
    assert not any(p.name.startswith("pwned") for p in project.rglob("pwned*"))


def test_quoted_placeholders_pass_hostile_values_verbatim(project):
    """issue 14: `command: "echo \\"label={label}\\""` with -P 'label=$(touch X)' created X."""
    hostile = "$(touch pwned1) `touch pwned2` \"; touch pwned3; \" \\ $HOME ! ' \u00e9\nnext line\\"
    out = gitml_cli(project, "run", ".", "-e", "quoted", "-P", f"label={hostile}")
    args = json.loads(out.stdout.split("ARGS", 1)[1].strip())
    assert args == ["1", f"label={hostile}", f"sq={hostile}", f"ansi={hostile}"]
    assert not list(project.rglob("pwned*"))


def test_rerun_of_a_dirty_tree_run_reproduces_its_files(project):
    (project / "version.txt").write_text("uncommitted\n")
    out = gitml_cli(project, "run", ".", "-P", "alpha=0.25")
    assert "VERSION uncommitted" in out.stdout
    first = last_run_id(out.stderr)
    (project / "version.txt").write_text("changed again\n")
    out = gitml_cli(project, "rerun", first, "-P", "label=again")
    assert "VERSION uncommitted" in out.stdout
    second = last_run_id(out.stderr)
    old, new = run_json(project, first), run_json(project, second)
    assert new["data"]["params"] == {"alpha": "0.25", "label": "again"}
    assert new["data"]["tags"]["gitml.rerun_of"] == first
    assert git(project, "rev-parse", f"{run_rev(project, second)}^").strip() == \
        git(project, "rev-parse", f"{run_rev(project, first)}^").strip()
    assert old["info"]["experiment_id"] == new["info"]["experiment_id"]
    assert (project / "version.txt").read_text() == "changed again\n"
    assert new["info"]["run_name"] == old["info"]["run_name"]  # a rerun keeps the name
    assert new["data"]["tags"]["mlflow.source.name"] == str(project.resolve())  # the project, not "."


def test_errors_name_the_users_project_and_runs_record_its_url(project):
    bad = gitml_cli(project, "run", ".", "-e", "nope", check=False)
    assert bad.returncode != 0 and f"{project.resolve()}/MLproject" in bad.stderr
    assert "gitml-run" not in bad.stderr  # not the temporary checkout, gone by now
    git(project, "remote", "add", "origin", "https://git.example.com/team/churn.git")
    out = gitml_cli(project, "run", ".", "-P", "alpha=0.5")
    run = run_json(project, last_run_id(out.stderr))
    assert run["data"]["tags"]["mlflow.source.git.repoURL"] == "https://git.example.com/team/churn.git"
    again = run_json(project, last_run_id(gitml_cli(project, "rerun", run["info"]["run_id"]).stderr))
    assert again["data"]["tags"]["mlflow.source.git.repoURL"] == "https://git.example.com/team/churn.git"


def test_project_without_mlproject_runs_a_script(repo):
    (repo / "hello.py").write_text("import sys; print('hello', sys.argv[1:])\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "script")
    out = gitml_cli(repo, "run", ".", "-e", "hello.py", "-P", "n=3")
    assert "hello ['--n', '3']" in out.stdout


@pytest.mark.slow
def test_virtualenv_from_python_env_is_cached(project, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    (project / "python_env.yaml").write_text(f"python: \"{py}\"\nbuild_dependencies: []\ndependencies: []\n")
    (project / "MLproject").write_text(MLPROJECT.replace("name: demo", "name: demo\npython_env: python_env.yaml"))
    (project / "where.py").write_text("import sys; print('PREFIX', sys.prefix)\n")
    git(project, "add", ".")
    git(project, "commit", "-qm", "venv")
    out = gitml_cli(project, "run", ".", "-e", "where.py")
    prefix = out.stdout.split("PREFIX", 1)[1].strip()
    assert prefix.startswith(str(tmp_path / "cache" / "gitml" / "envs"))
    envs = list((tmp_path / "cache" / "gitml" / "envs").iterdir())
    assert len(envs) == 1
    stamp = os.stat(envs[0]).st_mtime_ns
    out = gitml_cli(project, "run", ".", "-P", "alpha=0.1")  # a gitml-logging entry point in the same venv
    assert "VERSION v2" in out.stdout
    assert [p.name for p in (tmp_path / "cache" / "gitml" / "envs").iterdir()] == [envs[0].name]
    assert os.stat(envs[0]).st_mtime_ns == stamp
    run = run_json(project, last_run_id(out.stderr))
    assert run["data"]["tags"]["mlflow.project.env"] == "virtualenv"
    assert run["data"]["metrics"]["alpha_seen"] == 0.1


MLFLOW_EXAMPLE = {
    # mlflow/mlflow-example's shape: an MLproject with a python_env, train.py logging with `import mlflow`
    "MLproject": """
name: tutorial
python_env: python_env.yaml
entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: float, default: 0.1}
    command: "python train.py {alpha} {l1_ratio}"
  own_store:
    command: "python own_store.py"
""",
    "python_env.yaml": "python: \"3.11\"\nbuild_dependencies: [pip]\ndependencies: [mlflow, scikit-learn]\n",
    "train.py": """
import sys
import numpy as np
import mlflow
import mlflow.sklearn
from sklearn.linear_model import ElasticNet

alpha, l1_ratio = float(sys.argv[1]), float(sys.argv[2])
rng = np.random.RandomState(40)
X = rng.rand(60, 3)
y = X @ np.array([1.0, 2.0, 3.0]) + rng.rand(60) * 0.1
with mlflow.start_run():
    lr = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42).fit(X, y)
    rmse = float(np.sqrt(np.mean((lr.predict(X) - y) ** 2)))
    print("Elasticnet model (alpha=%f, l1_ratio=%f): RMSE %f" % (alpha, l1_ratio, rmse))
    mlflow.log_param("alpha", alpha)
    mlflow.log_param("l1_ratio", l1_ratio)
    mlflow.log_metric("rmse", rmse)
    mlflow.sklearn.log_model(lr, name="model")
""",
    # a script that points MLflow at a store of its own, inside the temporary checkout
    "own_store.py": """
from mlflow import MlflowClient
client = MlflowClient("sqlite:///mlflow.db")
run = client.create_run(client.create_experiment("mine"))
client.log_metric(run.info.run_id, "lost_before", 1.0)
client.set_terminated(run.info.run_id)
""",
}


@pytest.fixture
def mlflow_example(repo: Path) -> Path:
    for name, text in MLFLOW_EXAMPLE.items():
        (repo / name).write_text(text.lstrip())
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "mlflow-example")
    return repo


def test_unmodified_mlflow_project_logs_into_the_gitml_run(mlflow_example):
    """Issue 16: `gitml run` of mlflow-example finished while the project's `import mlflow` logged
    its metrics and model into the temporary checkout, deleted afterwards. Now the child gets
    MLFLOW_TRACKING_URI=gitml:<repo> and MLFLOW_RUN_ID, so everything lands in the gitml run."""
    out = gitml_cli(mlflow_example, "run", ".", "-P", "alpha=0.42", "--env-manager", "local")
    assert "RMSE" in out.stdout, out.stderr
    run_id = last_run_id(out.stderr)
    run = run_json(mlflow_example, run_id)
    assert run["info"]["status"] == "FINISHED"
    assert run["data"]["params"] == {"alpha": "0.42", "l1_ratio": "0.1"}
    assert 0 < run["data"]["metrics"]["rmse"] < 2
    listed = json.loads(gitml_cli(mlflow_example, "runs", "list", "--json").stdout)
    assert [r["info"]["run_id"] for r in listed] == [run_id], "one run, not a second one made by MLflow"
    files = {f["path"] for f in json.loads(gitml_cli(mlflow_example, "artifacts", "list", run_id, "model",
                                                      "--json").stdout)}
    assert {"model/MLmodel", "model/requirements.txt"} <= files
    import gitml

    gitml.set_tracking_uri(mlflow_example)
    try:
        model = gitml.pyfunc.load_model(f"runs:/{run_id}/model", allow_pickle=True)
        assert model.predict([[0.1, 0.2, 0.3]]).shape == (1,)
    finally:
        gitml.set_tracking_uri(None)
    assert git(mlflow_example, "status", "--short") == ""
    assert not list(mlflow_example.rglob("mlruns")) and not list(mlflow_example.rglob("mlflow.db"))


def test_a_projects_own_mlflow_store_is_kept_with_a_warning(mlflow_example):
    """Issue 16: a project that writes mlflow.db (or mlruns/) in its temporary checkout loses nothing:
    the store is kept as artifacts of the run (mlflow-local/...) and a one-line warning names it."""
    import sqlite3

    out = gitml_cli(mlflow_example, "run", ".", "-e", "own_store", "--env-manager", "local")
    run_id = last_run_id(out.stderr)
    warning = [line for line in out.stderr.splitlines() if "mlflow.db" in line]
    assert len(warning) == 1 and "mlflow-local/mlflow.db" in warning[0] and run_id[:12] in warning[0]
    dest = mlflow_example.parent / "kept"
    gitml_cli(mlflow_example, "artifacts", "download", run_id, "mlflow-local/mlflow.db", "-d", str(dest))
    db = sqlite3.connect(dest / "mlflow-local" / "mlflow.db")
    assert db.execute("SELECT key, value FROM metrics").fetchall() == [("lost_before", 1.0)]
    db.close()
