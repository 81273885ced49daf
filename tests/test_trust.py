"""Models that run code when loaded: refused unless the user opted in or gitml wrote them here (issue 14).

Every payload is a real malicious pickle: unpickling it runs ``touch <marker>``
through ``os.system``. A refused load must leave no marker.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.linear_model import LinearRegression  # noqa: E402

import gitml.pyfunc  # noqa: E402
from gitml.models.trust import UntrustedModel  # noqa: E402
from tests.conftest import git, gitml_cli, run_python  # noqa: E402

X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 3.0, 2.0]})
OPT_IN = r"allow_pickle=True .*GITML_ALLOW_PICKLE=1"


class System:
    """Unpickles as ``os.system(command)``: the classic pickle payload."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Trojan:
    """Runs ``touch marker`` when unpickled, then becomes ``inner``: with the opt-in, the model still works."""

    def __init__(self, marker: Path, inner: object) -> None:
        self.marker, self.inner = marker, inner

    def __reduce__(self):
        import cloudpickle

        blob = cloudpickle.dumps(self.inner)
        return (eval, (f"__import__('os').system({'touch ' + str(self.marker)!r}) or "
                       f"__import__('pickle').loads({blob!r})",))


def payload(marker: Path) -> bytes:
    return pickle.dumps(System(f"touch {marker}"))


class Doubler(gitml.pyfunc.PythonModel):
    """A custom model that reads its scale from an artifact and a helper from its code."""

    def load_context(self, context):
        self.scale = json.loads(Path(context.artifacts["weights"]).read_text())["scale"]

    def predict(self, context, model_input, params=None):
        import helpers_issue14

        return helpers_issue14.apply(model_input["a"], self.scale)


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a payload creates: it must not exist after a refused load."""
    return tmp_path / "PWNED"


@pytest.fixture
def linear():
    return LinearRegression().fit(X, X.a + X.b)


def sklearn_pickle_dir(tracking, tmp_path: Path, linear, flavor: str = "sklearn") -> Path:
    """A cloudpickle-format model directory (sklearn, or LightGBM's scikit-learn API) as a teammate would send it."""
    out = tmp_path / f"{flavor}-model"
    if flavor == "sklearn":
        tracking.sklearn.save_model(linear, out, serialization_format="cloudpickle")
    else:
        lgb = pytest.importorskip("lightgbm")
        tracking.lightgbm.save_model(lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, X.a), out,
                                     serialization_format="cloudpickle")
    return out


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm"])
def test_a_pickled_sklearn_model_runs_no_code_without_the_opt_in(tracking, tmp_path, marker, linear, monkeypatch,
                                                                  flavor):
    """issue 14: an MLmodel saying serialization_format: cloudpickle ran an os.system payload on load."""
    model = sklearn_pickle_dir(tracking, tmp_path, linear, flavor)
    (model / "model.pkl").write_bytes(payload(marker))
    module = getattr(tracking, flavor)
    for load in (lambda: tracking.pyfunc.load_model(str(model)), lambda: module.load_model(str(model))):
        with pytest.raises(UntrustedModel, match=rf"model.pkl: it is a cloudpickle file .*{OPT_IN}") as e:
            load()
        assert "did not write it on this machine" in str(e.value)
        assert not marker.exists()
    assert UntrustedModel.http_status == 403 and UntrustedModel.exit_code == 1
    # opting in is what lets it run, by argument or by setting
    (model / "model.pkl").write_bytes(pickle.dumps(Trojan(marker, linear)))
    assert np.allclose(tracking.pyfunc.load_model(str(model), allow_pickle=True).predict(X), linear.predict(X))
    assert marker.exists()
    marker.unlink()
    monkeypatch.setenv("GITML_ALLOW_PICKLE", "1")
    assert np.allclose(module.load_model(str(model)).predict(X), linear.predict(X))
    marker.unlink()


def test_a_custom_python_model_pickle_runs_no_code_without_the_opt_in(tracking, repo, tmp_path, marker):
    """issue 14: a custom pyfunc's python_model.pkl ran an os.system payload on pyfunc.load_model."""
    tracking.pyfunc.save_model(tmp_path / "m", python_model=gitml.pyfunc.PythonModel())
    (tmp_path / "m" / "python_model.pkl").write_bytes(payload(marker))
    # git config is no opt-in: it can include a file from the work tree, which a pull changes
    git(repo, "config", "gitml.allowpickle", "true")
    with pytest.raises(UntrustedModel, match=rf"python_model.pkl: it is a pickled custom PythonModel.*{OPT_IN}"):
        tracking.pyfunc.load_model(str(tmp_path / "m"))
    assert not marker.exists()
    (tmp_path / "m" / "python_model.pkl").write_bytes(pickle.dumps(Trojan(marker, gitml.pyfunc.PythonModel())))
    assert tracking.pyfunc.load_model(str(tmp_path / "m"), allow_pickle=True) is not None
    assert marker.exists()
    marker.unlink()


