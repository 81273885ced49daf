"""The generic model interface: load any model directory and call ``predict``.

``load_model(uri)`` reads the MLmodel file, imports the flavor named by
``python_function.loader_module`` and wraps what it returns in a
``PyFuncModel`` whose ``predict`` enforces the signature first. MLflow's
loader modules (``mlflow.sklearn``, ``mlflow.pytorch``, ``mlflow.pyfunc.model``...) map to
gitml's own implementations, so MLflow-written models load without MLflow.

Custom models (``PythonModel``) are saved as MLflow's ``mlflow.pyfunc.model``
flavor: the instance pickled with cloudpickle, ``artifacts`` copied under
``artifacts/`` (local paths, ``runs:/`` and ``models:/`` URIs), ``code_paths``
under ``code/``. MLflow loads them (with gitml installed, to unpickle the
class), and gitml loads custom models MLflow saved (with mlflow installed).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gitml.errors import InvalidValue
from gitml.models import trust
from gitml.models.environment import python_version
from gitml.models.mlmodel import PYFUNC, Model
from gitml.models.saving import SaveOptions, check_kwargs, finish, new_model_dir
from gitml.models.signature import ModelSignature, enforce_schema

__all__ = ["PyFuncModel", "PythonModel", "PythonModelContext", "get_model_dependencies", "load_model",
           "load_pyfunc", "log_model", "save_model"]

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
# The python_function key MLflow keeps a custom model's model_config under (gitml wrote
# "model_config" before, which MLflow does not read; both are read).
MODEL_CONFIG = "config"


def _saved_config(conf: dict[str, Any]) -> dict[str, Any]:
    saved = conf.get(MODEL_CONFIG) or conf.get("model_config") or {}
    return dict(saved) if isinstance(saved, dict) else {}


# Loaders that put their flavor's ``code`` on sys.path themselves.
_OWN_CODE = ("gitml.models.pyfunc", "gitml.models.pytorch")


class PythonModel:
    """Base class for custom models, as in MLflow: override ``predict``, optionally ``load_context``."""

    def load_context(self, context: PythonModelContext) -> None:
        """Called once at load time; ``context.artifacts`` maps names to local paths."""

    def predict(self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    @property
    def predict_type_hints(self) -> Any:
        """What MLflow's pyfunc wrapper reads when it loads this model: gitml declares no input
        type hints (``input``/``output`` None), so MLflow passes the input through unchanged."""
        return SimpleNamespace(input=None, output=None)


class _FunctionPythonModel(PythonModel):
    """A plain function given as ``python_model`` (MLflow 3 accepts one): ``predict`` calls it."""

    def __init__(self, func: Any) -> None:
        self.func = func

    def predict(self, context: PythonModelContext, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        return self.func(model_input)


class PythonModelContext:
    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None) -> None:
        self.artifacts = artifacts
        self.model_config = model_config or {}


_ARRAY_DTYPES = {"double": "float64", "long": "int64"}


def _array_lane(impl: Any, signature: ModelSignature | None) -> tuple[list[str], str] | None:
    columns = getattr(impl, "array_columns", None)
    if not columns or signature is None or signature.inputs is None or signature.inputs.is_tensor:
        return None
    specs = signature.inputs.specs
    types = {s["type"] for s in specs}
    if [s["name"] for s in specs] != columns or len(types) != 1:
        return None
    dtype = _ARRAY_DTYPES.get(types.pop())
    return (list(columns), dtype) if dtype else None


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

    @property
    def array_lane(self) -> tuple[list[str], str] | None:
        """(columns, numpy dtype) of a numeric table this model can take as one array.

        Set when the flavor predicts from an array of exactly these columns
        (``array_columns``/``predict_array``) and the signature asks for
        those columns, in that order, each of one type: a table of exactly
        that shape and dtype already fits the signature, so
        ``predict_array`` gives what ``predict`` gives, without building a
        DataFrame and checking it (the scoring server's fast path).
        """
        if not hasattr(self, "_array_lane"):
            self._array_lane = _array_lane(self._impl, self.metadata.signature)
        return self._array_lane

    def predict_array(self, values: Any) -> Any:
        """``predict`` of the numeric table ``values`` whose shape and dtype ``array_lane`` names."""
        return self._impl.predict_array(values)

    @property
    def model_config(self) -> dict[str, Any]:
        context = getattr(self._impl, "context", None)
        if context is not None:
            return dict(getattr(context, "model_config", None) or {})
        return _saved_config(self.metadata.flavors.get(PYFUNC, {}))

    def unwrap_python_model(self) -> Any:
        return getattr(self._impl, "python_model", self._impl)

    def get_raw_model(self) -> Any:
        """The flavor's own model object (the estimator, booster, module or PythonModel)."""
        for attr in ("python_model", "sklearn_model", "model", "pytorch_model"):
            if hasattr(self._impl, attr):
                return getattr(self._impl, attr)
        return self._impl

    def __repr__(self) -> str:
        return f"PyFuncModel(flavor={self.metadata.flavors[PYFUNC].get('loader_module')}, path={str(self._path)!r})"


def load_model(model_uri: str | os.PathLike[str], suppress_warnings: bool = False, dst_path: str | None = None,
               model_config: dict[str, Any] | None = None, allow_pickle: bool | None = None) -> PyFuncModel:
    """Load a model by URI (``runs:/<id>/<path>``, ``models:/...``, a local path) as a PyFuncModel.

    A model whose files run code when loaded (pickles, a custom model's code
    and artifacts) loads only if gitml wrote those files on this machine in
    this repository, or with ``allow_pickle=True`` (default: the
    ``GITML_ALLOW_PICKLE`` setting); see ``gitml.models.trust``. The
    ``loader_module`` an MLmodel names is looked up in ``LOADERS``, never
    imported as given. ``model_config`` updates a custom model's saved
    ``model_config`` (what ``context.model_config`` holds in ``load_context``).

    Raises:
        ModelNotFound, InvalidValue (no python_function flavor / unknown loader), UntrustedModel.
    """
    from gitml.models.uri import local_model_path

    path = local_model_path(model_uri, dst_path)
    meta = Model.load(path)
    conf = meta.flavors.get(PYFUNC)
    if conf is None:
        raise InvalidValue(f"Model at {str(model_uri)!r} has no python_function flavor; load it with its own flavor")
    loader = conf.get("loader_module")
    target = LOADERS.get(loader) if isinstance(loader, str) else None  # MLmodel is data: not always text
    if target is None:
        raise InvalidValue(f"Model at {str(model_uri)!r} needs loader module {loader!r}, which gitml does not provide")
    if model_config:
        if not isinstance(model_config, dict):
            raise InvalidValue(f"model_config must be a mapping, not {type(model_config).__name__}")
        conf[MODEL_CONFIG] = {**_saved_config(conf), **model_config}
    if target not in _OWN_CODE:
        add_code_to_path(path, conf, allow_pickle)
    sub = conf.get("model_path") or conf.get("data")  # MLflow flavors use either key
    data = path / sub if sub else path
    impl = importlib.import_module(target)._load_pyfunc(str(data), meta, path, allow_pickle)
    return PyFuncModel(meta, impl, path)


def load_pyfunc(model_uri: str | os.PathLike[str], suppress_warnings: bool = False) -> PyFuncModel:
    """MLflow's older name for ``load_model``."""
    return load_model(model_uri, suppress_warnings)


def add_code_to_path(model_dir: Path, conf: dict[str, Any], allow_pickle: bool | None) -> None:
    """Put a flavor's ``code`` directory on ``sys.path``, as MLflow does, through the trust gate.

    Raises:
        UntrustedModel: code this machine did not record, without the opt-in.
    """
    if conf.get("code"):
        path = str(trust.code_path(model_dir, conf["code"], allow_pickle))
        if path not in sys.path:
            sys.path.insert(0, path)


def get_model_dependencies(model_uri: str | os.PathLike[str], format: str = "pip") -> str:  # noqa: A002 - MLflow's name
    """The local path of a model's ``requirements.txt`` (``format="pip"``) or ``conda.yaml`` (``"conda"``).

    Raises:
        InvalidValue: another format; ModelNotFound.
    """
    from gitml.models.uri import local_model_path

    names = {"pip": "requirements.txt", "conda": "conda.yaml"}
    if format not in names:
        raise InvalidValue(f"Unknown dependency format {format!r}; use 'pip' or 'conda'")
    file = local_model_path(model_uri) / names[format]
    if not file.is_file():
        raise InvalidValue(f"Model at {str(model_uri)!r} has no {names[format]}")
    return str(file)


# -- custom PythonModel flavor (mlflow.pyfunc.model) --------------------------------------------------


class _PythonModelWrapper:
    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
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
    own code reads them, and may unpickle them, in ``load_context``). A
    model MLflow saved is never in that record: it needs the opt-in, and
    mlflow installed (its pickle names ``mlflow.pyfunc.PythonModel``).
    """
    model_dir = model_dir or Path(data_path)
    conf = meta.flavors.get(PYFUNC, {}) if meta else {}
    if conf.get("model_code_path"):
        raise InvalidValue(f"The model in {model_dir} is an MLflow models-from-code model "
                           f"({conf['model_code_path']}); gitml loads pickled PythonModels only")
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
    add_code_to_path(model_dir, conf, allowed)
    import pickle

    if conf.get("compression"):
        raise InvalidValue(f"The model in {model_dir} is compressed ({conf['compression']!r}); gitml reads "
                           "uncompressed python_model.pkl files only")
    python_model = pickle.loads(data)  # noqa: S301 - the bytes the gate passed
    context = PythonModelContext({name: str(path) for name, path in artifacts.items()}, _saved_config(conf))
    python_model.load_context(context)
    return _PythonModelWrapper(python_model, context)


def save_model(path: str | os.PathLike[str], python_model: Any = None, artifacts: dict[str, str] | None = None,
               code_paths: list[str] | None = None, signature: ModelSignature | None = None,
               input_example: Any = None, pip_requirements: list[str] | str | None = None,
               model_config: dict[str, Any] | None = None, *, conda_env: Any = None,
               extra_pip_requirements: list[str] | str | None = None, metadata: dict[str, Any] | None = None,
               **kwargs: Any) -> Model:
    """Save a custom PythonModel in MLflow's ``mlflow.pyfunc.model`` format.

    ``python_model`` is a ``PythonModel`` (or a plain function of the input,
    as MLflow 3 accepts). ``artifacts`` maps names to local paths, ``runs:/``
    or ``models:/`` URIs: each is copied (downloaded and verified) into
    ``artifacts/``, and ``context.artifacts[name]`` gives its local path at
    load time. The pickle, code and artifact files it writes are recorded as
    trusted (``trust.record``): the model loads again in this repository on
    this machine without the opt-in.

    Raises:
        InvalidValue: no python_model, an argument gitml does not take, an
            artifact URI it cannot resolve, or the path is not empty.
    """
    import cloudpickle

    check_kwargs(kwargs, "pyfunc.save_model")
    if python_model is None or isinstance(python_model, (str, os.PathLike)):
        raise InvalidValue("pyfunc.save_model needs python_model=<a PythonModel instance or a function>; "
                           "gitml does not take models-from-code paths or loader_module/data_path")
    if not isinstance(python_model, PythonModel) and not hasattr(python_model, "load_context"):
        if not callable(python_model):
            raise InvalidValue(f"python_model must be a PythonModel or a function, not "
                               f"{type(python_model).__name__}")
        python_model = _FunctionPythonModel(python_model)
    options = SaveOptions.of(code_paths, conda_env, pip_requirements, extra_pip_requirements, metadata)
    with new_model_dir(path) as out:
        pickled = cloudpickle.dumps(python_model)
        (out / "python_model.pkl").write_bytes(pickled)
        saved_artifacts = _save_artifacts(out, artifacts or {})
        meta = Model()
        pyfunc_conf: dict[str, Any] = {
            "loader_module": "mlflow.pyfunc.model",
            "python_model": "python_model.pkl",
            "cloudpickle_version": cloudpickle.__version__,
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "python_version": python_version(),
            "streamable": False,
        }
        if saved_artifacts:
            pyfunc_conf["artifacts"] = saved_artifacts
        if model_config:
            pyfunc_conf[MODEL_CONFIG] = model_config
        meta.add_flavor(PYFUNC, **pyfunc_conf)
        # MLflow's defaults for a custom model (mlflow.pyfunc.get_default_pip_requirements)
        finish(out, meta, signature, input_example, None, ["mlflow", "cloudpickle"], options)
        written = [(trust.PICKLE, pickled)]
        written += [(trust.ARTIFACT, f.read_bytes()) for f in sorted((out / "artifacts").rglob("*")) if f.is_file()]
        trust.record(written)
    return meta


def _save_artifacts(out: Path, artifacts: dict[str, str]) -> dict[str, dict[str, str]]:
    """Copy each artifact (a local path or a URI gitml resolves) into ``out/artifacts``.

    Each lands at ``artifacts/<its file or directory name>`` as in MLflow; a
    second one with the same name goes to ``artifacts/<artifact name>/<name>``.
    One URI named twice is fetched once.

    Raises:
        InvalidValue: an artifact that is not a path or URI gitml can resolve.
    """
    from gitml.models.uri import fetch_artifact

    if not isinstance(artifacts, dict):
        raise InvalidValue(f"artifacts must map names to paths or URIs, not {type(artifacts).__name__}")
    if not artifacts:
        return {}
    (out / "artifacts").mkdir()
    saved: dict[str, dict[str, str]] = {}
    fetched: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="gitml-artifacts-") as tmp:
        for name, uri in artifacts.items():
            uri = os.fspath(uri)
            if uri in fetched:
                saved[name] = {"path": fetched[uri], "uri": uri}
                continue
            source = fetch_artifact(uri, Path(tmp) / str(len(fetched)))
            relative = f"artifacts/{source.name}"
            if (out / relative).exists():
                relative = f"artifacts/{name}/{source.name}"
                (out / "artifacts" / name).mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, out / relative)
            fetched[uri] = relative
            saved[name] = {"path": relative, "uri": uri}
    return saved


def log_model(artifact_path: Any = None, python_model: Any = None, artifacts: dict[str, str] | None = None,
              code_paths: list[str] | None = None, signature: ModelSignature | None = None,
              input_example: Any = None, registered_model_name: str | None = None,
              pip_requirements: list[str] | str | None = None, model_config: dict[str, Any] | None = None, *,
              name: str | None = None, conda_env: Any = None, extra_pip_requirements: list[str] | str | None = None,
              metadata: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None, model_type: str | None = None, **kwargs: Any) -> Any:
    """Save a PythonModel into the active run's artifacts under ``name`` (MLflow's ``pyfunc.log_model``).

    Takes MLflow's forms: ``log_model(name="m", python_model=M())``,
    ``log_model("m", python_model=M())``, and gitml's ``log_model(M(), name="m")``.
    """
    from gitml.models.uri import log_saved_model

    if python_model is None and artifact_path is not None and not isinstance(artifact_path, (str, os.PathLike)):
        python_model, artifact_path = artifact_path, None  # gitml's positional form: log_model(model, ...)
    return log_saved_model(
        os.fspath(name or artifact_path or "model"), registered_model_name,
        lambda d: save_model(d, python_model, artifacts, code_paths, signature, input_example, pip_requirements,
                             model_config, conda_env=conda_env, extra_pip_requirements=extra_pip_requirements,
                             metadata=metadata, **kwargs),
        params=params, tags=tags, model_type=model_type)
