"""scikit-learn flavor: save, log and load sklearn models in MLflow's format.

Serialization is skops by default: a skops file is loaded without running
arbitrary code, rebuilding only classes defined in scikit-learn (or the
flavor's own library) and the types skops trusts itself; any other type or
function must be named by the caller (``skops_trusted_types``) or the load
opted in. Pickle (cloudpickle) is used only when asked for
(``serialization_format="cloudpickle"``); loading it goes through
``gitml.models.trust``'s gate. The MLmodel file records which one was used.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models import trust
from gitml.models.mlmodel import PYFUNC, Model, installed_version, python_version
from gitml.models.pyfunc import _finish, new_model_dir

FLAVOR = "sklearn"
SKOPS = "skops"
CLOUDPICKLE = "cloudpickle"
PICKLE = "pickle"
FORMATS = (SKOPS, CLOUDPICKLE, PICKLE)
_FILES = {SKOPS: "model.skops", CLOUDPICKLE: "model.pkl", PICKLE: "model.pkl"}


def save_model(sk_model: Any, path: str | os.PathLike[str], serialization_format: str = SKOPS,
               signature: Any = None, input_example: Any = None,
               pip_requirements: list[str] | None = None, skops_trusted_types: list[str] | None = None,
               pyfunc_predict_fn: str = "predict", **_: Any) -> Model:
    """Write ``sk_model`` as an MLflow-format model directory at ``path``.

    Raises:
        InvalidValue: unknown serialization format, or the path is not empty.
    """
    if serialization_format not in FORMATS:
        raise InvalidValue(f"Unknown serialization_format {serialization_format!r}; use one of {', '.join(FORMATS)}")
    with new_model_dir(path) as out:
        filename = _FILES[serialization_format]
        trusted = dump(sk_model, out / filename, serialization_format, skops_trusted_types)
        meta = Model()
        meta.add_flavor(PYFUNC, loader_module="mlflow.sklearn", model_path=filename, predict_fn=pyfunc_predict_fn,
                        env={"conda": "conda.yaml", "virtualenv": "python_env.yaml"}, python_version=python_version())
        flavor: dict[str, Any] = {"pickled_model": filename, "serialization_format": serialization_format,
                                  "sklearn_version": installed_version("scikit-learn"), "code": None}
        if serialization_format == SKOPS:
            flavor["skops_trusted_types"] = trusted
        meta.add_flavor(FLAVOR, **flavor)
        packages = pip_requirements or ["scikit-learn", "numpy", "scipy", "pandas",
                                        *(["skops"] if serialization_format == SKOPS else ["cloudpickle"])]
        _finish(out, meta, signature, input_example, sk_model.predict if hasattr(sk_model, "predict") else None,
                packages)
    return meta


def dump(model: Any, file: Path, serialization_format: str, trusted_types: list[str] | None = None) -> list[str] | None:
    """Serialize a scikit-learn-API model; for skops, return the non-default types it holds.

    A pickle this writes is recorded as trusted (``trust.record``): it loads
    again in this repository on this machine without the opt-in.
    """
    if serialization_format not in FORMATS:
        raise InvalidValue(f"Unknown serialization_format {serialization_format!r}; use one of {', '.join(FORMATS)}")
    if serialization_format == SKOPS:
        import skops.io as sio

        data = sio.dumps(model)
        file.write_bytes(data)
        return sorted(set(sio.get_untrusted_types(data=data)) | set(trusted_types or [])) or None
    import pickle

    import cloudpickle

    data = (cloudpickle if serialization_format == CLOUDPICKLE else pickle).dumps(model)
    file.write_bytes(data)
    trust.record([(trust.PICKLE, data)])
    return None


def log_model(sk_model: Any, name: str = "model", serialization_format: str = SKOPS, signature: Any = None,
              input_example: Any = None, registered_model_name: str | None = None,
              pip_requirements: list[str] | None = None, artifact_path: str | None = None, **kwargs: Any) -> Any:
    """Save ``sk_model`` into the active run's artifacts under ``name`` (MLflow's ``log_model``)."""
    from gitml.models.uri import log_saved_model

    return log_saved_model(artifact_path or name, registered_model_name, lambda d: save_model(
        sk_model, d, serialization_format, signature, input_example, pip_requirements, **kwargs))


# Types a skops file may rebuild without being named by the caller, besides those skops
# trusts itself: classes defined in the flavor's library (never functions, which
# skops can call with arguments from the file, and never a class another library
# defines and scikit-learn re-exports). The list in the MLmodel file is not
# trusted on its own: whoever wrote the model wrote that list too.
LIBRARIES = ("sklearn",)
SAFE_TYPES = frozenset({"collections.OrderedDict", "collections.defaultdict"})


def safe_type(name: str, libraries: tuple[str, ...] = LIBRARIES) -> bool:
    """True if skops type ``name`` is a class defined in one of ``libraries`` (or in ``SAFE_TYPES``)."""
    import importlib

    if name in SAFE_TYPES:
        return True
    module, _, attr = name.rpartition(".")
    if not module or module.split(".")[0] not in libraries:
        return False
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and str(getattr(obj, "__module__", "")).split(".")[0] in libraries


def _load(path: Path, conf: dict[str, Any], trusted_types: list[str] | None = None,
          libraries: tuple[str, ...] = LIBRARIES, allow_pickle: bool | None = None) -> Any:
    fmt = conf.get("serialization_format", CLOUDPICKLE)
    file = trust.inside(path, conf.get("pickled_model", _FILES.get(fmt, "model.pkl")), "pickled_model")
    if fmt == SKOPS:
        import skops.io as sio

        try:
            data = file.read_bytes()  # read once: the types checked are the types loaded
        except OSError as e:
            raise InvalidValue(f"Cannot read model file {file}: {e.strerror}") from e
        found = sio.get_untrusted_types(data=data)
        allowed = set(trusted_types or [])
        untrusted = sorted(t for t in found if t not in allowed and not safe_type(t, libraries))
        if untrusted:
            what = " and ".join(["scikit-learn", *(lib for lib in libraries if lib != "sklearn")])
            trust.gate(file, data, allow_pickle, f"it would rebuild types that are not classes of {what}: "
                       f"{untrusted}", role=None, alternative=f"pass skops_trusted_types={untrusted!r}")
        return sio.loads(data, trusted=found)
    if fmt in (CLOUDPICKLE, PICKLE):
        return trust.unpickle(file, allow_pickle, f"it is a {fmt} file (serialization_format={fmt!r})")
    raise InvalidValue(f"Model at {path} uses unknown serialization format {fmt!r}")


def load_model(model_uri: str, dst_path: str | None = None, skops_trusted_types: list[str] | None = None,
               allow_pickle: bool | None = None) -> Any:
    """The scikit-learn estimator of a model (``runs:/...`` or a path).

    A pickle-format model runs code when loaded: it loads if this machine
    saved it in this repository, or with ``allow_pickle=True`` (default: the
    ``GITML_ALLOW_PICKLE`` setting). A skops model holding types beyond
    scikit-learn's classes needs them named in ``skops_trusted_types``, or
    the same opt-in.

    Raises:
        InvalidValue (no sklearn flavor), UntrustedModel.
    """
    from gitml.models.uri import local_model_path

    path = local_model_path(model_uri, dst_path)
    meta = Model.load(path)
    conf = meta.flavors.get(FLAVOR)
    if conf is None:
        raise InvalidValue(f"Model at {model_uri!r} has no sklearn flavor (flavors: {', '.join(meta.flavors)})")
    return _load(path, conf, skops_trusted_types, allow_pickle=allow_pickle)


class _SklearnPyfunc:
    def __init__(self, model: Any, predict_fn: str) -> None:
        self.sklearn_model = model
        self._predict = getattr(model, predict_fn)
        names = getattr(model, "feature_names_in_", None)
        self._columns = [str(n) for n in names] if names is not None else None

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        # A numeric DataFrame whose columns are exactly the fitted feature names, in
        # order, is what scikit-learn turns into this same array after checking the
        # names; handing it the array skips ~0.8 ms of checks on a small batch.
        if self._columns is not None and _numeric_in_order(data, self._columns):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                return self._predict(data.to_numpy())
        return self._predict(data)


def _numeric_in_order(data: Any, columns: list[str]) -> bool:
    import pandas as pd

    if not isinstance(data, pd.DataFrame) or list(data.columns) != columns:
        return False
    kinds = {dt.kind for dt in data.dtypes}
    return len(kinds) == 1 and kinds <= {"f", "i", "u"}


def _load_pyfunc(data_path: str, meta: Model | None = None, model_dir: Path | None = None,
                 allow_pickle: bool | None = None) -> Any:
    model_dir = model_dir or Path(data_path).parent
    conf = (meta.flavors.get(FLAVOR) if meta else None) or {"pickled_model": Path(data_path).name}
    predict_fn = (meta.flavors.get(PYFUNC, {}).get("predict_fn") if meta else None) or "predict"
    return _SklearnPyfunc(_load(model_dir, conf, allow_pickle=allow_pickle), predict_fn)
