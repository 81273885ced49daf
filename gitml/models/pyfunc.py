"""The generic model interface: load any model directory and call ``predict``.

``load_model(uri)`` reads the MLmodel file, imports the flavor named by
``python_function.loader_module`` and wraps what it returns in a
``PyFuncModel`` whose ``predict`` enforces the signature first. MLflow's
loader modules (``mlflow.sklearn``, ``mlflow.pytorch``, ``mlflow.pyfunc.model``...) map to
gitml's own implementations, so MLflow-written models load without MLflow.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models import trust
from gitml.models.mlmodel import PYFUNC, Model, write_environment, save_input_example
from gitml.models.signature import ModelSignature, enforce_schema, signature_from_example

# MLflow loader module -> gitml module implementing the same format
LOADERS = {
    "mlflow.sklearn": "gitml.models.sklearn",
    "mlflow.xgboost": "gitml.models.xgboost",
    "mlflow.lightgbm": "gitml.models.lightgbm",
    "mlflow.pytorch": "gitml.models.pytorch",
    "gitml.models.xgboost": "gitml.models.xgboost",
    "gitml.models.lightgbm": "gitml.models.lightgbm",
    "gitml.models.pytorch": "gitml.models.pytorch",
    "mlflow.pyfunc.model": "gitml.models.pyfunc",
    "gitml.models.sklearn": "gitml.models.sklearn",
    "gitml.models.pyfunc": "gitml.models.pyfunc",
}


class PythonModel:
    """Base class for custom models, as in MLflow: override ``predict``, optionally ``load_context``."""

    def load_context(self, context: PythonModelContext) -> None:
        """Called once at load time; ``context.artifacts`` maps names to local paths."""

    def predict(self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError


class PythonModelContext:
    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None) -> None:
        self.artifacts = artifacts
        self.model_config = model_config or {}


class PyFuncModel:
    """A loaded model: ``predict(data, params=None)`` with the signature enforced."""

    def __init__(self, model_meta: Model, impl: Any, path: Path) -> None:
        self.metadata = model_meta
        self._impl = impl
        self._path = path

    @property
    def signature(self) -> ModelSignature | None:
        return self.metadata.signature

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict; raises SchemaMismatch when ``data`` does not fit the signature."""
        sig = self.metadata.signature
        if sig is not None and sig.inputs is not None:
            data = enforce_schema(data, sig.inputs)
        if params and sig is not None and sig.params:
            known = {p["name"]: p for p in sig.params}
            unknown = sorted(set(params) - set(known))
            if unknown:
                raise InvalidValue(f"Unknown inference params {unknown}; the model accepts {sorted(known)}")
            params = {**{k: p.get("default") for k, p in known.items()}, **params}
        return self._impl.predict(data, params=params) if params else self._impl.predict(data)

    def unwrap_python_model(self) -> Any:
        return getattr(self._impl, "python_model", self._impl)

    def __repr__(self) -> str:
        return f"PyFuncModel(flavor={self.metadata.flavors[PYFUNC].get('loader_module')}, path={str(self._path)!r})"


def load_model(model_uri: str, dst_path: str | None = None, allow_pickle: bool | None = None) -> PyFuncModel:
    """Load a model by URI (``runs:/<id>/<path>``, a local path) as a PyFuncModel.

    A model whose files run code when loaded (pickles, a custom model's code
    and artifacts) loads only if gitml wrote those files on this machine in
    this repository, or with ``allow_pickle=True`` (default: the
    ``GITML_ALLOW_PICKLE`` setting); see ``gitml.models.trust``. The
    ``loader_module`` an MLmodel names is looked up in ``LOADERS``, never
    imported as given.

    Raises:
        ModelNotFound, InvalidValue (no python_function flavor / unknown loader), UntrustedModel.
    """
    from gitml.models.uri import local_model_path

    path = local_model_path(model_uri, dst_path)
    meta = Model.load(path)
    conf = meta.flavors.get(PYFUNC)
    if conf is None:
        raise InvalidValue(f"Model at {model_uri!r} has no python_function flavor; load it with its own flavor")
    loader = conf.get("loader_module")
    target = LOADERS.get(loader)
    if target is None:
        raise InvalidValue(f"Model at {model_uri!r} needs loader module {loader!r}, which gitml does not provide")
    sub = conf.get("model_path") or conf.get("data")  # MLflow flavors use either key
    data = path / sub if sub else path
    impl = importlib.import_module(target)._load_pyfunc(str(data), meta, path, allow_pickle)
    return PyFuncModel(meta, impl, path)


# -- custom PythonModel flavor (mlflow.pyfunc.model) --------------------------------------------------


