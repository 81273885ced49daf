"""``gitml.lightgbm``: LightGBM models in MLflow's format (MLflow's ``mlflow.lightgbm``)."""

from gitml.models.lightgbm import load_model, log_model, save_model

__all__ = ["load_model", "log_model", "save_model"]
