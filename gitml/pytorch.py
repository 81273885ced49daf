"""``gitml.pytorch``: PyTorch models in MLflow's format (MLflow's ``mlflow.pytorch``)."""

from gitml.mlflow_plugin.autolog import pytorch_autolog as autolog
from gitml.models.pytorch import load_model, log_model, save_model

__all__ = ["autolog", "load_model", "log_model", "save_model"]
