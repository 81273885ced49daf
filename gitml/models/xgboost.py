"""XGBoost flavor in MLflow's format: the native model file (UBJSON by default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gitml.models import boosting, trust
from gitml.models.mlmodel import Model, installed_version
from gitml.models.saving import SaveOptions, check_kwargs

FLAVOR = "xgboost"


def save_model(xgb_model: Any, path: str | os.PathLike[str], model_format: str = "ubj", signature: Any = None,
               input_example: Any = None, pip_requirements: list[str] | str | None = None, *,
               conda_env: Any = None, code_paths: list[str] | None = None,
               extra_pip_requirements: list[str] | str | None = None, metadata: dict[str, Any] | None = None,
               **kwargs: Any) -> Model:
    """Save a Booster or an XGBoost scikit-learn estimator with its own ``save_model``.

    Raises:
        InvalidValue: an argument gitml does not take, or the path is not empty.
    """
    check_kwargs(kwargs, "xgboost.save_model")
    options = SaveOptions.of(code_paths, conda_env, pip_requirements, extra_pip_requirements, metadata)
    return boosting.save_native(
        path, FLAVOR, "mlflow.xgboost", xgb_model, f"model.{model_format}",
        lambda p: xgb_model.save_model(str(p)),
        {"xgb_version": installed_version("xgboost"), "model_format": model_format},
        signature, input_example, ["xgboost", "numpy", "pandas", "scikit-learn"],
        _pyfunc_of(xgb_model).predict, options,
    )


def log_model(xgb_model: Any, name: str | None = None, signature: Any = None, input_example: Any = None,
              registered_model_name: str | None = None, artifact_path: str | None = None, *,
              params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
              model_type: str | None = None, **kwargs: Any) -> Any:
    """Save ``xgb_model`` into the active run's artifacts under ``name`` (MLflow's ``log_model``)."""
    from gitml.models.uri import log_saved_model

    return log_saved_model(name or artifact_path or "model", registered_model_name,
                           lambda d: save_model(xgb_model, d, signature=signature, input_example=input_example,
                                                **kwargs),
                           params=params, tags=tags, model_type=model_type)


def _load(path: Path, conf: dict[str, Any]) -> Any:
    cls = boosting.import_class(conf.get("model_class", "xgboost.core.Booster"), "xgboost")
    model = cls()
    model.load_model(str(trust.inside(path, conf.get("data"), "data")))
    return model


def load_model(model_uri: str, dst_path: str | None = None, allow_pickle: bool | None = None) -> Any:
    """The Booster or estimator (``allow_pickle`` only matters for a ``code`` directory: see trust)."""
    return _load(*boosting.flavor_conf(model_uri, FLAVOR, dst_path, allow_pickle))


def _pyfunc_of(model: Any) -> boosting.Wrapper:
    import xgboost as xgb

    return boosting.Wrapper(model, xgb.DMatrix if isinstance(model, xgb.Booster) else None)


def _load_pyfunc(data_path: str, meta: Model | None = None, model_dir: Path | None = None,
                 allow_pickle: bool | None = None) -> Any:
    """The pyfunc wrapper (``allow_pickle`` is unused: XGBoost's own format runs no code)."""
    model_dir = model_dir or Path(data_path).parent
    conf = (meta.flavors.get(FLAVOR) if meta else None) or {"data": Path(data_path).name}
    return _pyfunc_of(_load(model_dir, conf))
