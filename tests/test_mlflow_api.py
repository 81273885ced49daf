"""``import gitml as mlflow`` covers what public MLflow examples use (issue 16, item 5).

Each test runs gitml's side in this process and compares it with what real
mlflow 3 answers for the same calls: one reference run of real mlflow (on a
sqlite store, in a subprocess) per test session, whose answers the tests read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from gitml.errors import InvalidValue  # noqa: E402
from tests.conftest import git, git_run_ids, run_python  # noqa: E402

# (module, name): what scripts written for MLflow import, which gitml must offer under the same path.
PUBLIC_NAMES = [
    ("mlflow.models", "infer_signature"), ("mlflow.models", "ModelSignature"), ("mlflow.models", "get_model_info"),
    ("mlflow.models", "Model"), ("mlflow.models.signature", "infer_signature"),
    ("mlflow.models.signature", "ModelSignature"), ("mlflow.types", "Schema"), ("mlflow.types", "ColSpec"),
    ("mlflow.types", "TensorSpec"), ("mlflow.types", "DataType"), ("mlflow.types.schema", "Schema"),
    ("mlflow.types.schema", "ColSpec"), ("mlflow.tracking", "MlflowClient"),
    ("mlflow.tracking.client", "MlflowClient"), ("mlflow", "MlflowClient"), ("mlflow", "MlflowException"),
    ("mlflow.entities", "Run"), ("mlflow.entities", "RunInfo"), ("mlflow.entities", "RunData"),
    ("mlflow.entities", "Metric"), ("mlflow.entities", "Param"), ("mlflow.entities", "RunTag"),
    ("mlflow.entities", "Experiment"), ("mlflow.entities", "ViewType"), ("mlflow.entities", "RunStatus"),
    ("mlflow.entities", "LifecycleStage"), ("mlflow.entities", "FileInfo"), ("mlflow.entities", "LoggedModel"),
    ("mlflow.exceptions", "MlflowException"), ("mlflow.exceptions", "INVALID_PARAMETER_VALUE"),
    ("mlflow.exceptions", "RESOURCE_DOES_NOT_EXIST"), ("mlflow", "log_table"), ("mlflow", "load_table"),
    ("mlflow", "get_logged_model"), ("mlflow.pyfunc", "load_pyfunc"), ("mlflow.pyfunc", "get_model_dependencies"),
    ("mlflow.pyfunc", "PythonModelContext"),
]

MLFLOW_REFERENCE = r"""
import importlib, json, sys
import numpy as np, pandas as pd
import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus, ViewType
from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from sklearn.linear_model import LogisticRegression

out = {"names": {f"{m}.{n}": hasattr(importlib.import_module(m), n) for m, n in json.loads(sys.argv[1])}}
with mlflow.start_run() as run:
    mlflow.log_table({"q": ["a", "b"], "score": [0.5, 1.0]}, artifact_file="eval/t.json")
    mlflow.log_table(pd.DataFrame({"q": ["c"], "score": [2.0]}), artifact_file="eval/t.json")
    try:
        mlflow.log_param("p", 1); mlflow.log_param("p", 2)
    except MlflowException as e:
        out["param_twice"] = e.error_code
    try:
        mlflow.log_table({"q": ["a"]}, artifact_file="t.csv")
    except Exception as e:
        out["table_csv"] = str(e)
run_id = run.info.run_id
out["table_text"] = open(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/eval/t.json")).read()
out["table_tag"] = mlflow.get_run(run_id).data.tags["mlflow.loggedArtifacts"]
loaded = mlflow.load_table("eval/t.json", run_ids=[run_id], extra_columns=["run_id"])
out["table_loaded"] = json.loads(loaded.assign(run_id=loaded.run_id == run_id).to_json(orient="split", index=False))
out["table_found"] = len(mlflow.load_table("eval/t.json"))
try:
    MlflowClient().get_run("0123456789abcdef0123456789abcdef")
except MlflowException as e:
    out["missing_run"] = [e.error_code, e.get_http_status_code()]
e = MlflowException("bad thing", error_code=INVALID_PARAMETER_VALUE)
out["raised"] = [e.error_code, e.get_http_status_code(), json.loads(e.serialize_as_json())["error_code"], str(e)]
out["invalid"] = MlflowException.invalid_parameter_value("x").error_code
out["status"] = [RunStatus.to_string(RunStatus.FINISHED), mlflow.get_run(run_id).info.status,
                 RunStatus.is_terminated(RunStatus.FAILED), ViewType.from_string("all"), ViewType.ACTIVE_ONLY]
sig = ModelSignature(inputs=Schema([ColSpec("double", "a"), ColSpec("long", "n", required=False)]),
                     outputs=Schema([ColSpec("long")]))
out["signature"] = sig.to_dict()
out["tensor"] = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 4))])).to_dict()
X = pd.DataFrame({"a": [0.1, 0.9, 0.4, 0.7], "n": [1, 2, 3, 4]})
mlflow.sklearn.save_model(LogisticRegression().fit(X, [0, 1, 0, 1]), "m", input_example=X[:2],
                          metadata={"owner": "me"})