MLFLOW_SAVES_EVIL = """
import os, sys
import mlflow.pyfunc

class Evil(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input

    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))

mlflow.pyfunc.save_model(sys.argv[1], python_model=Evil())
"""


def test_a_custom_python_model_mlflow_wrote_needs_the_opt_in(tracking, tmp_path, marker):
    """issue 14: gitml loads MLflow-written model directories; MLflow's own cloudpickle of a hostile
    PythonModel ran its payload in gitml.pyfunc.load_model."""
    pytest.importorskip("mlflow")
    out = subprocess.run([sys.executable, "-c", MLFLOW_SAVES_EVIL, str(tmp_path / "m"), str(marker)],
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    marker.unlink(missing_ok=True)  # MLflow's save_model round-trips the object, running the payload itself
    with pytest.raises(UntrustedModel, match=rf"python_model.pkl: .*{OPT_IN}"):
        tracking.pyfunc.load_model(str(tmp_path / "m"))
    assert not marker.exists()
    with pytest.raises(AttributeError):  # opted in: the payload runs (and its 0 is no model)
        tracking.pyfunc.load_model(str(tmp_path / "m"), allow_pickle=True)
    assert marker.exists()
    marker.unlink()


def test_a_pytorch_pickle_runs_no_code_without_the_opt_in(tracking, tmp_path, marker):
    """issue 14: the pytorch pickle path still refuses a hostile model.pth, now through the one gate."""
    torch = pytest.importorskip("torch")
    tracking.pytorch.save_model(torch.nn.Linear(2, 1), tmp_path / "m", serialization_format="pickle")
    torch.save(System(f"touch {marker}"), tmp_path / "m" / "data" / "model.pth")
    for load in (lambda: tracking.pyfunc.load_model(str(tmp_path / "m")),
                 lambda: tracking.pytorch.load_model(str(tmp_path / "m"))):
        with pytest.raises(UntrustedModel, match=rf"model.pth: it is a pickle .*{OPT_IN}"):
            load()
    assert not marker.exists()
    with pytest.raises(AttributeError):
        tracking.pytorch.load_model(str(tmp_path / "m"), allow_pickle=True)
    assert marker.exists()
    marker.unlink()


def evil_version(tracking, tmp_path: Path, inner: object) -> str:
    """Log a sklearn model whose model.pkl is ``inner`` pickled (not by gitml) and register it as 'evil'."""
    model = tmp_path / "evil-dir"
    tracking.sklearn.save_model(LinearRegression().fit(X, X.a), model, serialization_format="cloudpickle")
    (model / "model.pkl").write_bytes(pickle.dumps(inner))
    with tracking.start_run() as run:
        tracking.log_artifacts(str(model), "model")
    return f"models:/evil/{tracking.register_model(f'runs:/{run.info.run_id}/model', 'evil').version}"


def test_a_registered_hostile_model_is_refused_by_uri_and_by_the_scoring_app(tracking, tmp_path, marker, linear):
    """issue 14: pyfunc.load_model('models:/evil/1') and gitml serve ran an os.system payload."""
    from gitml.serving.app import ModelHolder
    from gitml.serving.server import make_app
    from tests.test_serving import call

    uri = evil_version(tracking, tmp_path, Trojan(marker, linear))
    for load in (lambda: tracking.pyfunc.load_model(uri), lambda: tracking.sklearn.load_model(uri),
                 lambda: ModelHolder(uri), lambda: make_app(uri), lambda: ModelHolder("evil@v0.0.1")):
        with pytest.raises(UntrustedModel, match=rf"model.pkl: .*{OPT_IN}"):
            load()
    assert not marker.exists()
    app = make_app(uri, allow_pickle=True)
    status, body = call(app, json.dumps({"dataframe_split": X.to_dict(orient="split")}))
    assert status == 200 and np.allclose(body["predictions"], linear.predict(X))
    assert marker.exists()
    marker.unlink()


def test_a_followed_stage_moving_to_a_hostile_version_keeps_serving_the_old_one(tracking, tmp_path, marker, linear):
    """issue 14: a version that needs the opt-in is a failed load for the follower, never code run."""
    from gitml.serving.app import ModelHolder

    with tracking.start_run():
        tracking.sklearn.log_model(linear, "model", registered_model_name="evil")
    assert evil_version(tracking, tmp_path, System(f"touch {marker}")) == "models:/evil/2"
    tracking.MlflowClient().transition_model_version_stage("evil", 1, "production")
    holder = ModelHolder("evil#production", poll_seconds=3600)
    tracking.MlflowClient().transition_model_version_stage("evil", 2, "production")
    assert holder.check() is False
    assert "UntrustedModel" in holder.describe()["follow_error"] and holder.current.info["version"] == "v0.0.1"
    assert not marker.exists()


def write_helpers(tmp_path: Path) -> Path:
    helpers = tmp_path / "helpers_issue14.py"
    helpers.write_text("def apply(column, scale):\n    return column * scale\n")
    return helpers


def test_a_custom_model_logged_here_loads_without_the_opt_in_and_only_as_written(tracking, repo, tmp_path, marker,
                                                                                   monkeypatch):
    """issue 14: the trust path. A PythonModel logged and loaded on this machine in this repo needs no
    opt-in; one changed byte, a swapped pickle, artifact or code file, or another machine's key is refused."""
    (tmp_path / "weights.json").write_text(json.dumps({"scale": 2}))
    helpers = write_helpers(tmp_path)
    with tracking.start_run():
        info = tracking.pyfunc.log_model(Doubler(), name="m", artifacts={"weights": str(tmp_path / "weights.json")},
                                         code_paths=[str(helpers)], registered_model_name="doubler")
    for uri in (info.model_uri, "models:/doubler/1", "doubler@v0.0.1"):
        assert list(tracking.pyfunc.load_model(uri).predict(X)) == [0.0, 2.0, 4.0, 6.0]
    assert any("gitml-code-" in p for p in sys.path)  # the checked copy of the code is what is imported
    trust_file = repo / ".git" / "gitml" / "trusted-model-files"
    entries = trust_file.read_text().splitlines()
    assert len(entries) == 3 and {e.split()[1] for e in entries} == {"pickle", "code", "artifact"}
    model = Path(tracking.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "local")))
    pickled = (model / "python_model.pkl").read_bytes()
    assert hashlib.sha256(pickled).hexdigest() not in trust_file.read_text()  # keyed: not a plain hash
    assert list(tracking.pyfunc.load_model(str(model)).predict(X)) == [0.0, 2.0, 4.0, 6.0]

    def refused(path: str) -> None:
        with pytest.raises(UntrustedModel, match=rf"{path}: .*did not write it on this machine.*{OPT_IN}"):
            tracking.pyfunc.load_model(str(model))
        assert not marker.exists()

    flipped = bytearray(pickled)
    flipped[len(flipped) // 2] ^= 1
    (model / "python_model.pkl").write_bytes(bytes(flipped))
    refused("python_model.pkl")
    (model / "python_model.pkl").write_bytes(payload(marker))  # same name, other content
    refused("python_model.pkl")
    (model / "python_model.pkl").write_bytes(pickled)
    (model / "artifacts" / "weights.json").write_text(json.dumps({"scale": 3}))
    refused("weights.json")
    (model / "artifacts" / "weights.json").write_text(json.dumps({"scale": 2}))
    (model / "code" / "helpers_issue14.py").write_text(f"import os\nos.system('touch {marker}')\n")
    refused("helpers_issue14.py")
    (model / "code" / "helpers_issue14.py").write_bytes(helpers.read_bytes())
    (model / "code" / "extra.py").write_text("x = 1\n")
    refused("extra.py")
    (model / "code" / "extra.py").unlink()
    assert list(tracking.pyfunc.load_model(str(model)).predict(X)) == [0.0, 2.0, 4.0, 6.0]
    # the same repository and files, another machine (another user's key): nothing is trusted
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    refused("python_model.pkl")


def test_paths_in_an_mlmodel_stay_inside_the_model_and_loader_modules_come_from_gitml(tracking, tmp_path, marker,
                                                                                      monkeypatch):
    """issue 14: an MLmodel naming loader_module: os, or a python_model, code or artifact path outside the
    model directory, must neither import nor read anything from there."""
    import yaml

    (tmp_path / "outside.pkl").write_bytes(payload(marker))
    tracking.pyfunc.save_model(tmp_path / "m", python_model=gitml.pyfunc.PythonModel())
    meta_file = tmp_path / "m" / "MLmodel"
    original = yaml.safe_load(meta_file.read_text())
    monkeypatch.setenv("GITML_ALLOW_PICKLE", "1")  # even opted in

    def with_pyfunc(**changes) -> None:
        meta = json.loads(json.dumps(original))
        meta["flavors"]["python_function"].update(changes)
        meta_file.write_text(yaml.safe_dump(meta))

    for changes, words in [({"loader_module": "os"}, "needs loader module 'os'"),
                           ({"python_model": "../outside.pkl"}, "outside the model directory"),
                           ({"python_model": str(tmp_path / "outside.pkl")}, "expected a path inside"),
                           ({"code": ".."}, "outside the model directory"),
                           ({"artifacts": {"w": {"path": "../outside.pkl"}}}, "outside the model directory")]:
        with_pyfunc(**changes)
        with pytest.raises(Exception, match=words):
            tracking.pyfunc.load_model(str(tmp_path / "m"))
        assert str(tmp_path) not in sys.path
    assert not marker.exists()


def test_a_skops_file_cannot_call_functions_it_names(tracking, tmp_path, marker):
    """issue 14: skops rebuilt any 'builtins.', 'numpy.' or 'scipy.' name without asking, so a skops file
    whose reduce node names builtins.exec ran code on load."""
    from sklearn.preprocessing import FunctionTransformer

    tracking.sklearn.save_model(FunctionTransformer(kw_args={"n": 1}), tmp_path / "m")
    path = tmp_path / "m" / "model.skops"
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(files["schema.json"])
    schema["content"]["content"]["kw_args"]["content"]["n"] = {
        "__class__": "exec", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
        "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [
            {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "is_json": True,
             "content": json.dumps(f"import os; os.system('touch {marker}')"), "__id__": 1}], "__id__": 2},
        "__id__": 3}
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    for load in (lambda: tracking.sklearn.load_model(str(tmp_path / "m")),
                 lambda: tracking.pyfunc.load_model(str(tmp_path / "m"))):
        with pytest.raises(UntrustedModel, match=r"model.skops: .*skops does not trust by default: "
                                                 r"\['builtins.exec'\].*skops_trusted_types=\['builtins.exec'\]"):
            load()
    assert not marker.exists()
    # a forest saved here loads without being named: this machine recorded its skops file (issue 16)
    from sklearn.ensemble import RandomForestRegressor

    tracking.sklearn.save_model(RandomForestRegressor(n_estimators=2).fit(X, X.a), tmp_path / "rf")
    assert len(tracking.sklearn.load_model(str(tmp_path / "rf")).predict(X)) == len(X)


