"""LightGBM flavor in MLflow's format: Boosters as native ``model.lgb``; the
scikit-learn API estimators (LGBMClassifier...) through the sklearn flavor's
serialization (skops by default) in ``model.pkl``, as MLflow names it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gitml.models import boosting, trust
from gitml.models.mlmodel import Model, installed_version
from gitml.models.saving import SaveOptions, check_kwargs

FLAVOR = "lightgbm"


def save_model(lgb_model: Any, path: str | os.PathLike[str], serialization_format: str = "skops",
               signature: Any = None, input_example: Any = None, pip_requirements: list[str] | str | None = None,
               *, conda_env: Any = None, code_paths: list[str] | None = None,
               extra_pip_requirements: list[str] | str | None = None, metadata: dict[str, Any] | None = None,
               skops_trusted_types: list[str] | None = None, **kwargs: Any) -> Model:
    """Save a Booster (``model.lgb``) or a scikit-learn-API estimator (sklearn serialization, ``model.pkl``).

    Raises:
        InvalidValue: an argument gitml does not take, or the path is not empty.
    """
    import lightgbm as lgb

    check_kwargs(kwargs, "lightgbm.save_model")
    options = SaveOptions.of(code_paths, conda_env, pip_requirements, extra_pip_requirements, metadata)
    booster = isinstance(lgb_model, lgb.Booster)
    if booster:
        filename, write, conf = "model.lgb", (lambda p: lgb_model.save_model(str(p))), {}
    else:
        from gitml.models.sklearn import dump

        filename = "model.pkl"
        trusted: list[str] | None = []

        def write(p: Path) -> None:
            trusted[:] = dump(lgb_model, p, serialization_format, skops_trusted_types) or []  # type: ignore[index]

        conf = {"serialization_format": serialization_format, "skops_trusted_types": trusted}
    meta = boosting.save_native(
        path, FLAVOR, "mlflow.lightgbm", lgb_model, filename, write,
        {"lgb_version": installed_version("lightgbm"), **conf},
        signature, input_example, ["lightgbm", "numpy", "pandas", "scikit-learn"],
        lgb_model.predict, options,
    )
    if not booster and not conf["skops_trusted_types"]:
        meta.flavors[FLAVOR]["skops_trusted_types"] = None
        meta.save(Path(path))
    return meta


def log_model(lgb_model: Any, name: str | None = None, signature: Any = None, input_example: Any = None,
              registered_model_name: str | None = None, artifact_path: str | None = None, *,
              params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
              model_type: str | None = None, **kwargs: Any) -> Any:
    """Save ``lgb_model`` into the active run's artifacts under ``name`` (MLflow's ``log_model``)."""
    from gitml.models.uri import log_saved_model

    return log_saved_model(name or artifact_path or "model", registered_model_name,
                           lambda d: save_model(lgb_model, d, signature=signature, input_example=input_example,
                                                **kwargs),
                           params=params, tags=tags, model_type=model_type)


def _load(path: Path, conf: dict[str, Any], trusted_types: list[str] | None = None,
          allow_pickle: bool | None = None) -> Any:
    model_class = conf.get("model_class", "lightgbm.basic.Booster")
    boosting.import_class(model_class, "lightgbm")  # refuse foreign classes early
    if model_class == "lightgbm.basic.Booster":
        import lightgbm as lgb

        return lgb.Booster(model_file=str(trust.inside(path, conf.get("data"), "data")))
    from gitml.models.sklearn import LIGHTGBM_TRUSTED
    from gitml.models.sklearn import _load as load_sklearn

    sk_conf = {"pickled_model": conf["data"], "serialization_format": conf.get("serialization_format", "cloudpickle")}
    return load_sklearn(path, sk_conf, trusted_types, LIGHTGBM_TRUSTED, allow_pickle)


def load_model(model_uri: str, dst_path: str | None = None, skops_trusted_types: list[str] | None = None,
               allow_pickle: bool | None = None) -> Any:
    """A LightGBM Booster or scikit-learn-API estimator; pickled estimators go through the trust gate
    (``allow_pickle``, as ``gitml.sklearn.load_model``).

    Raises:
        InvalidValue (no lightgbm flavor, a foreign model class), UntrustedModel.
    """
    path, conf = boosting.flavor_conf(model_uri, FLAVOR, dst_path, allow_pickle)
    return _load(path, conf, skops_trusted_types, allow_pickle)


def _load_pyfunc(data_path: str, meta: Model | None = None, model_dir: Path | None = None,
                 allow_pickle: bool | None = None) -> Any:
    model_dir = model_dir or Path(data_path).parent
    conf = (meta.flavors.get(FLAVOR) if meta else None) or {"data": Path(data_path).name}
    return boosting.Wrapper(_load(model_dir, conf, allow_pickle=allow_pickle))