info = mlflow.models.get_model_info("m")
out["model_info"] = {"metadata": info.metadata, "flavors": sorted(info.flavors),
                     "inputs": info.signature.inputs.input_names(), "run_id": info.run_id}
print("REFERENCE " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def mlflow_answers(tmp_path_factory) -> dict:
    """What real mlflow 3 answers for the calls the tests make (one subprocess on a sqlite store)."""
    pytest.importorskip("mlflow")
    where = tmp_path_factory.mktemp("mlflow-reference")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": f"sqlite:///{where / 'm.db'}",
           "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", MLFLOW_REFERENCE, json.dumps(PUBLIC_NAMES)], cwd=where, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("REFERENCE "))
    return json.loads(line[len("REFERENCE "):])


def test_public_names_exist_under_mlflows_module_paths(mlflow_answers):
    """issue 16: `from mlflow.models import infer_signature` (and entities, exceptions, types, tracking)
    had no gitml counterpart, so most public examples failed at their imports."""
    import importlib

    missing = []
    for module, name in PUBLIC_NAMES:
        assert mlflow_answers["names"][f"{module}.{name}"], f"real mlflow has no {module}.{name}"
        gitml_module = "gitml" + module[len("mlflow"):]
        if not hasattr(importlib.import_module(gitml_module), name):
            missing.append(f"{gitml_module}.{name}")
    assert missing == []
    import gitml
    import gitml.tracking
    import gitml.tracking.client

    assert gitml.tracking.MlflowClient is gitml.Client is gitml.tracking.client.MlflowClient
    assert hasattr(gitml.tracking.MlflowClient(), "transition_model_version_stage")  # the whole client
    for sub in ("models", "entities", "exceptions", "tracking", "types"):
        assert getattr(gitml, sub).__name__ == f"gitml.{sub}"


def test_renamed_import_lines_run_in_a_fresh_interpreter(tracking, repo):
    """The bench's rename rule, in a separate process: every import form public examples use works."""
    code = "\n".join([
        "import gitml as mlflow",
        "from gitml.models import infer_signature, ModelSignature, get_model_info",
        "from gitml.models.signature import ModelSignature as MS",
        "from gitml.types.schema import Schema, ColSpec, TensorSpec",
        "from gitml.tracking import MlflowClient",
        "from gitml.tracking.client import MlflowClient as C2",
        "from gitml.entities import Metric, Param, RunTag, ViewType, RunStatus, LifecycleStage, LoggedModel",
        "from gitml.exceptions import MlflowException, RESOURCE_DOES_NOT_EXIST",
        "import sys",
        "assert MlflowClient is C2 is mlflow.MlflowClient and MS is ModelSignature",
        "print(sorted(m for m in ('mlflow', 'torch', 'sklearn') if m in sys.modules))",
    ])
    out = run_python(code, repo)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"  # none of it imports mlflow (or torch, sklearn)


