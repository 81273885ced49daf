"""gitml: ML experiment tracking, models and registry with your git repository as the database.

``import gitml as mlflow`` gives MLflow's fluent API names. Importing this
package is cheap: the API is loaded on first use (PEP 562), so
``gitml --help`` and ``import gitml`` never pay for pygit2 or pandas.
"""

from __future__ import annotations

from typing import Any

from gitml.version import VERSION as __version__

_FLUENT = (
    "set_tracking_uri get_tracking_uri set_experiment create_experiment get_experiment "
    "get_experiment_by_name search_experiments start_run active_run last_active_run end_run "
    "log_metric log_metrics log_param log_params set_tag set_tags delete_tag flush get_run "
    "delete_run search_runs log_artifact log_artifacts log_dict log_text log_figure log_image "
    "get_artifact_uri log_input log_table load_table enable_system_metrics_logging disable_system_metrics_logging "
    "set_system_metrics_sampling_interval set_system_metrics_samples_before_logging set_system_metrics_node_id"
).split()

_LAZY = {name: ("gitml.tracking.fluent", name) for name in _FLUENT}
_LAZY.update(
    {
        "Client": ("gitml.client", "Client"),
        "MlflowClient": ("gitml.client", "Client"),
        "register_model": ("gitml.client", "register_model"),
        "ActiveRun": ("gitml.tracking.fluent", "ActiveRun"),
        "Run": ("gitml.tracking.entities", "Run"),
        "RunStatus": ("gitml.tracking.entities", "RunStatus"),
        "ViewType": ("gitml.tracking.entities", "ViewType"),
        "Metric": ("gitml.tracking.entities", "Metric"),
        "Param": ("gitml.tracking.entities", "Param"),
        "RunTag": ("gitml.tracking.entities", "RunTag"),
        "GitmlError": ("gitml.errors", "GitmlError"),
        "infer_signature": ("gitml.models.signature", "infer_signature"),
        "autolog": ("gitml.mlflow_plugin.autolog", "autolog"),
        "MlflowException": ("gitml.errors", "GitmlError"),
        "get_logged_model": ("gitml.models.logged", "get_logged_model"),
    }
)

__all__ = sorted(_LAZY) + ["__version__"]


_SUBMODULES = ("artifacts", "pyfunc", "sklearn", "xgboost", "lightgbm", "pytorch", "data", "models", "tracking",
               "entities", "exceptions", "types")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"gitml.{name}")
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'gitml' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
