"""``mlflow.artifacts`` look-alikes: download, list and load artifacts by URI.

URIs are ``runs:/<run_id>/<path>``; ``run_id`` + ``artifact_path`` work too.
"""

from __future__ import annotations

import json
import os
from typing import Any

from gitml.errors import InvalidValue


def _parse(artifact_uri: str | None, run_id: str | None, artifact_path: str | None) -> tuple[str, str]:
    if artifact_uri is not None:
        if run_id is not None or artifact_path is not None:
            raise InvalidValue("Pass either artifact_uri, or run_id (and artifact_path), not both")
        if not artifact_uri.startswith("runs:/"):
            raise InvalidValue(f"Unsupported artifact URI {artifact_uri!r}: expected runs:/<run_id>/<path>")
        rest = artifact_uri[len("runs:/") :].lstrip("/")
        run_id, _, artifact_path = rest.partition("/")
    if not run_id:
        raise InvalidValue("An artifact_uri or a run_id is required")
    return run_id, artifact_path or ""


def download_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                       artifact_path: str | None = None, dst_path: str | os.PathLike[str] | None = None) -> str:
    """Download an artifact file or directory; return its local path."""
    from gitml.tracking import artifacts, runs

    rid, path = _parse(artifact_uri, run_id, artifact_path)
    return artifacts.download_artifacts(runs.open_repo(), rid, path, dst_path)


def list_artifacts(artifact_uri: str | None = None, run_id: str | None = None, artifact_path: str | None = None) -> list[Any]:
    from gitml.tracking import artifacts, runs

    rid, path = _parse(artifact_uri, run_id, artifact_path)
    return artifacts.list_artifacts(runs.open_repo(), rid, path)


def load_text(artifact_uri: str) -> str:
    from gitml.tracking import artifacts, runs

    rid, path = _parse(artifact_uri, None, None)
    return artifacts.read_artifact(runs.open_repo(), rid, path).decode("utf-8")


def load_dict(artifact_uri: str) -> dict:
    text = load_text(artifact_uri)
    if artifact_uri.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)