class _PythonModelWrapper:
    def __init__(self, python_model: PythonModel, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.python_model.predict(self.context, data, params=params) if params else \
            self.python_model.predict(self.context, data)


def _load_pyfunc(data_path: str, meta: Model | None = None, model_dir: Path | None = None,
                 allow_pickle: bool | None = None) -> Any:
    """A custom PythonModel: ``python_model.pkl`` unpickled, ``code`` on sys.path, ``load_context`` called.

    Without the opt-in, the pickle, every code file and every artifact must
    be files this machine recorded (the artifacts too, because the model's
    own code reads them, and may unpickle them, in ``load_context``).
    """
    import sys

    model_dir = model_dir or Path(data_path)
    conf = meta.flavors.get(PYFUNC, {}) if meta else {}
    pickled = trust.inside(model_dir, conf.get("python_model", "python_model.pkl"), "python_model")
    # MLflow writes {name: {"path": ..., "uri": ...}}; plain strings are accepted too.
    entries = conf.get("artifacts") or {}
    if not isinstance(entries, dict):
        raise InvalidValue(f"The MLmodel in {model_dir} gives artifacts as {entries!r}: expected a mapping")
    artifacts = {name: trust.inside(model_dir, entry.get("path") if isinstance(entry, dict) else entry,
                                    f"artifact {name!r}") for name, entry in entries.items()}
    allowed = trust.opted_in(allow_pickle)  # decided once for every file below
    data = trust.read(pickled, allowed, "it is a pickled custom PythonModel (cloudpickle)")
    trust.check_files([f for a in artifacts.values() for f in ([a] if a.is_file() else sorted(a.rglob("*")))
                       if f.is_file()], allowed, "it is an artifact the custom model's own code reads")
    if conf.get("code"):
        sys.path.insert(0, str(trust.code_path(model_dir, conf["code"], allowed)))
    import pickle

    python_model = pickle.loads(data)  # noqa: S301 - the bytes the gate passed
    context = PythonModelContext({name: str(path) for name, path in artifacts.items()}, conf.get("model_config"))
    python_model.load_context(context)
    return _PythonModelWrapper(python_model, context)


def save_model(path: str | os.PathLike[str], python_model: PythonModel, artifacts: dict[str, str] | None = None,
               code_paths: list[str] | None = None, signature: ModelSignature | None = None,
               input_example: Any = None, pip_requirements: list[str] | None = None,
               model_config: dict[str, Any] | None = None) -> Model:
    """Save a custom PythonModel in MLflow's ``mlflow.pyfunc.model`` format.

    The pickle, code and artifact files it writes are recorded as trusted
    (``trust.record``): the model loads again in this repository on this
    machine without the opt-in.
    """
    import cloudpickle

    with new_model_dir(path) as out:
        pickled = cloudpickle.dumps(python_model)
        (out / "python_model.pkl").write_bytes(pickled)
        saved_artifacts = {}
        if artifacts:
            (out / "artifacts").mkdir()
            for name, src in artifacts.items():
                dest = out / "artifacts" / Path(src).name
                (shutil.copytree if Path(src).is_dir() else shutil.copy2)(src, dest)
                saved_artifacts[name] = {"path": f"artifacts/{Path(src).name}", "uri": str(src)}
        code = _copy_code(out, code_paths)
        meta = Model()
        pyfunc_conf: dict[str, Any] = {
            "loader_module": "mlflow.pyfunc.model",
            "python_model": "python_model.pkl",
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "python_version": __import__("gitml.models.mlmodel", fromlist=["x"]).python_version(),
            "streamable": False,
        }
        if code:
            pyfunc_conf["code"] = code
        if saved_artifacts:
            pyfunc_conf["artifacts"] = saved_artifacts
        if model_config:
            pyfunc_conf["model_config"] = model_config
        meta.add_flavor(PYFUNC, **pyfunc_conf)
        _finish(out, meta, signature, input_example, None,
                pip_requirements or ["mlflow", "cloudpickle", "numpy", "pandas"])
        written = [(trust.PICKLE, pickled)]
        for role, sub in ((trust.CODE, "code"), (trust.ARTIFACT, "artifacts")):
            written += [(role, f.read_bytes()) for f in sorted((out / sub).rglob("*")) if f.is_file()]
        trust.record(written)
    return meta


@contextlib.contextmanager
def new_model_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The directory a flavor's ``save_model`` writes into, undone if the save fails.

    Every flavor saves inside ``with new_model_dir(path) as out:``. If the
    block raises, a directory this call created is removed, and one that was
    there already (empty) is emptied again, so a retry into the same path
    works. Nothing that existed before the call is removed.

    Raises:
        InvalidValue: the path exists and is not an empty directory.
    """
    out = Path(path)
    existed = out.exists()
    if existed and (not out.is_dir() or any(out.iterdir())):
        raise InvalidValue(f"Path {str(out)!r} already exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    saved = False
    try:
        yield out
        saved = True
    finally:
        if not saved:
            _undo(out, existed)


def _undo(out: Path, existed: bool) -> None:
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _copy_code(out: Path, code_paths: list[str] | None) -> str | None:
    if not code_paths:
        return None
    (out / "code").mkdir()
    for src in code_paths:
        dest = out / "code" / Path(src).name
        (shutil.copytree if Path(src).is_dir() else shutil.copy2)(src, dest)
    return "code"


def _finish(out: Path, meta: Model, signature: ModelSignature | None, input_example: Any,
            predict: Any, packages: list[str]) -> None:
    """Signature (inferred from the example when not given), example, environment, MLmodel."""
    if signature is None and input_example is not None:
        output = None
        if predict is not None:
            try:
                output = predict(input_example)
            except Exception:  # noqa: BLE001 - an output schema is optional; MLflow also skips it
                output = None
        signature = signature_from_example(input_example, output)
    meta.signature = signature
    if input_example is not None:
        save_input_example(out, input_example, meta)
    write_environment(out, packages)
    meta.save(out)


def log_model(python_model: PythonModel, name: str = "model", artifacts: dict[str, str] | None = None,
              code_paths: list[str] | None = None, signature: ModelSignature | None = None,
              input_example: Any = None, registered_model_name: str | None = None,
              pip_requirements: list[str] | None = None, artifact_path: str | None = None, **_: Any) -> Any:
    """Save a PythonModel into the active run's artifacts under ``name``."""
    from gitml.models.uri import log_saved_model

    return log_saved_model(artifact_path or name, registered_model_name, lambda d: save_model(
        d, python_model, artifacts, code_paths, signature, input_example, pip_requirements))


def tempdir() -> str:
    return tempfile.mkdtemp(prefix="gitml-model-")
