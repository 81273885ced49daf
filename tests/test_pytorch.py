"""The pytorch flavor: pt2 (torch.export) by default, pickle opt-in; interop with real MLflow both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
torch = pytest.importorskip("torch")

from gitml.errors import InvalidValue  # noqa: E402
from gitml.models.signature import SchemaMismatch  # noqa: E402
from tests.conftest import run_python, run_rev  # noqa: E402

MODEL_FILES = ["MLmodel", "conda.yaml", "data/model.pt2", "input_example.json", "python_env.yaml",
               "requirements.txt", "serving_input_example.json"]


@pytest.fixture
def X():
    return np.random.default_rng(0).random((6, 4)).astype("float32")


@pytest.fixture
def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def raw(model, X):
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy()


def files(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_pytorch_save_load_predict_equal(tracking, net, X, tmp_path):
    net.train()
    tracking.pytorch.save_model(net, tmp_path / "m", input_example=X)
    assert net.training  # traced in eval mode, the caller's mode restored
    assert files(tmp_path / "m") == MODEL_FILES
    import yaml

    meta = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())
    assert meta["flavors"]["python_function"]["loader_module"] == "mlflow.pytorch"
    assert meta["flavors"]["python_function"]["data"] == "data"
    assert meta["flavors"]["pytorch"] == {"model_data": "data", "pytorch_version": torch.__version__,
                                          "code": None, "serialization_format": "pt2"}
    assert json.loads(meta["signature"]["inputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]
    assert json.loads(meta["signature"]["outputs"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]
    reqs = (tmp_path / "m" / "requirements.txt").read_text().split()
    assert f"torch=={torch.__version__.partition('+')[0]}" in reqs  # no local label such as +cpu

    more = np.random.default_rng(1).random((11, 4)).astype("float32")  # another batch size
    loaded = tracking.pytorch.load_model(str(tmp_path / "m"))
    assert np.allclose(raw(loaded, more), raw(net.eval(), more))
    pm = tracking.pyfunc.load_model(str(tmp_path / "m"))
    assert np.allclose(pm.predict(more), raw(net, more))
    out = pm.predict(pd.DataFrame(more))  # the tensor signature makes it an array first, as in MLflow
    assert isinstance(out, np.ndarray) and np.allclose(out, raw(net, more))


def test_pytorch_log_model_by_runs_and_models_uri(tracking, net, X):
    with tracking.start_run() as run:
        info = tracking.pytorch.log_model(net, name="model", input_example=X, registered_model_name="net")
    assert info.model_uri == f"runs:/{run.info.run_id}/model"
    assert np.allclose(tracking.pyfunc.load_model(f"models:/net/{info.registered_model_version}").predict(X),
                       raw(net, X))
    assert info.flavors["pytorch"]["serialization_format"] == "pt2"
    listed = {f.path for f in tracking.Client().list_artifacts(run.info.run_id, "model")}
    assert "model/data" in listed and "model/MLmodel" in listed
    assert np.allclose(tracking.pyfunc.load_model(info.model_uri).predict(X), raw(net, X))
    assert np.allclose(raw(tracking.pytorch.load_model(info.model_uri), X), raw(net, X))


def test_pytorch_signature_mismatch_refused(tracking, net, X, tmp_path):
    tracking.pytorch.save_model(net, tmp_path / "m", input_example=X)
    pm = tracking.pyfunc.load_model(str(tmp_path / "m"))
    with pytest.raises(SchemaMismatch, match=r"shape \[6, 3\] does not match the signature's \[-1, 4\]"):
        pm.predict(X[:, :3])
    with pytest.raises(SchemaMismatch, match="float64 cannot be converted to float32"):
        pm.predict(X.astype("float64"))
    with pytest.raises(SchemaMismatch, match="float64 cannot be converted to float32"):
        pm.predict(pd.DataFrame(X.astype("float64")))  # as MLflow: cast to float32 yourself


def test_pytorch_pt2_needs_a_usable_input_example(tracking, net, X, tmp_path):
    with pytest.raises(InvalidValue, match="needs an input_example"):
        tracking.pytorch.save_model(net, tmp_path / "a")
    with pytest.raises(InvalidValue, match="at least 2 rows"):
        tracking.pytorch.save_model(net, tmp_path / "b", input_example=X[:1])
    with pytest.raises(InvalidValue, match="serialization_format 'onnx'"):
        tracking.pytorch.save_model(net, tmp_path / "c", serialization_format="onnx", input_example=X)
    with pytest.raises(InvalidValue, match="torch.nn.Module"):
        tracking.pytorch.save_model(object(), tmp_path / "d", input_example=X)
    assert not any((tmp_path / d).exists() for d in "abcd")
    # a tensor example works as a numpy one
    tracking.pytorch.save_model(net, tmp_path / "t", input_example=torch.from_numpy(X))
    assert np.allclose(tracking.pyfunc.load_model(str(tmp_path / "t")).predict(X), raw(net, X))


def test_pytorch_tampered_model_file_fails_hash_check(tracking, repo, net, X):
    from gitml.store.content import CorruptObject

    with tracking.start_run() as run:
        tracking.pytorch.log_model(net, name="model", input_example=X)
    manifest = json.loads(subprocess.run(["git", "show", f"{run_rev(repo, run.info.run_id)}:artifacts.json"],
                                         cwd=repo, capture_output=True, text=True, check=True).stdout)
    digest = manifest["model/data/model.pt2"]["md5"]
    obj = repo / ".git/gitml/cache/files/md5" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"not a model")
    with pytest.raises(CorruptObject, match=digest):
        tracking.pyfunc.load_model(f"runs:/{run.info.run_id}/model")


def test_pytorch_pickle_is_opt_in(tracking, net, X, tmp_path, monkeypatch):
    tracking.pytorch.save_model(net, tmp_path / "m", serialization_format="pickle")
    assert {"data/model.pth", "data/pickle_module_info.txt"} <= set(files(tmp_path / "m"))
    assert (tmp_path / "m" / "data" / "pickle_module_info.txt").read_text() == "mlflow.pytorch.pickle_module"
    # saved here, so trusted here (gitml.models.trust); on another machine (another trust key) it is not
    assert np.allclose(raw(tracking.pytorch.load_model(str(tmp_path / "m")), X), raw(net, X))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "another-machine"))
    with pytest.raises(InvalidValue, match="model.pth: it is a pickle.*allow_pickle=True"):
        tracking.pytorch.load_model(str(tmp_path / "m"))
    with pytest.raises(InvalidValue, match="GITML_ALLOW_PICKLE=1"):
        tracking.pyfunc.load_model(str(tmp_path / "m"))
    loaded = tracking.pytorch.load_model(str(tmp_path / "m"), allow_pickle=True)
    assert isinstance(loaded, torch.nn.Sequential) and not loaded.training
    assert np.allclose(raw(loaded, X), raw(net, X))
    monkeypatch.setenv("GITML_ALLOW_PICKLE", "1")
    pm = tracking.pyfunc.load_model(str(tmp_path / "m"))
    assert pm.signature is None  # saved without an example
    assert np.allclose(pm.predict(X), raw(net, X))
    frame = pd.DataFrame(X.astype("float64"), index=range(100, 106))
    out = pm.predict(frame)  # no signature: a DataFrame is cast to float32, and comes back on its index
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(frame.index)
    assert np.allclose(out.to_numpy(), raw(net, X))
    monkeypatch.setenv("GITML_ALLOW_PICKLE", "maybe")
    with pytest.raises(InvalidValue, match="GITML_ALLOW_PICKLE='maybe' is not true or false"):
        tracking.pyfunc.load_model(str(tmp_path / "m"))


def _rewrite_pt2(model_dir: Path, change) -> None:
    """Rewrite the records of ``model_dir``'s pt2 archive with ``change(name, bytes) -> {name: bytes}``."""
    path = model_dir / "data" / "model.pt2"
    with zipfile.ZipFile(path) as z:
        records = {i.filename: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in records.items():
            for new_name, new_data in change(name, data).items():
                z.writestr(new_name, new_data)


def _program_edit(edit):
    def change(name, data):
        if not name.endswith("models/model.json"):
            return {name: data}
        program = json.loads(data)
        edit(program)
        return {name: json.dumps(program).encode()}
    return change


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def _evil_checkpoint(name, data):
    if not name.endswith("sample_inputs/model.pt"):
        return {name: data}
    import io

    buf = io.BytesIO()
    torch.save({"x": _Evil()}, buf)
    return {name: buf.getvalue()}


def _sym_expr(program):
    for node in program["graph_module"]["graph"]["tensor_values"].values():
        for size in node["sizes"]:
            if "as_expr" in size:
                size["as_expr"]["expr_str"] = "__import__('os').getcwd()"


def _with_shared_library(name, data):
    extra = {"model/data/aotinductor/model/x.so": b"\x7fELF"} if name.endswith("archive_format") else {}
    return {name: data, **extra}


PT2_ATTACKS = {
    "guard": (_program_edit(lambda p: p.update(guards_code=["__import__('os').system('true') == 0"])),
              "guard"),
    "node target": (_program_edit(lambda p: p["graph_module"]["graph"]["nodes"][1].update(
        target="torch.serialization.os.system")), "graph node target 'torch.serialization.os.system'"),
    "shape expression": (_program_edit(_sym_expr), "shape expression"),
    "pickled object": (_evil_checkpoint, r"its pickle calls \['posix.system'\]"),
    "compiled code": (_with_shared_library, "AOTInductor"),
}


@pytest.mark.parametrize("attack", sorted(PT2_ATTACKS))
def test_pt2_archive_that_could_run_code_is_refused(tracking, net, X, tmp_path, attack):
    """torch.export.load execs guards, sympifies shape expressions, resolves node targets by
    getattr from torch and unpickles some records: a crafted pt2 file runs code through each."""
    tracking.pytorch.save_model(net, tmp_path / "m", input_example=X)
    change, message = PT2_ATTACKS[attack]
    _rewrite_pt2(tmp_path / "m", change)
    with pytest.raises(InvalidValue, match=message):
        tracking.pytorch.load_model(str(tmp_path / "m"))
    with pytest.raises(InvalidValue, match="could run code when loaded"):
        tracking.pyfunc.load_model(str(tmp_path / "m"))


def test_import_gitml_pytorch_does_not_import_torch(repo):
    out = run_python("import sys, gitml, gitml.pytorch; print('torch' in sys.modules)", repo)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


MLFLOW_ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}