TEAMMATE_LOGS = """
import json, sys
from pathlib import Path
import gitml

class Doubler(gitml.pyfunc.PythonModel):  # defined in __main__: cloudpickle stores it by value
    def load_context(self, context):
        self.scale = json.loads(Path(context.artifacts["weights"]).read_text())["scale"]

    def predict(self, context, model_input, params=None):
        import helpers_issue14
        return helpers_issue14.apply(model_input["a"], self.scale)

Path("w.json").write_text(json.dumps({"scale": 2}))
with gitml.start_run():
    gitml.pyfunc.log_model(Doubler(), name="m", artifacts={"weights": "w.json"}, code_paths=[sys.argv[1]],
                           registered_model_name="doubler")
"""
LOADS = ("import gitml, pandas as pd; "
         "print(list(gitml.pyfunc.load_model('models:/doubler/1').predict(pd.DataFrame({'a': [1.0]})))); ")


def test_trust_stays_in_the_repository_that_wrote_the_model(tracking, repo, tmp_path, marker, monkeypatch):
    """issue 14: a model pulled from a teammate needs the opt-in: the record of trusted files never
    travels with push, pull or fetch, even when the teammate's clone trusts the model."""
    monkeypatch.delenv("GITML_REPO")
    bare, store = tmp_path / "remote.git", tmp_path / "dvcstore"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "HEAD:main")
    theirs = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(bare), str(theirs))
    out = subprocess.run([sys.executable, "-c", TEAMMATE_LOGS, str(write_helpers(tmp_path))], cwd=theirs,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    where_logged = run_python(LOADS, theirs)
    assert where_logged.returncode == 0 and where_logged.stdout.strip() == "[2.0]", where_logged.stderr[-2000:]
    gitml_cli(theirs, "remote", "add", "-d", "store", str(store))
    gitml_cli(theirs, "push")
    gitml_cli(repo, "remote", "add", "-d", "store", str(store))
    gitml_cli(repo, "pull")
    assert (theirs / ".git" / "gitml" / "trusted-model-files").is_file()
    assert not (repo / ".git" / "gitml" / "trusted-model-files").exists()
    for where in (bare, store):
        assert not [p for p in where.rglob("*") if "trusted" in p.name]
    got = run_python(LOADS, repo)
    assert got.returncode == 1 and "UntrustedModel" in got.stderr and "python_model.pkl" in got.stderr
    assert not marker.exists()
    got = run_python(LOADS, repo, {"GITML_ALLOW_PICKLE": "1"})
    assert got.returncode == 0 and got.stdout.strip() == "[2.0]", got.stderr[-2000:]
    # the teammate's record, copied over, vouches for nothing without their key
    (repo / ".git" / "gitml" / "trusted-model-files").write_bytes(
        (theirs / ".git" / "gitml" / "trusted-model-files").read_bytes())
    got = run_python(LOADS, repo, {"XDG_CONFIG_HOME": str(tmp_path / "my-machine")})
    assert got.returncode == 1 and "UntrustedModel" in got.stderr
