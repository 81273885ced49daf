"""The scoring server for real: `gitml serve` under gunicorn on 127.0.0.1, real HTTP, real MLflow beside it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
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

import gitml.pyfunc
from tests.conftest import close_tracking, copy_seed, git, gitml_cli, init_repo, seeding
from tests.slow_clients import answers_while_held, slow_clients

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


@pytest.fixture(scope="module")
def registered_seed(tmp_path_factory):
    """A repository with model 'rf': v0.0.1 (y = a + b) in production and v0.0.2 (y = 10a + 10b)
    registered; built once per module, as ``registered`` used to build it in every test."""
    import gitml
    from sklearn.linear_model import LinearRegression

    with seeding(tmp_path_factory, "registered") as base:
        repo = init_repo(base / "repo")
        gitml.set_tracking_uri(repo)
        models = []
        for k in (1, 10):
            with gitml.start_run():
                m = LinearRegression().fit(X, k * (X.a + X.b))
                gitml.sklearn.log_model(m, "model", input_example=X[:2], registered_model_name="rf")
                models.append(m)
        gitml_cli(repo, "models", "promote", "rf", "1", "production")
        yield repo, models


@pytest.fixture
def registered(registered_seed, tmp_path):
    """A copy of ``registered_seed``'s repository, with the tracking URI pointed at it; its models."""
    import gitml

    seed, models = registered_seed
    repo = copy_seed(seed, tmp_path / "registered")
    gitml.set_tracking_uri(repo)
    yield repo, models
    close_tracking()


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


BAD_REQUESTS = [
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
]


@pytest.mark.parametrize("body, ctype, status, words", BAD_REQUESTS)
def test_bad_requests_are_4xx_json_and_the_app_keeps_serving(registered, body, ctype, status, words):
    """Each bad request through the scoring app, in this process (the server below sends them all)."""
    from gitml.serving.server import make_app

    _, models = registered
    app = make_app("rf@v0.0.1")
    got_status, got = call(app, body, ctype)
    assert got_status == status, got
    assert set(got) == {"error_code", "message"} and words in got["message"], got
    ok, preds = call(app, *reversed(PAYLOADS["inputs"]))
    assert ok == 200 and np.allclose(preds["predictions"], models[0].predict(X[:3]))


def test_bad_requests_are_4xx_json_and_the_server_keeps_serving(registered):
    """The same bad requests to `gitml serve` under gunicorn: each a 4xx in JSON, then a good prediction."""
    repo, models = registered
    port = free_port()
    with gitml_serve("rf@v0.0.1", repo, port, "--workers", "1"):
        for body, ctype, status, words in BAD_REQUESTS:
            got_status, got = request(port, "/invocations", body, ctype)
            assert got_status == status, (body, got)
            assert set(got) == {"error_code", "message"} and words in got["message"], (body, got)
            ok, preds = request(port, "/invocations", *reversed(PAYLOADS["inputs"]))
            assert ok == 200 and np.allclose(preds["predictions"], models[0].predict(X[:3])), body


def test_slow_clients_do_not_stop_the_scoring_server(registered):
    """issue 14: 4 connections sending a header every 2 s kept `gitml serve` from answering /ping for 30 s.

    8 send their headers a line every 2 s and 8 more a 1000-byte body a byte
    a second; none finishes. /ping and a prediction must still be answered.
    """
    repo, models = registered
    port = free_port()
    with gitml_serve("rf@v0.0.1", repo, port), slow_clients(port, "/invocations", headers=8, bodies=8) as clients:
        assert answers_while_held(clients, f"http://127.0.0.1:{port}/ping") == [200] * 4
        status, preds = request(port, "/invocations", *reversed(PAYLOADS["inputs"]))
        assert status == 200 and np.allclose(preds["predictions"], models[0].predict(X[:3]))
        assert clients.still_open() == 16  # they still hold their connections


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


