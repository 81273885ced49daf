"""``gitml.lightgbm``: LightGBM models in MLflow's format (MLflow's ``mlflow.lightgbm``)."""

from gitml.mlflow_plugin.autolog import lightgbm_autolog as autolog
from gitml.models.lightgbm import load_model, log_model, save_model

__all__ = ["autolog", "load_model", "log_model", "save_model"]