MLFLOW_LOADS = """
import os, sys, json
import numpy as np, mlflow.pyfunc
X = np.asarray(json.loads(open(sys.argv[3]).read()), dtype="float32")
pt2 = mlflow.pyfunc.load_model(sys.argv[1]).predict(X)  # no pickle opt-in needed
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
pickled = mlflow.pyfunc.load_model(sys.argv[2]).predict(X)
print(json.dumps([pt2.tolist(), pickled.tolist()]))
"""

MLFLOW_SAVES = """
import sys, json
import numpy as np, torch, mlflow.pytorch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
X = np.asarray(json.loads(open(sys.argv[3]).read()), dtype="float32")
# pip_requirements only skips MLflow's slow requirement inference (a subprocess)
mlflow.pytorch.save_model(net, sys.argv[1], input_example=X, pip_requirements=["torch"])  # default: pt2
mlflow.pytorch.save_model(net, sys.argv[2], input_example=X, serialization_format="pickle",
                          pip_requirements=["torch"])
with torch.no_grad():
    print(json.dumps(net(torch.from_numpy(X)).tolist()))
"""


def _mlflow() -> None:
    pytest.importorskip("mlflow")


def test_mlflow_loads_gitml_pytorch_model(tracking, net, X, tmp_path):
    _mlflow()
    tracking.pytorch.save_model(net, tmp_path / "pt2", input_example=X)
    tracking.pytorch.save_model(net, tmp_path / "pickle", serialization_format="pickle", input_example=X)
    (tmp_path / "X.json").write_text(json.dumps(X.tolist()))
    out = subprocess.run([sys.executable, "-c", MLFLOW_LOADS, str(tmp_path / "pt2"), str(tmp_path / "pickle"),
                          str(tmp_path / "X.json")], capture_output=True, text=True, env=MLFLOW_ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    pt2, pickled = json.loads(out.stdout.strip().splitlines()[-1])
    assert np.allclose(pt2, raw(net, X)) and np.allclose(pickled, raw(net, X))


def test_gitml_loads_mlflow_pytorch_model(tracking, X, tmp_path):
    _mlflow()
    (tmp_path / "X.json").write_text(json.dumps(X.tolist()))
    out = subprocess.run([sys.executable, "-c", MLFLOW_SAVES, str(tmp_path / "pt2"), str(tmp_path / "pickle"),
                          str(tmp_path / "X.json")], capture_output=True, text=True, env=MLFLOW_ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = np.asarray(json.loads(out.stdout.strip().splitlines()[-1]))
    assert (tmp_path / "pt2" / "data" / "model.pt2").is_file()
    assert np.allclose(tracking.pyfunc.load_model(str(tmp_path / "pt2")).predict(X), expected)
    assert np.allclose(raw(tracking.pytorch.load_model(str(tmp_path / "pt2")), X), expected)
    with pytest.raises(InvalidValue, match="allow_pickle"):
        tracking.pyfunc.load_model(str(tmp_path / "pickle"))
    loaded = tracking.pytorch.load_model(str(tmp_path / "pickle"), allow_pickle=True)
    assert np.allclose(raw(loaded, X), expected)


def test_pytorch_failed_export_leaves_no_directory(tracking, X, tmp_path):
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x):  # runs eagerly, but torch.export cannot trace a branch on values
            return self.linear(x) if x.sum() > 0 else -self.linear(x)

    with pytest.raises(Exception, match="data-dependent"):
        tracking.pytorch.save_model(Branchy(), tmp_path / "m", input_example=X)
    assert not (tmp_path / "m").exists()
    tracking.pytorch.save_model(Branchy(), tmp_path / "m", serialization_format="pickle", input_example=X)
