"""``mlflow.types.schema``: the same names as ``gitml.types``."""

from gitml.models.signature import ColSpec, DataType, Schema, TensorSpec

__all__ = ["ColSpec", "DataType", "Schema", "TensorSpec"]
