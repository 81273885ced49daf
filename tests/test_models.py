"""Models in MLflow's format: sklearn and custom pyfunc flavors, signatures, URIs, interop with MLflow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")
pytest.importorskip("skops")

from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from gitml.errors import InvalidValue  # noqa: E402
from gitml.models.signature import SchemaMismatch  # noqa: E402


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(60), "b": rng.random(60), "n": rng.integers(0, 5, 60)})
    y = ((X.a + X.b) > 1).astype(int)
    return X, y


@pytest.fixture
def model(data):
    X, y = data
    return LogisticRegression().fit(X, y)


def test_sklearn_save_load_predict_equal(tracking, data, model, tmp_path):
    X, _ = data
    tracking.sklearn.save_model(model, tmp_path / "m", input_example=X[:3])
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["MLmodel", "conda.yaml", "input_example.json", "model.skops", "python_env.yaml",
                     "requirements.txt", "serving_input_example.json"]
    import yaml

    meta = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    assert meta["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert meta["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert json.loads(meta["signature"]["inputs"]) == [
        {"type": "double", "name": "a", "required": True},
        {"type": "double", "name": "b", "required": True},
        {"type": "long", "name": "n", "required": True},
    ]
    assert json.loads(meta["signature"]["outputs"]) == [{"type": "long", "required": True}]
    assert "scikit-learn==" in (tmp_path / "m" / "requirements.txt").read_text()
    loaded = tracking.sklearn.load_model(str(tmp_path / "m"))
    assert (loaded.predict(X) == model.predict(X)).all()
    assert (tracking.pyfunc.load_model(str(tmp_path / "m")).predict(X) == model.predict(X)).all()


def test_pipeline_that_selects_columns_by_name_gets_its_dataframe(tracking, data, tmp_path):
    # A plain estimator may be handed the frame's array (same predictions, fewer checks); a
    # ColumnTransformer that picks columns by name needs the DataFrame (it raised before).
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    X = X[["a", "b"]].assign(c=X.n.astype(float))  # all float64: what took the array shortcut
    pipe = Pipeline([("cols", ColumnTransformer([("scale", StandardScaler(), ["b", "a"])])),
                     ("lr", LogisticRegression())]).fit(X, y)
    tracking.sklearn.save_model(pipe, tmp_path / "m", input_example=X[:3])
    assert (tracking.pyfunc.load_model(str(tmp_path / "m")).predict(X) == pipe.predict(X)).all()


def test_log_model_by_runs_uri_and_in_run_diff(tracking, repo, data, model):
    X, y = data
    with tracking.start_run() as first:
        info = tracking.sklearn.log_model(model, name="model", input_example=X[:2])
    assert info.model_uri == f"runs:/{first.info.run_id}/model"
    pred = tracking.pyfunc.load_model(info.model_uri).predict(X)
    assert (pred == model.predict(X)).all()
    assert {f.path for f in tracking.Client().list_artifacts(first.info.run_id, "model")} >= {"model/MLmodel", "model/model.skops"}
    other = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    with tracking.start_run() as second:
        tracking.sklearn.log_model(other, name="model", serialization_format="cloudpickle")
    from tests.conftest import git, run_rev

    diff = git(repo, "diff", run_rev(repo, first.info.run_id), run_rev(repo, second.info.run_id), "--", "artifacts.json")
    assert '"model/"' in diff and "model.pkl" in diff and "md5" in diff


def test_schema_enforcement(tracking, data, model, tmp_path):
    X, _ = data
    tracking.sklearn.save_model(model, tmp_path / "m", input_example=X[:3])
    pm = tracking.pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(SchemaMismatch, match=r"missing inputs \['b'\]"):
        pm.predict(X[["a", "n"]])
    with pytest.raises(SchemaMismatch, match="'n'.*float64 to long"):
        pm.predict(X.assign(n=X.n + 0.5))
    extra = X.assign(unused="x")
    assert (pm.predict(extra) == model.predict(X)).all()  # extra columns dropped
    as_int = X.assign(a=(X.a * 10).astype(int), b=(X.b * 10).astype(int))
    assert len(pm.predict(as_int)) == len(X)  # int -> double is a safe conversion


def test_custom_python_model_with_artifacts(tracking, tmp_path):
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"scale": 3}))

    class Scaler(tracking.pyfunc.PythonModel):
        def load_context(self, context):
            self.scale = json.loads(Path(context.artifacts["weights"]).read_text())["scale"]

        def predict(self, context, model_input, params=None):
            return model_input["x"] * self.scale * (params or {}).get("boost", 1)

    df = pd.DataFrame({"x": [1.0, 2.0]})
    with tracking.start_run():
        info = tracking.pyfunc.log_model(Scaler(), name="scaler", artifacts={"weights": str(weights)}, input_example=df)
    pm = tracking.pyfunc.load_model(info.model_uri)
    assert list(pm.predict(df)) == [3.0, 6.0]


def test_bad_inputs(tracking, model, tmp_path):
    with pytest.raises(InvalidValue, match="serialization_format 'joblib'"):
        tracking.sklearn.save_model(model, tmp_path / "x", serialization_format="joblib")
    from gitml.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="no MLmodel"):
        tracking.pyfunc.load_model(str(tmp_path))
    with tracking.start_run() as run:
        pass
    with pytest.raises(ModelNotFound):
        tracking.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "MLmodel").write_text("flavors: [unclosed")
    with pytest.raises(InvalidValue, match="not valid YAML"):
        tracking.pyfunc.load_model(str(tmp_path / "bad"))


def test_tampered_model_file_fails_hash_check(tracking, repo, data, model):
    from gitml.store.content import CorruptObject

    X, _ = data
    with tracking.start_run() as run:
        tracking.sklearn.log_model(model, name="model")
    from tests.conftest import run_rev

    manifest = json.loads(subprocess.run(["git", "show", f"{run_rev(repo, run.info.run_id)}:artifacts.json"],
                                         cwd=repo, capture_output=True, text=True, check=True).stdout)
    digest = manifest["model/model.skops"]["md5"]
    obj = repo / ".git/gitml/cache/files/md5" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"not a model")
    with pytest.raises(CorruptObject, match=digest):
        tracking.pyfunc.load_model(f"runs:/{run.info.run_id}/model")


def test_skops_refuses_untrusted_types(tracking, tmp_path, monkeypatch):
    from sklearn.preprocessing import FunctionTransformer

    from gitml.models.trust import UntrustedModel

    tracking.sklearn.save_model(FunctionTransformer(func=np.log1p), tmp_path / "m")  # numpy ufuncs: skops' defaults
    tracking.sklearn.save_model(FunctionTransformer(func=json.dumps), tmp_path / "j")
    assert tracking.sklearn.load_model(str(tmp_path / "j")) is not None  # saved here: recorded as this machine's
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))  # another machine: no record vouches
    tracking.sklearn.load_model(str(tmp_path / "m"))
    with pytest.raises(UntrustedModel, match=r"\['json.dumps'\]"):
        tracking.sklearn.load_model(str(tmp_path / "j"))
    assert tracking.sklearn.load_model(str(tmp_path / "j"), skops_trusted_types=["json.dumps"]) is not None


def test_skops_defaults_are_mlflows_and_models_saved_here_still_load(tracking, data, tmp_path, monkeypatch):
    """issue 16: gitml trusted every class of scikit-learn in a skops file (a forest's
    sklearn.tree._tree.Tree, whose node indices predict() does not bounds-check), whoever wrote it;
    MLflow 3.17 trusts only skops' own defaults unless skops_trusted_types names more."""
    from gitml.models.trust import UntrustedModel

    X, y = data
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    tracking.sklearn.save_model(forest, tmp_path / "rf")
    meta = (tmp_path / "rf" / "MLmodel").read_text()
    assert "sklearn.tree._tree.Tree" in meta  # listed, so MLflow loads it (it trusts the MLmodel's list)
    for load in (tracking.sklearn.load_model, tracking.pyfunc.load_model):  # saved on this machine: loads
        assert (load(str(tmp_path / "rf")).predict(X) == forest.predict(X)).all()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    for load in (tracking.sklearn.load_model, tracking.pyfunc.load_model):
        with pytest.raises(UntrustedModel, match=(
                r"model.skops: it references types skops does not trust by default: \['sklearn.tree._tree.Tree'\] "
                r"\(skops: .*without bounds checking.*\).*MLflow.*skops_trusted_types=\['sklearn.tree._tree.Tree'\]"
                r".*allow_pickle=True")) as e:
            load(str(tmp_path / "rf"))
        assert "\n" not in str(e.value)
    named = tracking.sklearn.load_model(str(tmp_path / "rf"), skops_trusted_types=["sklearn.tree._tree.Tree"])
    assert (named.predict(X) == forest.predict(X)).all()
    assert (tracking.pyfunc.load_model(str(tmp_path / "rf"), allow_pickle=True).predict(X) == forest.predict(X)).all()
    tracking.sklearn.save_model(LogisticRegression().fit(X, y), tmp_path / "lr")
    assert len(tracking.sklearn.load_model(str(tmp_path / "lr")).predict(X)) == len(X)  # only default types


