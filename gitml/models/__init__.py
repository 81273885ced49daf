"""Models in MLflow's format; also ``mlflow.models`` for ``import gitml as mlflow``.

The public names (``infer_signature``, ``ModelSignature``, ``Model``,
``ModelInfo``, ``get_model_info``) load on first use (PEP 562): the flavor
modules import this package, and importing it stays free.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "infer_signature": "gitml.models.signature",
    "ModelSignature": "gitml.models.signature",
    "Model": "gitml.models.mlmodel",
    "ModelInfo": "gitml.models.uri",
    "get_model_info": "gitml.models.uri",
}

__all__ = sorted(_LAZY)


_SUBMODULES = ("signature",)  # ``mlflow.models.signature.infer_signature`` after ``import mlflow``


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"gitml.models.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitml.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
