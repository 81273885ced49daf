"""Model URIs: one resolver for loading, serving and the CLI.

``runs:/<run_id>/<path>`` (a model logged with a run) and local paths
(``file://`` or plain). ``models:/...`` arrives with the registry.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models.mlmodel import Model, ModelNotFound


@dataclass
class ModelInfo:
    """What ``log_model`` returns (MLflow's ModelInfo fields that apply)."""

    artifact_path: str
    model_uri: str
    run_id: str
    model_uuid: str
    signature: Any
    flavors: dict[str, Any]


def local_model_path(model_uri: str | os.PathLike[str], dst_path: str | None = None) -> Path:
    """A local directory holding the model ``model_uri`` names (downloaded and verified if needed).

    Raises:
        ModelNotFound, InvalidValue (a URI scheme gitml does not know).
    """
    uri = os.fspath(model_uri)
    if uri.startswith("runs:/"):
        from gitml.tracking import artifacts, runs

        rest = uri[len("runs:/") :].lstrip("/")
        run_id, _, path = rest.partition("/")
        if not run_id or not path:
            raise InvalidValue(f"Invalid model URI {uri!r}: expected runs:/<run_id>/<artifact path>")
        dst = dst_path or tempfile.mkdtemp(prefix="gitml-model-")
        try:
            local = artifacts.download_artifacts(runs.open_repo(), run_id, path.rstrip("/"), dst)
        except artifacts.ArtifactNotFound as e:
            raise ModelNotFound(f"No model at {uri!r}: {e}") from e
        return Path(local)
    if uri.startswith("models:/"):
        raise InvalidValue(f"Model URI {uri!r}: the model registry is not available yet (issue 5)")
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidValue(f"Unsupported model URI {uri!r}: use runs:/<run_id>/<path> or a local path")
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    if not (path / "MLmodel").is_file():
        raise ModelNotFound(f"No model at {uri!r}: {str(path)!r} has no MLmodel file")
    return path


def log_saved_model(artifact_path: str, registered_model_name: str | None,
                    save: Callable[[str], Model]) -> ModelInfo:
    """Save a model with ``save(dir)`` and log the directory into the active run."""
    from gitml.tracking import fluent

    if registered_model_name:
        raise InvalidValue("registered_model_name: the model registry is not available yet (issue 5)")
    from gitml.tracking import artifacts

    w = fluent._writer()
    with tempfile.TemporaryDirectory(prefix="gitml-model-") as tmp:
        model_dir = Path(tmp) / "model"
        meta = save(str(model_dir))
        meta.artifact_path = artifact_path
        meta.run_id = w.run_id
        meta.save(model_dir)
        artifacts.log_artifacts(w.repo, w, model_dir, artifact_path)
    return ModelInfo(artifact_path, f"runs:/{w.run_id}/{artifact_path}", w.run_id, meta.model_uuid,
                     meta.signature, meta.flavors)
