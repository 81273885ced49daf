"""``gitml.sklearn``: scikit-learn models in MLflow's format (MLflow's ``mlflow.sklearn``)."""

from gitml.models.sklearn import load_model, log_model, save_model

__all__ = ["load_model", "log_model", "save_model"]