MLFLOW_SAVES_FOREST = """
import sys, pandas as pd, mlflow.sklearn
from sklearn.ensemble import RandomForestClassifier
X = pd.read_json(sys.argv[2], orient="split"); y = ((X.a + X.b) > 1).astype(int)
forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
try:
    mlflow.sklearn.save_model(forest, sys.argv[1] + "-default")
except Exception as e:
    print("refused:", str(e).splitlines()[0])
mlflow.sklearn.save_model(forest, sys.argv[1], skops_trusted_types=["sklearn.tree._tree.Tree"])
"""


def test_skops_forest_mlflow_saved_needs_the_same_opt_in_in_gitml(tracking, data, tmp_path):
    """issue 16: MLflow refuses a forest in skops without skops_trusted_types; gitml loads an MLflow-saved
    one only with the same argument (or allow_pickle), not because its MLmodel lists the type."""
    _mlflow()
    from gitml.models.trust import UntrustedModel

    X, y = data
    (tmp_path / "X.json").write_text(X.to_json(orient="split"))
    out = subprocess.run([sys.executable, "-c", MLFLOW_SAVES_FOREST, str(tmp_path / "m"), str(tmp_path / "X.json")],
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused: The saved sklearn model references untrusted types" in out.stdout
    assert "skops_trusted_types" in out.stdout
    with pytest.raises(UntrustedModel, match=r"skops_trusted_types=\['sklearn.tree._tree.Tree'\]"):
        tracking.sklearn.load_model(str(tmp_path / "m"))
    ref = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    loaded = tracking.sklearn.load_model(str(tmp_path / "m"), skops_trusted_types=["sklearn.tree._tree.Tree"])
    assert (loaded.predict(X) == ref.predict(X)).all()


MLFLOW_LOADS = """
import os, sys, json
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
import mlflow.pyfunc, pandas as pd
m = mlflow.pyfunc.load_model(sys.argv[1])
X = pd.read_json(sys.argv[2], orient="split")
print(json.dumps([int(v) for v in m.predict(X)]))
"""

MLFLOW_SAVES = """
import sys, pandas as pd, numpy as np, mlflow.sklearn
from sklearn.linear_model import LogisticRegression
X = pd.read_json(sys.argv[2], orient="split"); y = ((X.a + X.b) > 1).astype(int)
mlflow.sklearn.save_model(LogisticRegression().fit(X, y), sys.argv[1], input_example=X[:2],
                          serialization_format=sys.argv[3])
"""


def _mlflow() -> None:
    pytest.importorskip("mlflow")


@pytest.mark.parametrize("fmt", ["skops", "cloudpickle"])
def test_mlflow_loads_gitml_model(tracking, data, model, tmp_path, fmt):
    _mlflow()
    X, _ = data
    tracking.sklearn.save_model(model, tmp_path / "m", serialization_format=fmt, input_example=X[:2])
    (tmp_path / "X.json").write_text(X.to_json(orient="split"))
    out = subprocess.run([sys.executable, "-c", MLFLOW_LOADS, str(tmp_path / "m"), str(tmp_path / "X.json")],
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [int(v) for v in model.predict(X)]


@pytest.mark.parametrize("fmt", ["skops", "cloudpickle"])
def test_gitml_loads_mlflow_model(tracking, data, tmp_path, fmt, monkeypatch):
    _mlflow()
    X, _ = data
    (tmp_path / "X.json").write_text(X.to_json(orient="split"))
    out = subprocess.run([sys.executable, "-c", MLFLOW_SAVES, str(tmp_path / "m"), str(tmp_path / "X.json"), fmt],
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    if fmt == "cloudpickle":  # MLflow wrote this pickle, not gitml: it loads only with the opt-in
        from gitml.models.trust import UntrustedModel

        with pytest.raises(UntrustedModel, match="model.pkl: it is a cloudpickle file"):
            tracking.pyfunc.load_model(str(tmp_path / "m"))
        monkeypatch.setenv("GITML_ALLOW_PICKLE", "1")
    pm = tracking.pyfunc.load_model(str(tmp_path / "m"))
    ref = LogisticRegression().fit(X, ((X.a + X.b) > 1).astype(int))
    assert (pm.predict(X) == ref.predict(X)).all()
    assert (tracking.sklearn.load_model(str(tmp_path / "m")).predict(X) == ref.predict(X)).all()


BOOSTERS = ["xgb-sklearn", "xgb-booster", "lgb-sklearn", "lgb-booster"]


def _booster(kind: str, X, y):
    if kind.startswith("xgb"):
        xgb = pytest.importorskip("xgboost")
        if kind == "xgb-sklearn":
            return xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y), "xgboost"
        return xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=y), num_boost_round=5), "xgboost"
    lgb = pytest.importorskip("lightgbm")
    if kind == "lgb-sklearn":
        return lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y), "lightgbm"
    return lgb.train({"verbose": -1}, lgb.Dataset(X, label=y), num_boost_round=5), "lightgbm"


