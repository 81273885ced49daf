"""Model URIs: one resolver for loading, serving and the CLI.

``runs:/<run_id>/<path>`` (a model logged with a run), local paths
(``file://`` or plain), and registry references: ``models:/rf/3``,
``models:/rf/Production``, ``models:/rf@production``, and GTO's shorthands
``rf@v1.2.0`` / ``rf#production`` (when no local path of that name exists).
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
    registered_model_version: int | None = None


def local_model_path(model_uri: str | os.PathLike[str], dst_path: str | None = None) -> Path:
    """A local directory holding the model ``model_uri`` names (downloaded and verified if needed).

    Raises:
        ModelNotFound, InvalidValue (a URI scheme gitml does not know).
    """
    return fetch(resolve(os.fspath(model_uri)), dst_path)


def fetch(source: ModelSource, dst_path: str | None = None) -> Path:
    """A local directory holding the model ``source`` names: its path, or its files downloaded
    (and verified) from the run commit it pins, into ``dst_path`` or a new temporary directory.

    Raises:
        ModelNotFound, MissingObject / CorruptObject (artifact cache).
    """
    if source.run_id is None:
        return source.path  # type: ignore[return-value]
    from gitml.tracking import artifacts, runs

    dst = dst_path or tempfile.mkdtemp(prefix="gitml-model-")
    try:
        local = artifacts.download_artifacts(runs.open_repo(), source.run_id, source.artifact_path, dst,
                                             commit=source.commit)
    except artifacts.ArtifactNotFound as e:
        raise ModelNotFound(f"No model at {source.uri!r}: {e}") from e
    return Path(local)


@dataclass(frozen=True)
class ModelSource:
    """Where a model URI points: a local directory, or a path in a run (at a pinned commit)."""

    uri: str
    path: Path | None = None
    run_id: str | None = None
    artifact_path: str | None = None
    commit: str | None = None  # a registered version pins the run commit
    version: Any = None  # the registry's VersionState for models:/ URIs


def resolve(model_uri: str | os.PathLike[str]) -> ModelSource:
    """What ``model_uri`` names, without downloading anything.

    Raises:
        ModelNotFound, InvalidValue (a scheme gitml does not know), and the
        registry's ModelNotRegistered / VersionNotFound.
    """
    uri = os.fspath(model_uri)
    if uri.startswith("runs:/"):
        rest = uri[len("runs:/") :].lstrip("/")
        run_id, _, path = rest.partition("/")
        if not run_id or not path:
            raise InvalidValue(f"Invalid model URI {uri!r}: expected runs:/<run_id>/<artifact path>")
        return ModelSource(uri, run_id=run_id, artifact_path=path.rstrip("/"))
    plain = uri[len("file://") :] if uri.startswith("file://") else uri
    registry_ref = uri[len("models:/") :] if uri.startswith("models:/") else None
    if registry_ref is None and "://" not in uri and not os.path.exists(plain) and _shortcut(uri):
        registry_ref = uri
    if registry_ref is not None:
        return _from_registry(uri, registry_ref)
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidValue(f"Unsupported model URI {uri!r}: use runs:/<run_id>/<path>, models:/<name>/<version> or a local path")
    path = Path(plain)
    if not (path / "MLmodel").is_file():
        raise ModelNotFound(f"No model at {uri!r}: {str(path)!r} has no MLmodel file")
    return ModelSource(uri, path=path)


def _shortcut(uri: str) -> bool:
    from gitml.registry.tags import SHORTCUT_RE

    return SHORTCUT_RE.match(uri) is not None


def _from_registry(uri: str, ref: str) -> ModelSource:
    from gitml import registry
    from gitml.tracking import runs

    version = registry.resolve(runs.open_repo(), ref.strip("/"))
    if not version.run_id or not version.path:
        raise ModelNotFound(
            f"{uri!r} is {version.model} {version.version}, a tag on commit {version.commit[:12]} "
            "that was not registered from a gitml run (no Gitml-Run / Gitml-Model-Path in its tag message)"
        )
    return ModelSource(uri, run_id=version.run_id, artifact_path=version.path, commit=version.commit, version=version)


def log_saved_model(artifact_path: str, registered_model_name: str | None,
                    save: Callable[[str], Model]) -> ModelInfo:
    """Save a model with ``save(dir)`` and log the directory into the active run."""
    from gitml.tracking import artifacts, fluent

    if registered_model_name:
        from gitml.registry.tags import check_model_name

        check_model_name(registered_model_name)  # before any work is done

    w = fluent._writer()
    with tempfile.TemporaryDirectory(prefix="gitml-model-") as tmp:
        model_dir = Path(tmp) / "model"
        meta = save(str(model_dir))
        meta.artifact_path = artifact_path
        meta.run_id = w.run_id
        meta.save(model_dir)
        artifacts.log_artifacts(w.repo, w, model_dir, artifact_path)
    info = ModelInfo(artifact_path, f"runs:/{w.run_id}/{artifact_path}", w.run_id, meta.model_uuid,
                     meta.signature, meta.flavors)
    if registered_model_name:
        from gitml import registry

        v = registry.register_model(w.repo, info.model_uri, registered_model_name)
        info.registered_model_version = v.number
    return info
