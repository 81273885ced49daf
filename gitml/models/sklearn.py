"""scikit-learn flavor: save, log and load sklearn models in MLflow's format.

Serialization is skops by default. A skops file rebuilds only the types
skops trusts itself, as in MLflow 3.17; any other type (a forest's
``sklearn.tree._tree.Tree``, a function) loads only if the caller names it
(``skops_trusted_types``), the file is one this machine saved in this
repository (``gitml.models.trust``'s record), or the load is opted in. The
list of types an MLmodel file carries is not trusted on its own: whoever
wrote the model wrote that list too. Pickle (cloudpickle) is used only when
asked for (``serialization_format="cloudpickle"``); loading it goes through
the same gate. The MLmodel file records which format was used.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models import trust
from gitml.models.mlmodel import PYFUNC, Model, installed_version, python_version
from gitml.models.pyfunc import add_code_to_path
from gitml.models.saving import SaveOptions, check_kwargs, finish, new_model_dir

FLAVOR = "sklearn"
SKOPS = "skops"
CLOUDPICKLE = "cloudpickle"
PICKLE = "pickle"
FORMATS = (SKOPS, CLOUDPICKLE, PICKLE)
_FILES = {SKOPS: "model.skops", CLOUDPICKLE: "model.pkl", PICKLE: "model.pkl"}


def save_model(sk_model: Any, path: str | os.PathLike[str], serialization_format: str = SKOPS,
               signature: Any = None, input_example: Any = None,
               pip_requirements: list[str] | str | None = None, skops_trusted_types: list[str] | None = None,
               pyfunc_predict_fn: str = "predict", *, conda_env: Any = None, code_paths: list[str] | None = None,
               extra_pip_requirements: list[str] | str | None = None, metadata: dict[str, Any] | None = None,
               **kwargs: Any) -> Model:
    """Write ``sk_model`` as an MLflow-format model directory at ``path``.

    Takes MLflow's ``code_paths``, ``conda_env``, ``pip_requirements``,
    ``extra_pip_requirements`` and ``metadata`` (see ``gitml.models.saving``).
    A skops file holding types beyond skops' defaults lists them in the
    MLmodel (so MLflow loads it) and is recorded as written here.

    Raises:
        InvalidValue: unknown serialization format, an argument gitml does not
            take, or the path is not empty.
    """
    check_kwargs(kwargs, "sklearn.save_model")
    if serialization_format not in FORMATS:
        raise InvalidValue(f"Unknown serialization_format {serialization_format!r}; use one of {', '.join(FORMATS)}")
    options = SaveOptions.of(code_paths, conda_env, pip_requirements, extra_pip_requirements, metadata)
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
        packages = ["scikit-learn", "numpy", "scipy", "pandas",
                    *(["skops"] if serialization_format == SKOPS else ["cloudpickle"])]
        finish(out, meta, signature, input_example, sk_model.predict if hasattr(sk_model, "predict") else None,
               packages, options)
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
        found = sio.get_untrusted_types(data=data)
        if found:  # loads here without being named; elsewhere it needs skops_trusted_types or the opt-in
            trust.record([(trust.SKOPS, data)])
        return sorted(set(found) | set(trusted_types or [])) or None
    import pickle

    import cloudpickle

    data = (cloudpickle if serialization_format == CLOUDPICKLE else pickle).dumps(model)
    file.write_bytes(data)
    trust.record([(trust.PICKLE, data)])
    return None


def log_model(sk_model: Any, name: str | None = None, serialization_format: str = SKOPS, signature: Any = None,
              input_example: Any = None, registered_model_name: str | None = None,
              pip_requirements: list[str] | str | None = None, artifact_path: str | None = None, *,
              params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
              model_type: str | None = None, **kwargs: Any) -> Any:
    """Save ``sk_model`` into the active run's artifacts under ``name`` (MLflow's ``log_model``)."""
    from gitml.models.uri import log_saved_model

    return log_saved_model(name or artifact_path or "model", registered_model_name, lambda d: save_model(
        sk_model, d, serialization_format, signature, input_example, pip_requirements, **kwargs),
        params=params, tags=tags, model_type=model_type)


# The types a skops file may rebuild without being named, besides those skops trusts
# itself: MLflow 3.17's defaults. For scikit-learn models that is nothing more (MLflow
# refuses to save a forest in skops without skops_trusted_types); for LightGBM's
# scikit-learn estimators, MLflow's _LIGHTGBM_SKLEARN_SKOPS_TRUSTED_TYPES.
DEFAULT_TRUSTED: frozenset[str] = frozenset()
LIGHTGBM_TRUSTED = frozenset({"collections.OrderedDict", "lightgbm.basic.Booster",
                              "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor"})


def _skops_reasons(types: list[str]) -> str:
    """skops' own warning for the types it documents as unsafe (tree node arrays), in one line."""
    try:
        from skops.io.exceptions import UNTRUSTED_TYPE_REASONS
    except ImportError:  # an older skops without the notes
        return ""
    notes = [UNTRUSTED_TYPE_REASONS[t].split(". If you created")[0] for t in types if t in UNTRUSTED_TYPE_REASONS]
    return f" (skops: {'; '.join(notes)})" if notes else ""


