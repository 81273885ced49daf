"""The tracking domain; also ``mlflow.tracking`` for ``import gitml as mlflow``.

``MlflowClient`` here is ``gitml.Client`` (tracking and registry), as
``mlflow.tracking.MlflowClient`` is MLflow's whole client. It loads on first
use (PEP 562), so importing the domain modules never loads the client.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "MlflowClient":
        # MLflow's public module path for its client; the client sits above this layer,
        # so it is named here lazily and never imported by the domain itself.
        from gitml.client import Client

        return Client
    raise AttributeError(f"module 'gitml.tracking' has no attribute {name!r}")
