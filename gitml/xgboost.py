"""``gitml.xgboost``: XGBoost models in MLflow's format (MLflow's ``mlflow.xgboost``)."""

from gitml.models.xgboost import load_model, log_model, save_model

__all__ = ["load_model", "log_model", "save_model"]