def test_mlflow_exception_catches_every_gitml_error(tracking, mlflow_answers):
    """issue 16: `except mlflow.exceptions.MlflowException` caught nothing gitml raised."""
    from gitml.exceptions import INVALID_PARAMETER_VALUE, MlflowException

    assert MlflowException is tracking.GitmlError
    with pytest.raises(MlflowException) as missing:
        tracking.Client().get_run("0123456789abcdef0123456789abcdef")
    assert [missing.value.error_code, missing.value.get_http_status_code()] == mlflow_answers["missing_run"]
    with tracking.start_run():
        tracking.log_param("p", 1)
        with pytest.raises(MlflowException) as twice:
            tracking.log_param("p", 2)
    assert twice.value.error_code == mlflow_answers["param_twice"] == "INVALID_PARAMETER_VALUE"
    raised = MlflowException("bad thing", error_code=INVALID_PARAMETER_VALUE)
    assert [raised.error_code, raised.get_http_status_code(), json.loads(raised.serialize_as_json())["error_code"],
            str(raised)] == mlflow_answers["raised"]
    assert MlflowException.invalid_parameter_value("x").error_code == mlflow_answers["invalid"]
    assert MlflowException("by name", error_code="RESOURCE_DOES_NOT_EXIST").http_status == 404
    assert MlflowException("plain").error_code == "INTERNAL_ERROR"


def test_run_status_and_view_type_convert_as_in_mlflow(tracking, mlflow_answers):
    from gitml.entities import RunStatus, ViewType

    with tracking.start_run() as run:
        pass
    status = tracking.get_run(run.info.run_id).info.status
    assert [RunStatus.to_string(RunStatus.FINISHED), status, RunStatus.is_terminated(RunStatus.FAILED),
            ViewType.from_string("all"), ViewType.ACTIVE_ONLY] == mlflow_answers["status"]
    assert RunStatus.to_string(3) == "FINISHED" and RunStatus.from_string(status) == RunStatus.FINISHED
    assert ViewType.to_string(ViewType.DELETED_ONLY) == "DELETED_ONLY"
    with pytest.raises(InvalidValue, match="'DONE'"):
        RunStatus.from_string("DONE")
    with pytest.raises(InvalidValue, match="'some'"):
        ViewType.from_string("some")


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "https://mlflow.example.com", "sqlite:///mlflow.db",
                                 "postgresql://u@db/mlflow", "databricks"])
def test_set_tracking_uri_of_a_server_or_database_names_the_plugin_route(tracking, uri):
    """issue 16: set_tracking_uri("http://...") failed later with a path error naming a directory."""
    from gitml.tracking.location import UnsupportedTrackingUri

    for call in (tracking.set_tracking_uri, tracking.Client):
        with pytest.raises(UnsupportedTrackingUri) as e:
            call(uri)
        message = str(e.value)
        assert uri in message and "MLFLOW_TRACKING_URI=gitml:<repo>" in message and "docs/mlflow.md" in message
        assert "\n" not in message


