"""``gitml.pytorch``: PyTorch models in MLflow's format (MLflow's ``mlflow.pytorch``)."""

from gitml.models.pytorch import load_model, log_model, save_model

__all__ = ["load_model", "log_model", "save_model"]
