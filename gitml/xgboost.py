"""``gitml.xgboost``: XGBoost models in MLflow's format (MLflow's ``mlflow.xgboost``)."""

from gitml.mlflow_plugin.autolog import xgboost_autolog as autolog
from gitml.models.xgboost import load_model, log_model, save_model

__all__ = ["autolog", "load_model", "log_model", "save_model"]