def test_serve_predict_and_docker_load_a_pickle_nobody_vouches_for_only_when_asked(tracking, repo, tmp_path,
                                                                                   monkeypatch):
    """issue 14: gitml serve ran a registered model's pickle payload. serve and predict now refuse it in
    one line naming the file and --allow-pickle, which opts in; build-docker writes the opt-in into the
    image only when asked."""
    from sklearn.linear_model import LinearRegression

    from tests.test_trust import Trojan, evil_version

    marker = tmp_path / "PWNED"
    model = LinearRegression().fit(X, X.a + X.b)
    uri = evil_version(tracking, tmp_path, Trojan(marker, model))
    monkeypatch.delenv("GITML_REPO")
    (tmp_path / "in.csv").write_text(X[:3].to_csv(index=False))
    for args in (["serve", uri, "--port", str(free_port())], ["predict", uri, "-i", str(tmp_path / "in.csv")]):
        try:  # a server that loaded the model would serve until killed
            out = subprocess.run([sys.executable, "-m", "gitml", *args], cwd=repo, capture_output=True, text=True,
                                 timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"gitml {args[0]} loaded the model instead of refusing it") from None
        assert out.returncode == 1, out.stderr
        assert out.stderr.startswith("Error: Refusing to load ") and "model.pkl" in out.stderr
        assert "--allow-pickle" in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert not marker.exists()
    out = gitml_cli(repo, "predict", uri, "-i", str(tmp_path / "in.csv"), "--allow-pickle")
    np.testing.assert_allclose(json.loads(out.stdout)["predictions"], model.predict(X[:3]))
    assert marker.exists()
    marker.unlink()
    port = free_port()
    with gitml_serve(uri, repo, port, "--allow-pickle"):
        status, got = request(port, "/invocations", *reversed(PAYLOADS["csv"]))
        assert status == 200
        np.testing.assert_allclose(got["predictions"], model.predict(X[:3]))
    assert marker.exists()
    for flag, opted in (([], False), (["--allow-pickle"], True)):
        ctx = tmp_path / f"context-{opted}"
        gitml_cli(repo, "build-docker", uri, "-d", str(ctx), *flag)
        assert ("GITML_ALLOW_PICKLE=1" in (ctx / "Dockerfile").read_text()) == opted
        assert json.loads((ctx / "model-info.json").read_text())["allow_pickle"] is opted


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


@pytest.mark.slow
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


# -- in-process: the WSGI app, the protocol, the follower -------------------------------------------


def call(app, body: bytes | str, content_type: str = "application/json", path: str = "/invocations",
         method: str = "POST") -> tuple[int, dict]:
    """One request to a WSGI app, in this process."""
    data = body.encode() if isinstance(body, str) else body
    env = {"PATH_INFO": path, "REQUEST_METHOD": method, "CONTENT_TYPE": content_type,
           "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)}
    statuses: list[str] = []
    out = b"".join(app(env, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0]), json.loads(out)


def column_schema(**types: str):
    from gitml.models.signature import ModelSignature, Schema

    return ModelSignature(Schema([{"type": t, "name": n, "required": True} for n, t in types.items()]))


class EchoTypes(gitml.pyfunc.PythonModel):
    """Answers with the dtype and the values of each column it was given."""

    def predict(self, context, model_input, params=None):
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return {c: [str(frame[c].dtype), [repr(v) for v in frame[c].tolist()]] for c in frame.columns}


def echo_app(tmp_path: Path, **types: str):
    """The WSGI app serving EchoTypes with a signature of these column types.

    Saved and loaded in a repository of its own, which records the custom
    model's pickle as written here (gitml.models.trust), so it loads without
    the pickle opt-in, and nothing is recorded in the repository around the cwd.
    """
    from gitml.serving.server import make_app
    from gitml.tracking import runs

    if not (tmp_path / ".git").exists():
        git(tmp_path, "init", "-q")
    runs.set_default_location(str(tmp_path))
    try:
        gitml.pyfunc.save_model(tmp_path / "echo", python_model=EchoTypes(), signature=column_schema(**types))
        return make_app(str(tmp_path / "echo"))
    finally:
        runs.set_default_location(None)


@pytest.mark.filterwarnings("ignore:Constructing a DataFrame from a list of sequences with mismatched lengths")
@pytest.mark.parametrize("rows", [
    [[1, 2.5], [3, 4.5]],  # an int column beside a float one
    [[1, 2], [3]],  # ragged: pandas fills with NaN
    [[1.0, 2.0], [3.0, 4.0]],
    [[1, 2], [3, 4]],
    [[True, False]],
    [[True, 1]],
    [[1, None], [2, 3.0]],
    [[2**63, 1]],
    [["x", 1.5]],
])
def test_split_rows_make_the_frame_pandas_makes(rows):
    from gitml.serving.protocol import parse_request

    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}})
    got, _ = parse_request(body.encode(), "application/json")
    pd.testing.assert_frame_equal(got, pd.DataFrame(data=rows, columns=["a", "b"]))