def _load(path: Path, conf: dict[str, Any], trusted_types: list[str] | None = None,
          default_trusted: frozenset[str] = DEFAULT_TRUSTED, allow_pickle: bool | None = None) -> Any:
    fmt = conf.get("serialization_format", CLOUDPICKLE)
    file = trust.inside(path, conf.get("pickled_model", _FILES.get(fmt, "model.pkl")), "pickled_model")
    if fmt == SKOPS:
        import skops.io as sio

        try:
            data = file.read_bytes()  # read once: the types checked are the types loaded
        except OSError as e:
            raise InvalidValue(f"Cannot read model file {file}: {e.strerror}") from e
        found = sio.get_untrusted_types(data=data)
        untrusted = sorted(t for t in found if t not in set(trusted_types or []) | default_trusted)
        if untrusted:
            trust.gate(file, data, allow_pickle, f"it references types skops does not trust by default: "
                       f"{untrusted}{_skops_reasons(untrusted)}", role=trust.SKOPS,
                       alternative=f"pass skops_trusted_types={untrusted!r}")
        return sio.loads(data, trusted=found)
    if fmt in (CLOUDPICKLE, PICKLE):
        return trust.unpickle(file, allow_pickle, f"it is a {fmt} file (serialization_format={fmt!r})")
    raise InvalidValue(f"Model at {path} uses unknown serialization format {fmt!r}")


def load_model(model_uri: str, dst_path: str | None = None, skops_trusted_types: list[str] | None = None,
               allow_pickle: bool | None = None) -> Any:
    """The scikit-learn estimator of a model (``runs:/...`` or a path).

    A pickle-format model runs code when loaded: it loads if this machine
    saved it in this repository, or with ``allow_pickle=True`` (default: the
    ``GITML_ALLOW_PICKLE`` setting). A skops model holding types skops does
    not trust by default (a forest's trees, functions) loads the same way,
    or with those types named in ``skops_trusted_types``.

    Raises:
        InvalidValue (no sklearn flavor), UntrustedModel.
    """
    from gitml.models.uri import local_model_path

    path = local_model_path(model_uri, dst_path)
    meta = Model.load(path)
    conf = meta.flavors.get(FLAVOR)
    if conf is None:
        raise InvalidValue(f"Model at {model_uri!r} has no sklearn flavor (flavors: {', '.join(meta.flavors)})")
    add_code_to_path(path, conf, allow_pickle)
    return _load(path, conf, skops_trusted_types, allow_pickle=allow_pickle)


class _SklearnPyfunc:
    def __init__(self, model: Any, predict_fn: str) -> None:
        self.sklearn_model = model
        self._predict = getattr(model, predict_fn)
        names = getattr(model, "feature_names_in_", None) if _takes_arrays(model, predict_fn) else None
        self._columns = [str(n) for n in names] if names is not None else None

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        # A numeric DataFrame whose columns are exactly the fitted feature names, in
        # order, is what a plain scikit-learn estimator turns into this same array after
        # checking the names; handing it the array skips ~0.8 ms of checks on a small batch.
        if self._columns is not None and _numeric_in_order(data, self._columns):
            return self.predict_array(data.to_numpy())
        return self._predict(data)

    @property
    def array_columns(self) -> list[str] | None:
        """The columns, in order, whose values ``predict_array`` takes as one array (None: it takes none)."""
        return self._columns

    def predict_array(self, values: Any) -> Any:
        """Predict from the array of a numeric frame with exactly ``array_columns``."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return self._predict(values)


# Estimators that hand X on as it came (a pipeline's steps, a column transformer, a search
# over a pipeline, a FunctionTransformer's function...): they may select columns by name, so
# they get the DataFrame.
_PASSES_X_ON = ("steps", "transformers", "transformer_list", "estimator", "estimators", "base_estimator",
                "best_estimator_", "func", "inverse_func")
_ARRAY_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def _takes_arrays(model: Any, predict_fn: str) -> bool:
    """Whether ``model`` is one of scikit-learn's own estimators that turns a DataFrame into
    its array before anything else (so the array itself gives the same predictions)."""
    module = type(model).__module__
    if predict_fn not in _ARRAY_METHODS or not module.startswith("sklearn.") \
            or module.startswith(("sklearn.pipeline", "sklearn.compose")):
        return False
    return not any(hasattr(model, attr) for attr in _PASSES_X_ON)


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
