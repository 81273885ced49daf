"""The scoring server for real: `gitml serve` under gunicorn on 127.0.0.1, real HTTP, real MLflow beside it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import git, gitml_cli

pytest.importorskip("sklearn")

X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "b": [1.0, 0.0, 3.0, 2.0, 5.0, 4.0]})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, path: str, body: bytes | str | None = None, content_type: str = "application/json",
            method: str | None = None) -> tuple[int, dict | str]:
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


@contextlib.contextmanager
def server(args: list[str], cwd: Path, port: int, ready_path: str = "/ping", timeout: float = 90):
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
                                 # mlflow starts `uvicorn` from PATH
                                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read()}")
            try:
                if request(port, ready_path)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError("server did not start")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def gitml_serve(model: str, cwd: Path, port: int, *extra: str):
    return server([sys.executable, "-m", "gitml", "serve", model, "--port", str(port), *extra], cwd, port)


@pytest.fixture
def registered(tracking, repo, monkeypatch):
    """Model 'rf' with v0.0.1 (y = a + b) in production and v0.0.2 (y = 10a + 10b) registered."""
    from sklearn.linear_model import LinearRegression

    models = []
    for k in (1, 10):
        with tracking.start_run():
            m = LinearRegression().fit(X, k * (X.a + X.b))
            tracking.sklearn.log_model(m, "model", input_example=X[:2], registered_model_name="rf")
            models.append(m)
    gitml_cli(repo, "models", "promote", "rf", "1", "production")
    monkeypatch.delenv("GITML_REPO")
    return repo, models


PAYLOADS = {
    "dataframe_split": ("application/json", json.dumps({"dataframe_split": X[:3].to_dict(orient="split")})),
    "dataframe_records": ("application/json", json.dumps({"dataframe_records": X[:3].to_dict(orient="records")})),
    "instances": ("application/json", json.dumps({"instances": X[:3].to_dict(orient="records")})),
    "inputs": ("application/json", json.dumps({"inputs": X[:3].to_dict(orient="list")})),
    "csv": ("text/csv", X[:3].to_csv(index=False)),
    "csv-utf8": ("text/csv; charset=utf-8", X[:3].to_csv(index=False)),
}


def test_every_payload_format_predicts_like_the_model(registered):
    repo, models = registered
    port = free_port()
    want = models[0].predict(X[:3]).tolist()
    with gitml_serve("rf#production", repo, port):
        for name, (ctype, body) in PAYLOADS.items():
            status, got = request(port, "/invocations", body, ctype)
            assert status == 200, (name, got)
            np.testing.assert_allclose(got["predictions"], want, err_msg=name)
        buf = io.BytesIO()
        X[:3].to_parquet(buf)
        status, got = request(port, "/invocations", buf.getvalue(), "application/vnd.apache.parquet")
        assert status == 200 and np.allclose(got["predictions"], want)
        assert request(port, "/ping") == (200, "\n") or request(port, "/ping")[0] == 200
        assert request(port, "/health")[0] == 200
        status, version = request(port, "/version")
        assert status == 200
        assert (version["model"], version["version"], version["number"]) == ("rf", "v0.0.1", 1)
        assert version["run_id"] and version["stages"] == ["production"]


@pytest.mark.parametrize("body, ctype, status, words", [
    ("{not json", "application/json", 400, "valid JSON"),
    ("[1, 2]", "application/json", 400, "Received a list"),
    ('{"columns": ["a"]}', "application/json", 400, "exactly one of the input fields"),
    ('{"inputs": [[1, 2]], "instances": [[1, 2]]}', "application/json", 400, "exactly one of the input fields"),
    ('{"dataframe_split": {"columns": ["a", "c"], "data": [[1, 2]]}}', "application/json", 400, "missing inputs ['b']"),
    ('{"dataframe_records": [{"a": "x", "b": 1.0}]}', "application/json", 400, "'a'"),
    ('{"dataframe_split": [[1, 2]]}', "application/json", 400, "must be a dictionary"),
    ('{"inputs": [[1, 2]], "params": 3}', "application/json", 400, "'params' must be a JSON object"),
    ("a,b\n1,2", "text/plain", 415, "only supports the following content types"),
    ("a,b\n1,2", "text/csv; charset=latin-1", 415, "only supports UTF-8"),
    ("a,b\nx,y", "text/csv", 400, "Failed to parse input as a Pandas DataFrame"),
])
def test_bad_requests_are_4xx_json_and_the_server_keeps_serving(registered, body, ctype, status, words):
    repo, models = registered
    port = free_port()
    with gitml_serve("rf@v0.0.1", repo, port, "--workers", "1"):
        got_status, got = request(port, "/invocations", body, ctype)
        assert got_status == status, got
        assert set(got) == {"error_code", "message"} and words in got["message"], got
        ok, preds = request(port, "/invocations", *reversed(PAYLOADS["inputs"]))
        assert ok == 200 and np.allclose(preds["predictions"], models[0].predict(X[:3]))


def test_limits_methods_and_unknown_paths(registered):
    repo, _ = registered
    port = free_port()
    with gitml_serve("models:/rf/1", repo, port, "--workers", "1", "--max-body-mb", "0.001"):
        status, got = request(port, "/invocations", json.dumps({"inputs": [[1.0, 2.0]] * 200}))
        assert status == 413 and got["error_code"] == "REQUEST_LIMIT_EXCEEDED" and "over the limit" in got["message"]
        status, got = request(port, "/invocations", method="GET")
        assert status == 405 and "POST" in got["message"]
        status, got = request(port, "/nope")
        assert status == 404 and got["error_code"] == "ENDPOINT_NOT_FOUND"
        assert request(port, "/invocations", *reversed(PAYLOADS["inputs"]))[0] == 200


def test_server_follows_the_stage_without_dropping_requests(registered):
    repo, models = registered
    port = free_port()
    results: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            results.append(request(port, "/invocations", *reversed(PAYLOADS["inputs"]))[0])

    with gitml_serve("rf#production", repo, port, "--poll", "0.2"):
        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1)
        gitml_cli(repo, "models", "promote", "rf", "v0.0.2", "production")
        deadline = time.time() + 30
        while request(port, "/version")[1]["version"] != "v0.0.2":
            assert time.time() < deadline, "the server did not follow the stage"
            time.sleep(0.2)
        # every worker answers with the new version once it has switched
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        _, got = request(port, "/invocations", *reversed(PAYLOADS["inputs"]))
        np.testing.assert_allclose(got["predictions"], models[1].predict(X[:3]))
    assert results and set(results) == {200}, f"{len(results)} requests, statuses {set(results)}"


def test_same_predictions_as_mlflow_models_serve(registered, tmp_path):
    pytest.importorskip("mlflow")
    repo, models = registered
    model_dir = tmp_path / "model"
    gitml_cli(repo, "artifacts", "download", json.loads(gitml_cli(repo, "models", "show", "rf", "--json").stdout)
              ["versions"][0]["run_id"], "model", "-d", str(tmp_path))
    ours, theirs = free_port(), free_port()
    mlflow_cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir), "-p", str(theirs),
                  "--env-manager", "local"]
    with gitml_serve(str(model_dir), repo, ours), server(mlflow_cmd, repo, theirs, timeout=180):
        for name, (ctype, body) in PAYLOADS.items():
            a, b = request(ours, "/invocations", body, ctype), request(theirs, "/invocations", body, ctype)
            assert a[0] == b[0] == 200, (name, a, b)
            np.testing.assert_allclose(a[1]["predictions"], b[1]["predictions"], err_msg=name)
        # both refuse the same bad payloads with a 4xx
        for body in ('{"inputs": [[1, 2]], "instances": [[1, 2]]}', "{not json"):
            assert request(ours, "/invocations", body)[0] == request(theirs, "/invocations", body)[0] == 400


def test_predict_command_reads_and_writes_csv_json_parquet(registered, tmp_path):
    repo, models = registered
    want = models[1].predict(X)
    X.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "in.json").write_text(json.dumps({"dataframe_split": X.to_dict(orient="split")}))
    X.to_parquet(tmp_path / "in.parquet")
    gitml_cli(repo, "predict", "models:/rf/2", "-i", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"))
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["prediction"], want)
    out = gitml_cli(repo, "predict", "rf@v0.0.2", "-i", str(tmp_path / "in.json")).stdout
    np.testing.assert_allclose(json.loads(out)["predictions"], want)
    gitml_cli(repo, "predict", "rf@latest", "-i", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"))
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "out.parquet")["prediction"], want)
    bad = gitml_cli(repo, "predict", "rf@latest", "-i", str(tmp_path / "in.txt"), check=False)
    assert bad.returncode != 0 and "use .csv, .json or .parquet" in bad.stderr
    (tmp_path / "cols.csv").write_text("a,c\n1,2\n")
    bad = gitml_cli(repo, "predict", "rf@latest", "-i", str(tmp_path / "cols.csv"), check=False)
    assert bad.returncode != 0 and "missing inputs ['b']" in bad.stderr
    assert not (tmp_path / "out2.csv").exists()


def test_docker_context_serves_from_a_fresh_venv(registered, tmp_path):
    repo, models = registered
    ctx = tmp_path / "ctx"
    gitml_cli(repo, "build-docker", "rf#production", "-d", str(ctx))
    assert {p.name for p in ctx.iterdir()} >= {"Dockerfile", "requirements.txt", "entrypoint.sh", "gitml", "model",
                                                "model-info.json"}
    assert "ENTRYPOINT" in (ctx / "Dockerfile").read_text()
    reqs = (ctx / "requirements.txt").read_text().splitlines()
    assert all("==" in r for r in reqs) and any(r.startswith("scikit-learn==") for r in reqs)
    assert any(r.startswith("gunicorn==") for r in reqs)
    assert json.loads((ctx / "model-info.json").read_text())["version"] == "v0.0.1"
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                          str(ctx / "requirements.txt")], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    port = free_port()
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc_env = {**clean_env, "PYTHON": str(py), "PORT": str(port), "HOST": "127.0.0.1", "WORKERS": "1"}
    elsewhere = tmp_path / "elsewhere"  # no git repository around: the image has none either
    elsewhere.mkdir()
    proc = subprocess.Popen([str(ctx / "entrypoint.sh")], cwd=elsewhere, env=proc_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            with contextlib.suppress(OSError):
                if request(port, "/ping")[0] == 200:
                    break
            assert time.time() < deadline
            time.sleep(0.3)
        status, got = request(port, "/invocations", *reversed(PAYLOADS["dataframe_split"]))
        assert status == 200
        np.testing.assert_allclose(got["predictions"], models[0].predict(X[:3]))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_refuses_what_it_cannot_load(registered):
    repo, _ = registered
    for model, words in (("rf#staging", "No version of 'rf' is in stage 'staging'"),
                         ("nothing-here/", "has no MLmodel"), ("models:/nope/1", "No registered model")):
        out = gitml_cli(repo, "serve", model, "--port", str(free_port()), check=False)
        assert out.returncode != 0 and words in out.stderr, out.stderr
    assert git(repo, "status", "--short") == ""