@pytest.mark.filterwarnings("ignore:Constructing a DataFrame from a list of sequences with mismatched lengths")
def test_split_int_and_float_columns_fit_a_long_double_signature(tmp_path):
    app = echo_app(tmp_path, a="long", b="double")
    for data in ([[1, 2.5]], [[1, 2.5], [3]]):
        split = {"dataframe_split": {"columns": ["a", "b"], "data": data}}
        records = {"dataframe_records": [dict(zip(["a", "b"], row)) for row in data]}
        status, split_out = call(app, json.dumps(split))
        assert status == 200, split_out
        assert call(app, json.dumps(records)) == (200, split_out)
        assert split_out["predictions"]["a"][0] == "int64" and split_out["predictions"]["b"][0] == "float64"


def test_a_numeric_table_of_the_fitted_columns_skips_the_frame_and_predicts_the_same(tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from gitml.serving.protocol import ArrayInput, parse_request
    from gitml.serving.server import make_app

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.random(80), "b": rng.random(80), "c": rng.random(80)})
    y = (X.a + 2 * X.b > 1.4).astype(int)
    plain = LogisticRegression().fit(X, y)
    piped = Pipeline([("cols", ColumnTransformer([("s", StandardScaler(), ["c", "a", "b"])])),
                      ("lr", LogisticRegression())]).fit(X, y)
    rows = X[:6]
    payloads = {
        "split with index": {"dataframe_split": rows.to_dict(orient="split")},
        "split": {"dataframe_split": {"columns": ["a", "b", "c"], "data": rows.to_numpy().tolist()}},
        "other column order": {"dataframe_split": rows[["c", "a", "b"]].to_dict(orient="split")},
        "ints": {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 0, 1], [0, 1, 0]]}},
        "records": {"dataframe_records": rows.to_dict(orient="records")},
    }
    for name, model in (("plain", plain), ("piped", piped)):
        gitml.sklearn.save_model(model, tmp_path / name, input_example=X[:2])
        app = make_app(str(tmp_path / name))
        lane = app.holder.current.model.array_lane
        assert lane == ((["a", "b", "c"], "float64") if name == "plain" else None)
        for what, payload in payloads.items():
            status, got = call(app, json.dumps(payload))
            frame = pd.DataFrame(**{k: v for k, v in next(iter(payload.values())).items()}) \
                if "dataframe_split" in payload else pd.DataFrame(payload["dataframe_records"])
            assert status == 200 and got["predictions"] == model.predict(frame[["a", "b", "c"]]).tolist(), what
        taken = {what for what, payload in payloads.items()
                 if isinstance(parse_request(json.dumps(payload).encode(), "application/json",
                                             array_lane=lane)[0], ArrayInput)}
        assert taken == ({"split with index", "split"} if lane else set())
        status, got = call(app, json.dumps({"dataframe_split": {"columns": ["a", "b", "c"],
                                                                "data": [[0.1, float("nan"), 0.3]]}}))
        assert status == 400 and "NaN" in got["message"]


