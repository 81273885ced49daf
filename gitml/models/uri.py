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

from gitml.errors import InvalidValue, ModelNotFound
from gitml.models.logged import parse_model_id
from gitml.models.mlmodel import MLMODEL, Model
from gitml.tracking.uri import strip_file_scheme


@dataclass
class ModelInfo:
    """What ``log_model`` and ``gitml.models.get_model_info`` return (MLflow's ModelInfo fields that apply).

    ``model_uri`` is ``runs:/<run_id>/<path>`` for a logged model (MLflow 3
    gives ``models:/<model_id>``; both load the same model in gitml).
    """

    artifact_path: str | None
    model_uri: str
    run_id: str | None
    model_uuid: str
    signature: Any
    flavors: dict[str, Any]
    registered_model_version: int | None = None
    model_id: str | None = None
    metadata: dict[str, Any] | None = None
    utc_time_created: str | None = None
    mlflow_version: str | None = None
    saved_input_example_info: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None

    @property
    def name(self) -> str | None:
        return self.artifact_path

    @property
    def signature_dict(self) -> dict[str, Any] | None:
        return self.signature.to_dict() if self.signature is not None else None

    @classmethod
    def of(cls, meta: Model, model_uri: str) -> ModelInfo:
        extra = meta.logged_model or {}
        return cls(meta.artifact_path, model_uri, meta.run_id, meta.model_uuid, meta.signature, meta.flavors,
                   model_id=meta.model_id, metadata=meta.metadata, utc_time_created=meta.utc_time_created,
                   mlflow_version=meta.mlflow_version, saved_input_example_info=meta.saved_input_example_info,
                   params=extra.get("params"), tags=extra.get("tags"))


def get_model_info(model_uri: str | os.PathLike[str]) -> ModelInfo:
    """The MLmodel of the model ``model_uri`` names, as a ModelInfo (MLflow's ``mlflow.models.get_model_info``).

    Reads only the MLmodel file (a run's or version's pinned copy, verified),
    not the model files.

    Raises:
        ModelNotFound, InvalidValue, and the registry's errors for ``models:/`` names.
    """
    uri = os.fspath(model_uri)
    source = resolve(uri)
    if source.run_id is None:
        meta = Model.load(source.path)  # type: ignore[arg-type]
    else:
        from gitml.tracking import artifacts, runs

        repo = runs.open_repo()
        entry = artifacts.manifest(repo, source.run_id, source.commit).get(f"{source.artifact_path}/{MLMODEL}")
        if entry is None:
            raise ModelNotFound(f"No model at {uri!r}: run {source.run_id} has no {source.artifact_path}/{MLMODEL}")
        text = artifacts.content_store(repo).read_bytes(entry["md5"])
        meta = Model.from_yaml(text, f"{uri}/{MLMODEL}")
    if meta.model_id:
        shown = f"models:/{meta.model_id}"
    elif meta.run_id and meta.artifact_path:
        shown = f"runs:/{meta.run_id}/{meta.artifact_path}"
    else:
        shown = uri
    return ModelInfo.of(meta, shown)


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
    plain = strip_file_scheme(uri)
    registry_ref = uri[len("models:/") :] if uri.startswith("models:/") else None
    if registry_ref is not None and parse_model_id(registry_ref.strip("/")) is not None:
        from gitml.models.logged import locate
        from gitml.tracking import runs

        run_id, path = locate(runs.open_repo(), registry_ref.strip("/"))
        return ModelSource(uri, run_id=run_id, artifact_path=path)
    if registry_ref is None and "://" not in uri and not os.path.exists(plain) and _shortcut(uri):
        registry_ref = uri
    if registry_ref is not None:
        return _from_registry(uri, registry_ref)
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidValue(f"Unsupported model URI {uri!r}: use runs:/<run_id>/<path>, models:/<name>/<version> or a local path")
    local = Path(plain)
    if not (local / "MLmodel").is_file():
        raise ModelNotFound(f"No model at {uri!r}: {str(local)!r} has no MLmodel file")
    return ModelSource(uri, path=local)


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