def test_set_tracking_uri_takes_the_plugins_gitml_uris(tracking, repo, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    for uri in (f"gitml:{other}", f"gitml://{other}", f"file://{other}"):
        tracking.set_tracking_uri(uri)
        with tracking.start_run() as run:
            tracking.log_metric("m", 1.0)
        tracking.flush()
        assert run.info.run_id in git_run_ids(other)
        assert tracking.Client(uri).get_run(run.info.run_id).data.metrics == {"m": 1.0}
    with pytest.raises(InvalidValue, match="not host 'server'"):
        tracking.set_tracking_uri("gitml://server/repo")
    tracking.set_tracking_uri(repo)


def test_log_table_writes_mlflows_bytes_and_tag_and_appends(tracking, mlflow_answers):
    """issue 16: mlflow.log_table / load_table were missing."""
    with tracking.start_run() as run:
        tracking.log_table({"q": ["a", "b"], "score": [0.5, 1.0]}, artifact_file="eval/t.json")
        tracking.log_table(pd.DataFrame({"q": ["c"], "score": [2.0]}), artifact_file="eval/t.json")
        with pytest.raises(InvalidValue, match="'t.csv'"):
            tracking.log_table({"q": ["a"]}, artifact_file="t.csv")
        with pytest.raises(InvalidValue, match="DataFrame or a dict"):
            tracking.log_table([1, 2], artifact_file="t.json")
    run_id = run.info.run_id
    assert "'t.csv'" in mlflow_answers["table_csv"]  # refused by both, naming the file
    assert tracking.artifacts.load_text(f"runs:/{run_id}/eval/t.json") == mlflow_answers["table_text"]
    assert tracking.get_run(run_id).data.tags["mlflow.loggedArtifacts"] == mlflow_answers["table_tag"]
    loaded = tracking.load_table("eval/t.json", run_ids=[run_id], extra_columns=["run_id"])
    marked = json.loads(loaded.assign(run_id=loaded.run_id == run_id).to_json(orient="split", index=False))
    assert marked == mlflow_answers["table_loaded"]
    with tracking.start_run():  # a second run with the table, and one without it
        tracking.log_table({"q": ["d"], "score": [3.0]}, artifact_file="eval/t.json")
    with tracking.start_run():
        tracking.log_metric("x", 1.0)
    assert len(tracking.load_table("eval/t.json")) == mlflow_answers["table_found"] + 1
    client_rows = tracking.Client().load_table("0", "eval/t.json", run_ids=[run_id])
    assert list(client_rows.q) == ["a", "b", "c"]
    from gitml.tracking.tables import TableNotFound

    with tracking.start_run() as empty:
        pass
    with pytest.raises(TableNotFound, match=f"not found in run {empty.info.run_id}"):
        tracking.load_table("eval/t.json", run_ids=[empty.info.run_id])


def test_signature_objects_write_mlflows_json(mlflow_answers):
    from gitml.models import ModelSignature
    from gitml.models.signature import SchemaMismatch
    from gitml.types import ColSpec, DataType, Schema, TensorSpec

    sig = ModelSignature(inputs=Schema([ColSpec("double", "a"), ColSpec(DataType.long, "n", required=False)]),
                         outputs=Schema([ColSpec("long")]))
    assert sig.to_dict() == mlflow_answers["signature"]
    assert ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 4))])).to_dict() == \
        mlflow_answers["tensor"]
    assert sig.inputs.input_names() == ["a", "n"] and [c.name for c in sig.inputs] == ["a", "n"]
    assert "'a': double (required)" in str(sig)
    with pytest.raises(SchemaMismatch, match="'decimal'"):
        ColSpec("decimal", "x")


def test_get_model_info_reads_the_mlmodel_by_any_uri(tracking, mlflow_answers, tmp_path):
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": [0.1, 0.9, 0.4, 0.7], "n": [1, 2, 3, 4]})
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    tracking.sklearn.save_model(model, tmp_path / "m", input_example=X[:2], metadata={"owner": "me"})
    info = tracking.models.get_model_info(str(tmp_path / "m"))
    assert {"metadata": info.metadata, "flavors": sorted(info.flavors), "inputs": info.signature.inputs.input_names(),
            "run_id": info.run_id} == mlflow_answers["model_info"]
    with tracking.start_run():
        logged = tracking.sklearn.log_model(model, name="clf", input_example=X[:2], registered_model_name="clf")
    for uri in (logged.model_uri, "models:/clf/1", f"models:/{logged.model_id}"):
        got = tracking.models.get_model_info(uri)
        assert (got.model_id, got.run_id, got.artifact_path) == (logged.model_id, logged.run_id, "clf")
        assert got.model_uri == f"models:/{logged.model_id}"  # as MLflow 3 gives it
        assert got.signature.inputs.input_names() == ["a", "n"]