def test_the_array_lane_gives_the_frame_paths_numbers_to_the_last_bit(tmp_path):
    # BLAS rounds a row-major and a column-major array differently; the frame's array is column-major
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import FunctionTransformer

    from gitml.serving.server import make_app

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(50, 4)), columns=list("abcd"))
    model = LinearRegression().fit(X, rng.normal(size=50))
    gitml.sklearn.save_model(model, tmp_path / "lr", input_example=X[:2])
    app = make_app(str(tmp_path / "lr"))
    assert app.holder.current.model.array_lane is not None
    rows = rng.normal(size=(8, 4)).tolist()
    status, got = call(app, json.dumps({"dataframe_split": {"columns": list("abcd"), "data": rows}}))
    assert status == 200 and got["predictions"] == model.predict(pd.DataFrame(rows, columns=list("abcd"))).tolist()

    # a FunctionTransformer's function may pick columns by name: it keeps its DataFrame
    picks = FunctionTransformer(_double_b).fit(X)
    gitml.sklearn.save_model(picks, tmp_path / "ft", input_example=X[:2], pyfunc_predict_fn="transform",
                             serialization_format="cloudpickle")
    app = make_app(str(tmp_path / "ft"), allow_pickle=True)
    assert app.holder.current.model.array_lane is None
    status, got = call(app, json.dumps({"dataframe_split": X[:2].to_dict(orient="split")}))
    assert status == 200 and got["predictions"] == [{"b": 2 * X.b[0]}, {"b": 2 * X.b[1]}]


def _double_b(frame):
    return frame[["b"]] * 2


ALL_TYPES = {"i": "integer", "f": "float", "d": "datetime", "bn": "binary", "l": "long", "s": "string",
             "b": "boolean", "x": "double"}
ROW = {"i": 1, "f": 1, "d": "2024-01-02T03:04:05", "bn": "aGVsbG8=", "l": 2.0, "s": "x", "b": True, "x": 3}


def mlflow_parse(payload: dict, schema):
    """What MLflow 3's scoring server makes of a JSON payload, by its own functions."""
    from mlflow.types import Schema as MlflowSchema
    from mlflow.utils.proto_json_utils import dataframe_from_parsed_json, parse_tf_serving_input

    theirs = MlflowSchema.from_json(schema.to_json())
    if "dataframe_split" in payload:
        return dataframe_from_parsed_json(payload["dataframe_split"], "split", theirs)
    if "dataframe_records" in payload:
        return dataframe_from_parsed_json(payload["dataframe_records"], "records", theirs)
    return parse_tf_serving_input(payload, theirs)


def as_frame(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, list):  # records under "inputs", as MLflow leaves them
        return pd.DataFrame(data)
    return pd.DataFrame({k: np.atleast_1d(v) for k, v in data.items()})


@pytest.mark.parametrize("fmt", ["split", "records", "inputs", "inputs-records", "instances"])
def test_json_columns_are_cast_to_the_signature_as_mlflow_casts_them(tmp_path, fmt):
    pytest.importorskip("mlflow")
    from gitml.serving.protocol import parse_request

    rows = [ROW, {**ROW, "i": -7, "f": 2.5, "d": "2024-03-04T00:00:00", "bn": "d29ybGQ=", "l": 3, "x": 4.25}]
    payload = {
        "split": {"dataframe_split": {"columns": list(ROW), "data": [list(r.values()) for r in rows]}},
        "records": {"dataframe_records": rows},
        "inputs": {"inputs": {k: [r[k] for r in rows] for k in ROW}},
        "inputs-records": {"inputs": rows},
        "instances": {"instances": rows},
    }[fmt]
    signature = column_schema(**ALL_TYPES)
    ours, _ = parse_request(json.dumps(payload).encode(), "application/json", signature)
    theirs = mlflow_parse(payload, signature.inputs)
    pd.testing.assert_frame_equal(as_frame(ours), as_frame(theirs))
    # and the model gets them: each column as its schema type
    status, got = call(echo_app(tmp_path, **ALL_TYPES), json.dumps(payload))
    assert status == 200, got
    dtypes = {k: v[0] for k, v in got["predictions"].items()}
    assert dtypes == {"i": "int32", "f": "float32", "d": "datetime64[ns]", "bn": "object", "l": "int64",
                      "s": dtypes["s"], "b": "bool", "x": "float64"}
    # dataframe_* decode base64 binary; inputs/instances pass the text's bytes, as MLflow does
    assert got["predictions"]["bn"][1][0] == (repr(b"hello") if fmt in ("split", "records") else repr(b"aGVsbG8="))