def _raw_predict(model, X):
    try:
        import xgboost as xgb

        if isinstance(model, xgb.Booster):
            return model.predict(xgb.DMatrix(X))
    except ImportError:
        pass
    return model.predict(X)


@pytest.mark.parametrize("kind", BOOSTERS)
def test_boosting_flavors_round_trip(tracking, data, kind):
    X, y = data
    model, flavor = _booster(kind, X, y)
    module = getattr(tracking, flavor)
    with tracking.start_run():
        info = module.log_model(model, name="model", input_example=X[:2])
    expected = _raw_predict(model, X)
    assert np.allclose(tracking.pyfunc.load_model(info.model_uri).predict(X), expected)
    assert np.allclose(_raw_predict(module.load_model(info.model_uri), X), expected)


def test_boosting_foreign_model_class_refused(tracking, data, tmp_path):
    xgb = pytest.importorskip("xgboost")
    X, y = data
    tracking.xgboost.save_model(xgb.XGBClassifier(n_estimators=2).fit(X, y), tmp_path / "m")
    text = (tmp_path / "m" / "MLmodel").read_text().replace("xgboost.sklearn.XGBClassifier", "os.system")
    (tmp_path / "m" / "MLmodel").write_text(text)
    with pytest.raises(InvalidValue, match="os.system"):
        tracking.xgboost.load_model(str(tmp_path / "m"))


