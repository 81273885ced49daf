"""``gitml.sklearn``: scikit-learn models in MLflow's format (MLflow's ``mlflow.sklearn``)."""

from gitml.mlflow_plugin.autolog import sklearn_autolog as autolog
from gitml.models.sklearn import load_model, log_model, save_model

__all__ = ["autolog", "load_model", "log_model", "save_model"]