@pytest.mark.parametrize("column, value, words", [
    ("i", 1.5, "1.5 is not an integer"),  # MLflow truncates to 1
    ("i", 2**40, "outside the range of integer"),  # MLflow wraps around to 0
    ("l", None, "cannot be null"),
    ("x", "x", "'x' is not a number"),
    ("f", 2**30 + 1, "beyond 2**24"),
    ("b", "false", "is not true, false, 0 or 1"),  # MLflow makes it True
    ("b", 2, "2 is not true, false, 0 or 1"),
    ("d", "not a date", "datetime"),
    ("bn", "a", "binary"),
    ("bn", 5, "not a base64 string"),
])
def test_json_columns_that_do_not_cast_are_400_naming_the_column(tmp_path, column, value, words):
    app = echo_app(tmp_path, **ALL_TYPES)
    for payload in ({"dataframe_records": [ROW, {**ROW, column: value}]},
                    {"dataframe_split": {"columns": list(ROW), "data": [list({**ROW, column: value}.values())]}}):
        status, got = call(app, json.dumps(payload))
        assert status == 400 and f"column {column!r}" in got["message"] and words in got["message"], got
    assert call(app, json.dumps({"dataframe_records": [ROW]}))[0] == 200


def bridge_request(bridge, chunks: list[bytes], headers: list[tuple[bytes, bytes]], raw_path: bytes = b"/x",
                   query: bytes = b"", stall: bool = False, sent_messages: list | None = None) -> tuple[int, bytes]:
    """One HTTP request through an ASGI app, in this process: (status, body).

    The body arrives in ``chunks``; with ``stall`` the client then sends nothing more, ever.
    ``sent_messages`` gets every ASGI message the app sent.
    """
    import asyncio
    from urllib.parse import unquote

    async def run() -> list[dict]:
        pending = list(chunks)
        sent: list[dict] = []

        async def receive() -> dict:
            if pending:
                chunk = pending.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}
            if stall:
                await asyncio.Event().wait()
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": unquote(raw_path.decode()), "raw_path": raw_path, "query_string": query, "root_path": "",
                 "headers": headers, "server": ("127.0.0.1", 5000), "client": ("127.0.0.1", 40000)}
        await bridge(scope, receive, send)
        return sent

    messages = asyncio.run(run())
    assert messages[0]["type"] == "http.response.start"
    assert messages[-1]["type"] == "http.response.body" and not messages[-1].get("more_body")
    if sent_messages is not None:
        sent_messages.extend(messages)
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])


def environ_app(environ, start_response):
    """Answers with the environ it was given (the JSON-able part) and the body, in three chunks."""
    seen = {k: v for k, v in environ.items() if isinstance(v, str)}
    seen["body"] = environ["wsgi.input"].read().decode()
    start_response("200 OK", [("Content-Type", "application/json")])
    text = json.dumps(seen).encode()
    return [text[:5], b"", text[5:]]


def test_bridge_hands_the_app_a_wsgi_environ_and_streams_its_answer():
    from gitml.serving.asgi import WsgiBridge

    bridge = WsgiBridge(environ_app, max_body=100)
    status, body = bridge_request(bridge, [b"ab", b"cd"], [(b"content-type", b"text/csv"), (b"x-a", b"1"),
                                                          (b"x-a", b"2"), (b"host", b"127.0.0.1:5000")],
                                  raw_path=b"/caf%C3%A9/x%2Fy", query=b"q=%20z&r")
    got = json.loads(body)
    assert status == 200
    assert got["PATH_INFO"] == "/café/x/y".encode().decode("latin-1")  # PEP 3333: bytes as latin-1, as gunicorn
    assert (got["QUERY_STRING"], got["CONTENT_TYPE"], got["CONTENT_LENGTH"]) == ("q=%20z&r", "text/csv", "4")
    assert (got["HTTP_X_A"], got["HTTP_HOST"], got["REQUEST_METHOD"], got["body"]) == ("1,2", "127.0.0.1:5000",
                                                                                      "POST", "abcd")