def test_logged_model_ids_are_derived_from_run_and_path_and_load(tracking, repo):
    """issue 16: ModelInfo.model_id, mlflow.get_logged_model and models:/m-<id> (MLflow 3) were missing."""
    from sklearn.linear_model import LogisticRegression

    from gitml.exceptions import MlflowException
    from gitml.models.logged import LoggedModelNotFound, model_id_for

    X = pd.DataFrame({"a": [0.1, 0.9, 0.4, 0.7]})
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    with tracking.start_run() as run:
        tracking.log_params({"C": "1.0"})
        first = tracking.sklearn.log_model(model, name="clf", params={"threshold": 0.5}, tags={"stage": "dev"},
                                           model_type="classifier")
        second = tracking.sklearn.log_model(model, name="models/other")
        tracking.log_metric("acc", 0.75, model_id=first.model_id)
    run_id = run.info.run_id
    assert first.model_id == model_id_for(run_id, "clf") and first.model_id.startswith(f"m-{run_id}-")
    assert second.model_id != first.model_id
    mlmodel = tracking.artifacts.load_text(f"runs:/{run_id}/clf/MLmodel")
    assert f"model_id: {first.model_id}" in mlmodel
    lm = tracking.get_logged_model(first.model_id)
    assert (lm.model_id, lm.name, lm.source_run_id, lm.experiment_id, lm.model_uri, lm.status) == \
        (first.model_id, "clf", run_id, "0", f"models:/{first.model_id}", "READY")
    assert lm.params == {"C": "1.0", "threshold": "0.5"} and lm.tags == {"stage": "dev"}
    assert lm.model_type == "classifier" and [(m.key, m.value) for m in lm.metrics] == [("acc", 0.75)]
    assert lm.creation_timestamp and lm.artifact_location == f"runs:/{run_id}/clf"
    assert tracking.get_logged_model(second.model_id).name == "models/other"
    version = tracking.register_model(f"models:/{second.model_id}", "other")  # MLflow 3's way to register
    assert (version.run_id, version.source) == (run_id, f"runs:/{run_id}/models/other")
    pm = tracking.pyfunc.load_model(f"models:/{first.model_id}")
    assert list(pm.predict(X)) == list(model.predict(X))
    for bad in (f"m-{run_id}-00000000", "m-0123456789abcdef0123456789abcdef-00000000", "m-abc"):
        with pytest.raises(LoggedModelNotFound) as e:
            tracking.get_logged_model(bad)
        assert isinstance(e.value, MlflowException) and e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert bad in str(e.value)


def test_unknown_model_arguments_are_refused_not_dropped(tracking, tmp_path):
    """issue 16: every flavor's save_model swallowed **kwargs, so MLflow arguments gitml ignored vanished."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(InvalidValue, match="sklearn.save_model does not take argument 'extra_files'"):
        tracking.sklearn.save_model(model, tmp_path / "a", extra_files=["x.txt"])
    assert not (tmp_path / "a").exists()
    with pytest.raises(InvalidValue, match="'conda_env' and 'pip_requirements'|conda_env and pip_requirements"):
        tracking.sklearn.save_model(model, tmp_path / "b", conda_env={"dependencies": []}, pip_requirements=["x"])
    # MLflow arguments with no effect in git, and ones left at MLflow's defaults, pass
    tracking.sklearn.save_model(model, tmp_path / "c", mlflow_model=None, extra_files=None,
                                await_registration_for=300)
    with tracking.start_run():
        tracking.pyfunc.log_model(name="f", python_model=lambda df: df * 2, infer_code_paths=False, step=3)
    with pytest.raises(InvalidValue, match="models-from-code"):
        tracking.pyfunc.save_model(tmp_path / "d", python_model="model_code.py")


def test_search_experiments_filters_and_orders_as_mlflow_does(tracking, tmp_path):
    """Issue 16: gitml.search_experiments(filter_string=...) ignored the filter. The same calls on
    real MLflow (sqlite) and on gitml give the same names in the same order."""
    import mlflow

    def names(api: object) -> list[list[str]]:
        return [[e.name for e in api.search_experiments(filter_string=f, order_by=o)]  # type: ignore[attr-defined]
                for f, o in [("name LIKE 'a%'", ["name DESC"]), ("tags.team = 'vision'", ["name"]),
                             ("name != 'Default'", ["name ASC"]), (None, ["name"])]]

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    for name, team in [("alpha", "vision"), ("abc", "nlp"), ("beta", "vision")]:
        client.create_experiment(name, tags={"team": team})
        tracking.create_experiment(name, tags={"team": team})
    expected = names(client)
    assert expected[0] == ["alpha", "abc"]
    assert names(tracking.Client()) == expected
    assert [[e.name for e in tracking.search_experiments(filter_string=f, order_by=o)]
            for f, o in [("name LIKE 'a%'", ["name DESC"]), ("tags.team = 'vision'", ["name"]),
                         ("name != 'Default'", ["name ASC"]), (None, ["name"])]] == expected


def test_client_get_logged_model_reads_what_log_model_logged(tracking):
    """Issue 16: MlflowClient().get_logged_model(model_id) as MLflow 3 has it."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    with tracking.start_run() as run:
        info = tracking.sklearn.log_model(LinearRegression().fit(np.eye(3), [1, 2, 3]), name="model")
    got = tracking.MlflowClient().get_logged_model(info.model_id)
    assert got.model_id == info.model_id and got.source_run_id == run.info.run_id and got.name == "model"
