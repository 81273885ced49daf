"""``mlflow.types`` for ``import gitml as mlflow``: the pieces of a model signature."""

from gitml.models.signature import ColSpec, DataType, Schema, TensorSpec

__all__ = ["ColSpec", "DataType", "Schema", "TensorSpec"]