def test_bridge_sends_a_small_answer_whole_and_streams_a_long_one_in_order():
    from gitml.serving.asgi import WHOLE_BODY, WsgiBridge

    def app(environ, start_response):
        size = int(environ["QUERY_STRING"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (bytes([i % 251]) * 4096 for i in range(size // 4096))

    bridge = WsgiBridge(app, max_body=100)
    for size, whole in ((8 * 4096, True), (WHOLE_BODY + 8 * 4096, False)):
        messages: list = []
        status, body = bridge_request(bridge, [b""], [], query=str(size).encode(), sent_messages=messages)
        assert status == 200 and body == b"".join(bytes([i % 251]) * 4096 for i in range(size // 4096))
        assert (len(messages) == 2) is whole, len(messages)  # start + the body, or start + block by block

    def listed(environ, start_response):  # the whole answer in memory (the scoring app's): back whole
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * (WHOLE_BODY + 1)]

    messages = []
    assert bridge_request(WsgiBridge(listed, max_body=100), [b""], [], sent_messages=messages)[1] == \
        b"x" * (WHOLE_BODY + 1)
    assert len(messages) == 2


def test_bridge_keeps_wsgi_order_with_write_and_refuses_new_headers_once_a_chunk_is_out():
    from gitml.serving.asgi import WsgiBridge

    def writes(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"A"
        write(b"B")  # PEP 3333: after what the app returned before it
        yield b"C"

    assert bridge_request(WsgiBridge(writes, max_body=100), [b""], [])[1] == b"ABC"

    def late_error(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            import sys

            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"error page"

    with pytest.raises(RuntimeError, match="boom"):
        bridge_request(WsgiBridge(late_error, max_body=100), [b""], [])


def test_bridge_refuses_a_body_over_the_limit_or_one_that_does_not_arrive():
    """issue 14: a body is read in the event loop, bounded in size (413) and time (408), before a thread runs the app."""
    from gitml.serving.asgi import WsgiBridge

    calls = []

    def app(environ, start_response):
        calls.append(environ)
        return environ_app(environ, start_response)

    bridge = WsgiBridge(app, max_body=10, body_seconds=0.2)
    status, body = bridge_request(bridge, [b"x"], [(b"content-length", b"11")])
    assert status == 413 and json.loads(body)["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    status, body = bridge_request(bridge, [b"123456", b"789012"], [(b"transfer-encoding", b"chunked")])
    assert status == 413 and "limit of 10 bytes" in json.loads(body)["message"]
    status, body = bridge_request(bridge, [b"1"], [(b"content-length", b"5")], stall=True)
    assert status == 408 and json.loads(body)["error_code"] == "REQUEST_TIMEOUT"
    assert calls == []  # no thread was ever taken
    assert bridge_request(bridge, [b"12345"], [(b"content-length", b"5")])[0] == 200


DEEP = 100_000


@pytest.mark.parametrize("body, ctype, types, words", [
    ('{"inputs": ' + "[" * DEEP + "]" * DEEP + "}", "application/json", {}, "nested too deeply"),
    ('{"inputs": {"a": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}}", "application/json", {}, "nested too deeply"),
    ('{"a": ' * DEEP + "1" + "}" * DEEP, "application/json", {}, "nested too deeply"),
    ('{"inputs": [[1, 2]], "params": {"p": ' + "[" * DEEP + "]" * DEEP + "}}", "application/json", {},
     "nested too deeply"),
    ('{"dataframe_split": {"columns": ["a"], "data": [' + "[" * DEEP + "]" * DEEP + "]}}", "application/json",
     {"a": "double"}, "nested too deeply"),
    ('{"inputs": {"a": ["\\ud800"]}}', "application/json", {"a": "string"}, "not valid Unicode"),
    ("a\n123456789012345678901234567890\n", "text/csv", {"a": "long"}, "Failed to parse input as a Pandas"),
    (b'{"inputs": {"a": ["\xff\xfe"]}}', "application/json", {"a": "string"}, "valid JSON"),
    ('"a JSON string"', "application/json", {}, "Received str"),
    ("null", "application/json", {}, "Received NoneType"),
])
def test_adversarial_bodies_are_400_json_not_500(tmp_path, body, ctype, types, words):
    """issue 14: {"inputs": [[[...10^5 levels...]]]} was a 500 (RecursionError in json.loads).

    So were a lone surrogate in a string column and a too-long integer in a
    CSV long column; each is now a 400 naming the problem.
    """
    app = echo_app(tmp_path, **(types or {"a": "double"}))
    status, got = call(app, body, ctype)
    assert status == 400 and got["error_code"] == "BAD_REQUEST" and words in got["message"], got
    assert call(app, '{"inputs": {"a": [1]}}')[0] in (200, 400)  # the app still answers


def test_json_infinities_and_nan_are_numbers_as_in_mlflow(tmp_path):
    """1e999 reads as inf and NaN/Infinity literals as numbers (Python's json, as MLflow); not an error."""
    app = echo_app(tmp_path, a="double", b="double")
    status, got = call(app, '{"dataframe_split": {"columns": ["a", "b"], "data": [[1e999, NaN], [-Infinity, 1]]}}')
    assert status == 200, got
    assert got["predictions"] == {"a": ["float64", ["inf", "-inf"]], "b": ["float64", ["nan", "1.0"]]}


def test_a_million_values_within_the_body_limit_are_read(tmp_path):
    app = echo_app(tmp_path, a="double")
    status, got = call(app, '{"inputs": {"a": [' + ",".join(["1.5"] * 1_000_000) + "]}}")
    assert status == 200 and got["predictions"]["a"][0] == "float64" and len(got["predictions"]["a"][1]) == 10**6


@pytest.fixture
def holder_repo(registered):
    """``registered``, with the registry API pointed at it in this process."""
    from gitml.tracking import runs

    repo, models = registered
    return runs.open_repo(repo), models


def served(holder) -> np.ndarray:
    return np.asarray(holder.current.model.predict(X[:3]))


def test_version_info_is_the_loaded_model_even_if_the_stage_moves_while_loading(holder_repo, monkeypatch):
    from gitml import registry
    from gitml.models import uri
    from gitml.serving.app import ModelHolder

    gr, models = holder_repo
    real = uri.resolve
    moved = []

    def resolve_then_promote(u):
        source = real(u)
        if not moved:  # another user promotes v0.0.2 just after the server resolved the stage
            registry.assign(gr, "rf", "v0.0.2", "production")
            moved.append(True)
        return source

    monkeypatch.setattr(uri, "resolve", resolve_then_promote)
    holder = ModelHolder("rf#production", poll_seconds=3600)
    assert holder.current.info["version"] == "v0.0.1"
    np.testing.assert_allclose(served(holder), models[0].predict(X[:3]))
    assert holder.check() is True  # and the next check catches up
    assert holder.current.info["version"] == "v0.0.2"
    np.testing.assert_allclose(served(holder), models[1].predict(X[:3]))


def test_a_version_that_fails_to_load_is_logged_once_and_not_retried(holder_repo, monkeypatch, caplog):
    from gitml import registry
    from gitml.models import pyfunc
    from gitml.serving.app import ModelHolder

    gr, models = holder_repo
    holder = ModelHolder("rf#production", poll_seconds=3600)
    registry.assign(gr, "rf", "v0.0.2", "production")
    attempts = []

    def broken(*args, **kwargs):
        attempts.append(args)
        raise RuntimeError("cannot unpickle")

    monkeypatch.setattr(pyfunc, "load_model", broken)
    with caplog.at_level(logging.WARNING, logger="gitml.serving"):
        assert [holder.check() for _ in range(3)] == [False] * 3
    assert len(attempts) == 1
    assert len([r for r in caplog.records if "failed to load" in r.getMessage()]) == 1
    assert holder.current.info["version"] == "v0.0.1"
    np.testing.assert_allclose(served(holder), models[0].predict(X[:3]))
    info = holder.describe()
    assert info["version"] == "v0.0.1" and "v0.0.2 failed to load" in info["follow_error"]


def test_unassigned_stage_or_deprecated_model_keeps_serving_and_says_so(holder_repo, caplog):
    from gitml import registry
    from gitml.serving.app import ModelHolder, ScoringApp

    gr, models = holder_repo
    holder = ModelHolder("rf#production", poll_seconds=3600)
    app = ScoringApp(holder)
    assert call(app, "", path="/version", method="GET")[1]["stage_missing"] is False
    registry.unassign(gr, "rf", "v0.0.1", "production")
    with caplog.at_level(logging.WARNING, logger="gitml.serving"):
        assert [holder.check() for _ in range(3)] == [False] * 3
    assert len([r for r in caplog.records if "names no version" in r.getMessage()]) == 1
    status, info = call(app, "", path="/version", method="GET")
    assert status == 200 and info["version"] == "v0.0.1" and info["following"] is True
    assert info["stage_missing"] is True and "stage 'production'" in info["follow_error"]
    status, got = call(app, PAYLOADS["inputs"][1])
    assert status == 200 and np.allclose(got["predictions"], models[0].predict(X[:3]))
    # the stage comes back (on another version): followed again
    registry.assign(gr, "rf", "v0.0.2", "production")
    assert holder.check() is True
    info = call(app, "", path="/version", method="GET")[1]
    assert (info["version"], info["stage_missing"], info["follow_error"]) == ("v0.0.2", False, None)
    # a deprecated model: still served, and /version says so
    registry.deprecate(gr, "rf")
    assert [holder.check() for _ in range(2)] == [False] * 2
    info = call(app, "", path="/version", method="GET")[1]
    assert (info["version"], info["deprecated"]) == ("v0.0.2", True)
    assert np.allclose(call(app, PAYLOADS["inputs"][1])[1]["predictions"], models[1].predict(X[:3]))


def test_a_new_worker_catches_up_with_the_stage_before_serving(holder_repo, monkeypatch):
    from gitml import registry
    from gitml.serving import server
    from gitml.serving.app import ModelHolder

    gr, models = holder_repo
    holder = ModelHolder("rf#production", poll_seconds=3600)  # the master's, loaded at startup
    registry.assign(gr, "rf", "v0.0.2", "production")
    server.worker_started(holder)
    assert holder.current.info["version"] == "v0.0.2"
    np.testing.assert_allclose(served(holder), models[1].predict(X[:3]))
    assert holder._thread is not None and holder._thread.is_alive()
    # a check that blows up is logged, and the worker still starts following
    other = ModelHolder("rf#production", poll_seconds=3600)
    monkeypatch.setattr(other, "check", lambda: 1 / 0)
    server.worker_started(other)
    assert other._thread is not None and other._thread.is_alive()


def test_a_restarted_worker_serves_the_stage_as_it_is_now(registered):
    repo, models = registered
    port = free_port()
    with gitml_serve("rf#production", repo, port, "--workers", "1", "--poll", "3600") as proc:
        assert request(port, "/version")[1]["version"] == "v0.0.1"
        gitml_cli(repo, "models", "promote", "rf", "v0.0.2", "production")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)  # as a crash; a timeout ends the same way
        deadline = time.time() + 60
        while Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split() in ([], children):
            assert time.time() < deadline, "gunicorn started no new worker"
            time.sleep(0.1)
        status, info = request(port, "/version")  # waits for the new worker to accept
        assert status == 200
        assert info["version"] == "v0.0.2"
        _, got = request(port, "/invocations", *reversed(PAYLOADS["inputs"]))
        np.testing.assert_allclose(got["predictions"], models[1].predict(X[:3]))


def test_docker_requirements_one_line_per_package_whatever_the_specifier(tmp_path):
    from gitml.serving.docker import requirements

    (tmp_path / "requirements.txt").write_text(
        "numpy<2\npandas~=2.1  # the model's pin\nmlflow<3\nScikit_Learn>=1.3\n"
        "PyYAML[libyaml]!=6.0.0\n-r other.txt\n# a comment\ntorch==2.0; python_version >= '3.9'\n"
    )
    reqs = requirements(tmp_path)
    names = [r.split("<")[0].split("~")[0].split("=")[0].split(">")[0].split("[")[0].split("!")[0].split(";")[0]
             .strip().lower().replace("_", "-") for r in reqs]
    assert len(names) == len(set(names)), reqs
    assert {"numpy<2", "pandas~=2.1", "Scikit_Learn>=1.3", "PyYAML[libyaml]!=6.0.0",
            "torch==2.0; python_version >= '3.9'"} <= set(reqs)
    assert "mlflow" not in names and not any(r.startswith("pyyaml==") for r in reqs)
    assert any(r.startswith("gunicorn==") for r in reqs) and any(r.startswith("click==") for r in reqs)