MLFLOW_LOADS_ANY = """
import os, sys, json
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
import mlflow.pyfunc, pandas as pd, numpy as np
m = mlflow.pyfunc.load_model(sys.argv[1])
X = pd.read_json(sys.argv[2], orient="split")
print(json.dumps(np.asarray(m.predict(X), dtype=float).tolist()))
"""


@pytest.mark.parametrize("kind", ["xgb-sklearn", "lgb-sklearn", "lgb-booster"])
def test_mlflow_loads_gitml_boosting_model(tracking, data, tmp_path, kind):
    _mlflow()
    X, y = data
    model, flavor = _booster(kind, X, y)
    getattr(tracking, flavor).save_model(model, tmp_path / "m", input_example=X[:2])
    (tmp_path / "X.json").write_text(X.to_json(orient="split"))
    out = subprocess.run([sys.executable, "-c", MLFLOW_LOADS_ANY, str(tmp_path / "m"), str(tmp_path / "X.json")],
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert np.allclose(json.loads(out.stdout.strip().splitlines()[-1]), _raw_predict(model, X))


def test_schema_int_to_double_only_when_every_value_is_exact(tracking, data, model, tmp_path):
    """MLflow 3.17 refuses int64 -> double (precision is lost above 2**53); gitml converts only
    when every value fits."""
    X, _ = data
    tracking.sklearn.save_model(model, tmp_path / "m", input_example=X[:3])
    pm = tracking.pyfunc.load_model(str(tmp_path / "m"))
    edge = X.assign(a=np.int64(2**53), b=np.int64(-(2**53)))
    assert len(pm.predict(edge)) == len(X)  # 2**53 converts exactly
    with pytest.raises(SchemaMismatch, match=r"column 'a': cannot safely convert int64 to double: .*2\*\*53"):
        pm.predict(X.assign(a=np.int64(2**53 + 1)))
    # the smallest int64: numpy's abs() of it is negative, the check must not be fooled
    with pytest.raises(SchemaMismatch, match="column 'b'"):
        pm.predict(X.assign(b=np.iinfo(np.int64).min))


def test_schema_int_to_float_checks_the_float_precision():
    from gitml.models.signature import Schema, enforce_schema

    floats = Schema([{"type": "float", "name": "x", "required": True}])
    assert enforce_schema(pd.DataFrame({"x": np.array([2**24], dtype="int32")}), floats)["x"].dtype == "float32"
    with pytest.raises(SchemaMismatch, match=r"column 'x': .*2\*\*24"):
        enforce_schema(pd.DataFrame({"x": np.array([2**24 + 1], dtype="int32")}), floats)
    tensor = Schema([{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}])
    assert enforce_schema(np.array([[1, 2**53]]), tensor).dtype == "float64"
    with pytest.raises(SchemaMismatch, match=r"int64 cannot be converted to float64 .*2\*\*53"):
        enforce_schema(np.array([[1, 2**53 + 1]]), tensor)


def test_failed_save_removes_the_directory_it_created_and_a_retry_works(tracking, tmp_path):
    """A save that raised left a half-written directory, and the retry failed with 'already exists'."""
    from sklearn.preprocessing import FunctionTransformer

    local = FunctionTransformer(func=lambda x: x)  # plain pickle cannot store a lambda
    with pytest.raises(Exception, match="lambda"):
        tracking.sklearn.save_model(local, tmp_path / "m", serialization_format="pickle")
    assert not (tmp_path / "m").exists()
    tracking.sklearn.save_model(local, tmp_path / "m", serialization_format="cloudpickle")
    assert (tmp_path / "m" / "MLmodel").is_file()

    import threading

    class Locked(tracking.pyfunc.PythonModel):
        def __init__(self):
            self.lock = threading.Lock()

    (tmp_path / "empty").mkdir()  # there before the call: emptied again, not removed
    with pytest.raises(TypeError, match="lock"):
        tracking.pyfunc.save_model(tmp_path / "empty", python_model=Locked())
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_save_into_a_non_empty_directory_touches_nothing(tracking, model, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidValue, match="already exists and is not empty"):
        tracking.sklearn.save_model(model, tmp_path / "m")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["keep.txt"]


# -- issue 16: custom pyfunc both ways, MLflow's save arguments, artifacts by URI --------------------

GITML_SAVES_CUSTOM = """
import json, sys, pandas as pd, gitml

class Scaler(gitml.pyfunc.PythonModel):  # defined in __main__: cloudpickle stores it by value
    def load_context(self, context):
        self.scale = json.load(open(context.artifacts["w"]))["scale"] * (context.model_config or {}).get("k", 1)

    def predict(self, context, model_input, params=None):
        import helper_issue16
        return helper_issue16.times(model_input["x"], self.scale)

open("helper_issue16.py", "w").write("def times(x, k):\\n    return x * k\\n")
json.dump({"scale": 3}, open("w.json", "w"))
example = pd.DataFrame({"x": [1.0, 2.0]})
gitml.pyfunc.save_model(sys.argv[1], python_model=Scaler(), artifacts={"w": "w.json"}, model_config={"k": 2},
                        code_paths=["helper_issue16.py"], input_example=example, metadata={"team": "a"})
with gitml.start_run():
    info = gitml.pyfunc.log_model(name="logged", python_model=Scaler(), artifacts={"w": "w.json"},
                                  code_paths=["helper_issue16.py"])
gitml.artifacts.download_artifacts(info.model_uri, dst_path=sys.argv[2])
print(info.model_id)
"""

MLFLOW_LOADS_CUSTOM = """
import json, os, sys
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
import mlflow.pyfunc, pandas as pd
X = pd.DataFrame({"x": [1.0, 2.0, 5.0]})
out = {}
for path in sys.argv[1:]:
    m = mlflow.pyfunc.load_model(path)
    out[path] = {"pred": [float(v) for v in m.predict(X)], "metadata": m.metadata.metadata,
                 "model_id": m.metadata.model_id, "class": type(m.unwrap_python_model()).__name__}
print(json.dumps(out))
"""


def test_custom_pyfunc_saved_by_gitml_loads_and_predicts_in_mlflow(tracking, repo, tmp_path):
    """issue 16: a gitml PythonModel lacked what MLflow's wrapper reads (predict_type_hints) and kept its
    model_config under a key MLflow does not read, so MLflow could not load or configure it."""
    _mlflow()
    script = repo / "save_custom.py"
    script.write_text(GITML_SAVES_CUSTOM)
    saved = subprocess.run([sys.executable, str(script), str(tmp_path / "saved"), str(tmp_path / "dl")], cwd=repo,
                           capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr[-2000:]
    model_id = saved.stdout.strip().splitlines()[-1]
    logged = tmp_path / "dl" / "logged"
    meta = (tmp_path / "saved" / "MLmodel").read_text()
    assert "config:\n      k: 2" in meta and "code: code" in meta and "loader_module: mlflow.pyfunc.model" in meta
    # gitml loads its own model without the opt-in (recorded here) ...
    here = tracking.pyfunc.load_model(str(tmp_path / "saved"))
    assert list(here.predict(pd.DataFrame({"x": [1.0]}))) == [6.0] and here.model_config == {"k": 2}
    # ... and MLflow loads both (it needs gitml importable: the class derives from gitml's PythonModel)
    out = subprocess.run([sys.executable, "-c", MLFLOW_LOADS_CUSTOM, str(tmp_path / "saved"), str(logged)],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
                              "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got[str(tmp_path / "saved")] == {"pred": [6.0, 12.0, 30.0], "metadata": {"team": "a"}, "model_id": None,
                                            "class": "Scaler"}
    assert got[str(logged)]["pred"] == [3.0, 6.0, 15.0] and got[str(logged)]["model_id"] == model_id


MLFLOW_SAVES_CUSTOM = """
import json, sys, pandas as pd, mlflow.pyfunc

class Scaler(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.scale = json.load(open(context.artifacts["w"]))["scale"] * (context.model_config or {}).get("k", 1)

    def predict(self, context, model_input, params=None):
        return model_input["x"] * self.scale

json.dump({"scale": 3}, open("w.json", "w"))
mlflow.pyfunc.save_model(sys.argv[1], python_model=Scaler(), artifacts={"w": "w.json"}, model_config={"k": 2},
                         input_example=pd.DataFrame({"x": [1.0, 2.0]}))
"""

GITML_LOADS = """
import json, sys, pandas as pd, gitml
m = gitml.pyfunc.load_model(sys.argv[1], model_config=json.loads(sys.argv[2]) if len(sys.argv) > 2 else None)
print(json.dumps([float(v) for v in m.predict(pd.DataFrame({"x": [1.0, 2.0]}))]), m.model_config)
"""


def test_custom_pyfunc_saved_by_mlflow_loads_in_gitml_with_the_opt_in(tracking, repo, tmp_path):
    """issue 16: a PythonModel MLflow saved loads in gitml (with mlflow installed, to unpickle its base
    class); MLflow wrote it, so no record of this machine vouches for it: the opt-in is needed and the
    refusal says so."""
    _mlflow()
    out = subprocess.run([sys.executable, "-c", MLFLOW_SAVES_CUSTOM, str(tmp_path / "m")], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    script = tmp_path / "load.py"
    script.write_text(GITML_LOADS)
    refused = subprocess.run([sys.executable, str(script), str(tmp_path / "m")], cwd=repo, capture_output=True,
                             text=True)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert "UntrustedModel" in last and "python_model.pkl" in last and "a model MLflow or a teammate saved" in last
    assert "allow_pickle=True" in last and "GITML_ALLOW_PICKLE=1" in last
    env = {**os.environ, "GITML_ALLOW_PICKLE": "1"}
    loaded = subprocess.run([sys.executable, str(script), str(tmp_path / "m")], cwd=repo, capture_output=True,
                            text=True, env=env)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split("\n")[0] == "[6.0, 12.0] {'k': 2}"
    overridden = subprocess.run([sys.executable, str(script), str(tmp_path / "m"), '{"k": 10}'], cwd=repo,
                                capture_output=True, text=True, env=env)
    assert overridden.stdout.split("\n")[0] == "[30.0, 60.0] {'k': 10}", overridden.stderr[-2000:]


MLFLOW_SAVES_OPTIONS = """
import json, sys, pandas as pd, mlflow.sklearn, mlflow.pyfunc
from sklearn.linear_model import LogisticRegression
X = pd.DataFrame({"a": [0.1, 0.9, 0.4, 0.7]}); model = LogisticRegression().fit(X, [0, 1, 0, 1])
open("helper_issue16.py", "w").write("X = 1\\n")
open("cons.txt", "w").write("numpy<3\\n")
open("reqs.txt", "w").write("# pinned\\nscikit-learn==1.0\\n-c cons.txt\\n")
conda = {"name": "mine", "channels": ["defaults"],
         "dependencies": ["python=3.11", "pip", {"pip": ["scikit-learn", "mlflow"]}]}
calls = {"extra": dict(extra_pip_requirements=["requests==2.0"]),
         "pip": dict(pip_requirements="reqs.txt"),
         "conda": dict(conda_env=conda),
         "code": dict(code_paths=["helper_issue16.py"], metadata={"owner": "me", "n": 1})}
for name, kwargs in calls.items():
    mlflow.sklearn.save_model(model, sys.argv[1] + "/" + name, **kwargs)

class Id(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input

mlflow.pyfunc.save_model(sys.argv[1] + "/pyfunc", python_model=Id(), code_paths=["helper_issue16.py"],
                         metadata={"owner": "me"}, extra_pip_requirements=["requests==2.0"])
"""


def _model_files(path: Path) -> dict:
    import yaml

    meta = yaml.safe_load((path / "MLmodel").read_text())
    reqs = [ln for ln in (path / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("mlflow==")]
    return {"metadata": meta.get("metadata"), "code": {f: c.get("code") for f, c in meta["flavors"].items()},
            "code_files": sorted(p.name for p in (path / "code").iterdir()) if (path / "code").is_dir() else [],
            "reqs": reqs, "conda": yaml.safe_load((path / "conda.yaml").read_text()),
            "constraints": (path / "constraints.txt").read_text().split() if (path / "constraints.txt").exists()
            else None}


def test_env_code_and_metadata_arguments_write_the_files_mlflow_writes(tracking, tmp_path):
    """issue 16: code_paths, conda_env, pip_requirements, extra_pip_requirements and metadata were
    silently dropped by every flavor's save_model. Compared file by file with MLflow's for the same calls
    (MLflow also adds mlflow==<version> to the requirements; gitml writes what it is given)."""
    _mlflow()
    theirs, ours = tmp_path / "mlflow", tmp_path / "gitml"
    theirs.mkdir()
    ours.mkdir()
    out = subprocess.run([sys.executable, "-c", MLFLOW_SAVES_OPTIONS, str(theirs)], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    X = pd.DataFrame({"a": [0.1, 0.9, 0.4, 0.7]})
    model = LogisticRegression().fit(X, [0, 1, 0, 1])
    conda = {"name": "mine", "channels": ["defaults"],
             "dependencies": ["python=3.11", "pip", {"pip": ["scikit-learn", "mlflow"]}]}
    (tmp_path / "reqs.txt").write_text("# pinned\nscikit-learn==1.0\n-c cons.txt\n")
    (tmp_path / "cons.txt").write_text("numpy<3\n")
    helper = tmp_path / "helper_issue16.py"
    calls = {"extra": dict(extra_pip_requirements=["requests==2.0"]), "pip": dict(pip_requirements=str(tmp_path / "reqs.txt")),
             "conda": dict(conda_env=conda), "code": dict(code_paths=[str(helper)], metadata={"owner": "me", "n": 1})}
    for name, kwargs in calls.items():
        tracking.sklearn.save_model(model, ours / name, **kwargs)

    class Id(tracking.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    tracking.pyfunc.save_model(ours / "pyfunc", python_model=Id(), code_paths=[str(helper)], metadata={"owner": "me"},
                               extra_pip_requirements=["requests==2.0"])
    for name in ("pip", "conda", "code"):
        mine, real = _model_files(ours / name), _model_files(theirs / name)
        assert mine["metadata"] == real["metadata"] and mine["code"] == real["code"], name
        assert mine["code_files"] == real["code_files"] and mine["constraints"] == real["constraints"], name
    assert _model_files(ours / "pip")["reqs"] == _model_files(theirs / "pip")["reqs"] == \
        ["scikit-learn==1.0", "-c constraints.txt"]
    assert _model_files(ours / "conda")["conda"] == _model_files(theirs / "conda")["conda"] == conda
    assert _model_files(ours / "conda")["reqs"] == ["scikit-learn", "mlflow"]
    assert _model_files(ours / "extra")["reqs"][-1] == _model_files(theirs / "extra")["reqs"][-1] == "requests==2.0"
    mine, real = _model_files(ours / "pyfunc"), _model_files(theirs / "pyfunc")
    assert (mine["metadata"], mine["code"], mine["code_files"]) == (real["metadata"], real["code"], real["code_files"])
    assert mine["reqs"] == real["reqs"] and real["reqs"][-1] == "requests==2.0"  # cloudpickle==<installed> first
    assert tracking.pyfunc.load_model(str(ours / "code")).metadata.metadata == {"owner": "me", "n": 1}


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm", "pytorch", "pyfunc"])
def test_every_flavor_honours_code_paths_environment_and_metadata(tracking, data, tmp_path, flavor):
    """issue 16: each flavor's save_model took **_ and dropped MLflow's common arguments."""
    import yaml

    X, y = data
    helper = tmp_path / "helper_issue16.py"
    helper.write_text("X = 1\n")
    common = dict(code_paths=[str(helper)], extra_pip_requirements=["requests==2.0"], metadata={"flavor": flavor})
    if flavor == "sklearn":
        tracking.sklearn.save_model(LogisticRegression().fit(X, y), tmp_path / "m", **common)
    elif flavor == "pyfunc":
        tracking.pyfunc.save_model(tmp_path / "m", python_model=lambda df: df, **common)
    elif flavor == "pytorch":
        torch = pytest.importorskip("torch")
        tracking.pytorch.save_model(torch.nn.Linear(3, 1), tmp_path / "m",
                                    input_example=X.to_numpy(dtype="float32")[:4], **common)
    else:
        model, _ = _booster("xgb-sklearn" if flavor == "xgboost" else "lgb-sklearn", X, y)
        getattr(tracking, flavor).save_model(model, tmp_path / "m", **common)
    meta = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    assert meta["metadata"] == {"flavor": flavor}
    assert all(conf.get("code") == "code" for conf in meta["flavors"].values())
    assert (tmp_path / "m" / "code" / "helper_issue16.py").read_text() == "X = 1\n"
    assert (tmp_path / "m" / "requirements.txt").read_text().splitlines()[-1] == "requests==2.0"
    assert "requests==2.0" in (tmp_path / "m" / "conda.yaml").read_text()
    pm = tracking.pyfunc.load_model(str(tmp_path / "m"))  # saved here: its code is trusted and on sys.path
    assert pm.metadata.metadata == {"flavor": flavor}


def test_model_code_goes_through_the_trust_gate(tracking, data, tmp_path, monkeypatch):
    """A flavor's code directory goes on sys.path (as MLflow does) only if this machine wrote it."""
    from gitml.models.trust import UntrustedModel

    X, y = data
    helper = tmp_path / "helper_issue16.py"
    helper.write_text("X = 1\n")
    tracking.sklearn.save_model(LogisticRegression().fit(X, y), tmp_path / "m", code_paths=[str(helper)])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    for load in (tracking.sklearn.load_model, tracking.pyfunc.load_model):
        with pytest.raises(UntrustedModel, match=r"helper_issue16.py: it is code the model puts on sys.path"):
            load(str(tmp_path / "m"))
    assert len(tracking.sklearn.load_model(str(tmp_path / "m"), allow_pickle=True).predict(X)) == len(X)


def test_pyfunc_artifacts_by_local_path_and_uri(tracking, repo, tmp_path):
    """issue 16: pyfunc.log_model(artifacts=...) took local paths only; MLflow takes any artifact URI."""
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "words.txt").write_text("a b c")
    (tmp_path / "labels.json").write_text(json.dumps({"0": "no", "1": "yes"}))

    class Labeler(tracking.pyfunc.PythonModel):
        def load_context(self, context):
            self.labels = json.loads(Path(context.artifacts["labels"]).read_text())
            self.words = (Path(context.artifacts["vocab"]) / "words.txt").read_text().split()
            self.model = tracking.sklearn.load_model(context.artifacts["clf"])

        def predict(self, context, model_input, params=None):
            return [f"{self.labels[str(v)]}:{len(self.words)}" for v in self.model.predict(model_input)]

    X = pd.DataFrame({"a": [0.1, 0.9]})
    with tracking.start_run() as run:
        tracking.log_artifact(str(tmp_path / "labels.json"), "meta")
        tracking.sklearn.log_model(LogisticRegression().fit(X, [0, 1]), name="clf", registered_model_name="clf")
        info = tracking.pyfunc.log_model(
            name="labeler", python_model=Labeler(),
            artifacts={"labels": f"runs:/{run.info.run_id}/meta/labels.json", "vocab": f"file://{tmp_path / 'vocab'}",
                       "clf": "models:/clf/1", "same": f"runs:/{run.info.run_id}/meta/labels.json"})
    import yaml

    conf = yaml.safe_load(tracking.artifacts.load_text(f"{info.model_uri}/MLmodel"))["flavors"]["python_function"]
    assert conf["artifacts"] == {
        "labels": {"path": "artifacts/labels.json", "uri": f"runs:/{run.info.run_id}/meta/labels.json"},
        "vocab": {"path": "artifacts/vocab", "uri": f"file://{tmp_path / 'vocab'}"},
        "clf": {"path": "artifacts/clf", "uri": "models:/clf/1"},
        "same": {"path": "artifacts/labels.json", "uri": f"runs:/{run.info.run_id}/meta/labels.json"}}
    assert tracking.pyfunc.load_model(info.model_uri).predict(X) == ["no:3", "yes:3"]
    for bad in ("s3://bucket/weights.bin", str(tmp_path / "missing.bin"), "hf:/org/model"):
        with pytest.raises(InvalidValue, match=re.escape(repr(bad))):
            tracking.pyfunc.save_model(tmp_path / "bad", python_model=Labeler(), artifacts={"x": bad})
        assert not (tmp_path / "bad").exists()


def test_load_pyfunc_and_get_model_dependencies(tracking, data, model, tmp_path):
    X, _ = data
    tracking.sklearn.save_model(model, tmp_path / "m", pip_requirements=["scikit-learn", "pandas"])
    assert (tracking.pyfunc.load_pyfunc(str(tmp_path / "m")).predict(X) == model.predict(X)).all()
    deps = tracking.pyfunc.get_model_dependencies(str(tmp_path / "m"))
    assert Path(deps).read_text() == "scikit-learn\npandas\n"
    assert tracking.pyfunc.get_model_dependencies(str(tmp_path / "m"), format="conda").endswith("conda.yaml")
    with pytest.raises(InvalidValue, match="'docker'"):
        tracking.pyfunc.get_model_dependencies(str(tmp_path / "m"), format="docker")
