"""``gitml.autolog()`` and ``gitml.<flavor>.autolog()``: MLflow's autologging, into this repository.

Autologging is MLflow's (it patches ``fit`` of scikit-learn, XGBoost,
LightGBM, PyTorch Lightning...); gitml points it at the repository through
the plugin and keeps the two active-run stacks in step:

- MLflow's tracking URI becomes ``gitml:<the repository gitml tracks into>``;
- a run started with ``gitml.start_run()`` is made MLflow's active run too
  (``mlflow.start_run(run_id=...)``, nested when gitml's is), so what
  autologging logs inside ``with gitml.start_run():`` lands in that run;
- ``gitml.end_run()`` (or leaving the ``with`` block) ends MLflow's too.

A ``fit`` outside any gitml run gets a run of its own from MLflow, in the
same repository. Needs the ``mlflow`` extra: without it the call is a
one-line ``GitmlError`` naming ``pip install 'gitml[mlflow]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

from gitml.errors import GitmlError
from gitml.tracking import uri
from gitml.tracking import fluent, runs


class MlflowMissing(GitmlError):
    """Autologging needs MLflow installed."""


def _mlflow() -> Any:
    try:
        return importlib.import_module("mlflow")
    except ImportError as e:
        raise MlflowMissing("gitml's autologging is MLflow's autologging: pip install 'gitml[mlflow]'") from e


class MlflowBridge:
    """Makes gitml's active runs MLflow's active runs (installed in ``fluent`` by ``enable``)."""

    def __init__(self, mlflow: Any) -> None:
        self.mlflow = mlflow

    def started(self, run_id: str, experiment_id: str, nested: bool) -> None:
        mlflow = self.mlflow
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            return
        mlflow.set_experiment(experiment_id=experiment_id)  # MLflow refuses a run of another active experiment
        mlflow.start_run(run_id=run_id, nested=nested or active is not None)

    def ending(self, run_id: str, status: str) -> None:
        active = self.mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            self.mlflow.end_run(status)


def enable(flavor: str | None, **kwargs: Any) -> Any:
    """Turn on MLflow's autologging (all libraries, or ``flavor``'s) into gitml's repository.

    Raises:
        MlflowMissing: MLflow is not installed.
        NotARepository: no repository to track into.
    """
    mlflow = _mlflow()
    repo = runs.open_repo()
    target = uri.tracking_uri(repo.workdir or repo.git_dir)
    current = mlflow.get_tracking_uri()
    if not (isinstance(current, str) and current.startswith(uri.SCHEME + ":") and uri.repo_path(current) == uri.repo_path(target)):
        mlflow.set_tracking_uri(target)
    bridge = fluent.run_bridge()
    if not isinstance(bridge, MlflowBridge):
        bridge = MlflowBridge(mlflow)
        fluent.set_run_bridge(bridge)
    active = fluent.active_run()
    if active is not None:  # a run already open in gitml: autologging goes there too
        bridge.started(active.info.run_id, active.info.experiment_id, nested=False)
    module = mlflow if flavor is None else importlib.import_module(f"mlflow.{flavor}")
    return module.autolog(**kwargs)


def autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
            log_datasets: bool = True, log_traces: bool = True, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False,
            extra_tags: dict[str, str] | None = None, exclude_flavors: list[str] | None = None) -> None:
    """MLflow's ``mlflow.autolog`` (every supported library), logging into this repository.

    Raises:
        MlflowMissing: MLflow is not installed (``pip install 'gitml[mlflow]'``).
    """
    enable(None, **{k: v for k, v in locals().items()})


def sklearn_autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
                    log_datasets: bool = True, disable: bool = False, exclusive: bool = False,
                    disable_for_unsupported_versions: bool = False, silent: bool = False, max_tuning_runs: int = 5,
                    log_post_training_metrics: bool = True, serialization_format: str = "cloudpickle",
                    registered_model_name: str | None = None, pos_label: Any = None,
                    extra_tags: dict[str, str] | None = None) -> None:
    """MLflow's ``mlflow.sklearn.autolog``, logging into this repository.

    Raises:
        MlflowMissing: MLflow is not installed (``pip install 'gitml[mlflow]'``).
    """
    enable("sklearn", **{k: v for k, v in locals().items()})


def xgboost_autolog(importance_types: list[str] | None = None, log_input_examples: bool = False,
                    log_model_signatures: bool = True, log_models: bool = True, log_datasets: bool = True,
                    disable: bool = False, exclusive: bool = False, disable_for_unsupported_versions: bool = False,
                    silent: bool = False, registered_model_name: str | None = None, model_format: str = "ubj",
                    extra_tags: dict[str, str] | None = None) -> None:
    """MLflow's ``mlflow.xgboost.autolog``, logging into this repository.

    Raises:
        MlflowMissing: MLflow is not installed (``pip install 'gitml[mlflow]'``).
    """
    enable("xgboost", **{k: v for k, v in locals().items()})


def lightgbm_autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
                     log_datasets: bool = True, disable: bool = False, exclusive: bool = False,
                     disable_for_unsupported_versions: bool = False, silent: bool = False,
                     registered_model_name: str | None = None, extra_tags: dict[str, str] | None = None) -> None:
    """MLflow's ``mlflow.lightgbm.autolog``, logging into this repository.

    Raises:
        MlflowMissing: MLflow is not installed (``pip install 'gitml[mlflow]'``).
    """
    enable("lightgbm", **{k: v for k, v in locals().items()})


def pytorch_autolog(log_every_n_epoch: int = 1, log_every_n_step: int | None = None, log_models: bool = True,
                    log_datasets: bool = True, disable: bool = False, exclusive: bool = False,
                    disable_for_unsupported_versions: bool = False, silent: bool = False,
                    registered_model_name: str | None = None, extra_tags: dict[str, str] | None = None,
                    checkpoint: bool = True, checkpoint_monitor: str | None = "val_loss",
                    checkpoint_mode: str | None = "min", checkpoint_save_best_only: bool = True,
                    checkpoint_save_weights_only: bool = False, checkpoint_save_freq: Any = "epoch",
                    log_model_signatures: bool = True) -> None:
    """MLflow's ``mlflow.pytorch.autolog`` (PyTorch Lightning), logging into this repository.

    Raises:
        MlflowMissing: MLflow is not installed (``pip install 'gitml[mlflow]'``).
    """
    enable("pytorch", **{k: v for k, v in locals().items()})