def log_saved_model(artifact_path: str, registered_model_name: str | None, save: Callable[[str], Model],
                    params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
                    model_type: str | None = None) -> ModelInfo:
    """Save a model with ``save(dir)`` and log the directory into the active run.

    The MLmodel gets the run id, the artifact path and the logged-model id
    (``gitml.models.logged``), plus ``params``/``tags``/``model_type`` when given.

    Raises:
        InvalidName: a registered model name gitml cannot store; InvalidValue: a bad artifact path.
    """
    from gitml.models.logged import model_id_for
    from gitml.tracking import artifacts, fluent
    from gitml.tracking.validation import validate_artifact_path

    artifact_path = validate_artifact_path(os.fspath(artifact_path))
    if not artifact_path:
        raise InvalidValue("A model needs a name (its artifact path in the run)")
    if registered_model_name:
        from gitml.registry.tags import check_model_name

        check_model_name(registered_model_name)  # before any work is done
    for what, value in (("params", params), ("tags", tags)):
        if value is not None and not isinstance(value, dict):
            raise InvalidValue(f"log_model {what} must be a mapping, not {type(value).__name__}")

    w = fluent.active_writer()
    with tempfile.TemporaryDirectory(prefix="gitml-model-") as tmp:
        model_dir = Path(tmp) / "model"
        meta = save(str(model_dir))
        meta.artifact_path = artifact_path
        meta.run_id = w.run_id
        meta.model_id = model_id_for(w.run_id, artifact_path)
        logged = {"params": {str(k): str(v) for k, v in (params or {}).items()} or None,
                  "tags": {str(k): str(v) for k, v in (tags or {}).items()} or None, "model_type": model_type}
        meta.logged_model = {k: v for k, v in logged.items() if v is not None} or None
        meta.save(model_dir)
        artifacts.log_artifacts(w.repo, w, model_dir, artifact_path)
    info = ModelInfo.of(meta, f"runs:/{w.run_id}/{artifact_path}")
    if registered_model_name:
        from gitml import registry

        v = registry.register_model(w.repo, info.model_uri, registered_model_name)
        info.registered_model_version = v.number
    return info


def fetch_artifact(uri: str, dst: Path) -> Path:
    """A local copy of what an artifact URI names (for a custom model's ``artifacts``).

    Local paths (plain or ``file://``) are used where they are; ``runs:/``
    URIs are downloaded (and verified) from the run; ``models:/`` URIs (and
    the registry's other names) fetch the model directory.

    Raises:
        InvalidValue: a scheme gitml cannot fetch, or a local path that does not exist;
        ArtifactNotFound, ModelNotFound and the registry's errors.
    """
    if uri.startswith("runs:/"):
        from gitml.tracking import artifacts, runs

        rest = uri[len("runs:/") :].lstrip("/")
        run_id, _, path = rest.partition("/")
        if not run_id:
            raise InvalidValue(f"Invalid artifact URI {uri!r}: expected runs:/<run_id>/<path>")
        dst.mkdir(parents=True, exist_ok=True)
        return Path(artifacts.download_artifacts(runs.open_repo(), run_id, path.rstrip("/"), dst))
    if uri.startswith("models:/"):
        dst.mkdir(parents=True, exist_ok=True)
        return fetch(resolve(uri), str(dst))
    plain = strip_file_scheme(uri)
    if ("://" in uri and not uri.startswith("file://")) or uri.startswith(("mlflow-artifacts:", "dbfs:", "hf:/")):
        raise InvalidValue(f"Cannot fetch artifact {uri!r}: gitml takes local paths, runs:/<run_id>/<path> "
                           "and models:/ URIs")
    local = Path(plain)
    if not local.exists():
        raise InvalidValue(f"Artifact {uri!r} does not exist")
    return local
