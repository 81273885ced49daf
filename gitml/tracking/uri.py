"""The ``gitml:`` URI grammar, for tracking URIs and artifact URIs (no mlflow import).

Tracking and registry URIs name a repository::

    gitml:/abs/path      gitml:///abs/path      gitml:.      gitml:relative/path

(``gitml://host/...`` is refused: the repository is a local path.)

A run's artifact URI names the repository, the run and optionally the run
commit to read (a registered version pins one), and MLflow appends artifact
paths to it with ``/``::

    gitml:///abs/repo/.gitml-runs/<run_id>[@<commit>][/<artifact path>]

Behind ``mlflow server --artifacts-destination gitml:///abs/repo`` the
same tail follows the server's root: ``mlflow-artifacts:/.gitml-runs/<run_id>``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote

from gitml.errors import InvalidValue

SCHEME = "gitml"
RUNS_SEGMENT = ".gitml-runs"
_RUN_PART = re.compile(r"/\.gitml-runs/([0-9a-f]{32})(?:@([0-9a-f]{40}|[0-9a-f]{64}))?(?:/(.*))?$")


def repo_path(uri: str) -> str:
    """The absolute repository path a ``gitml:`` tracking URI names.

    Raises:
        InvalidValue: not a ``gitml:`` URI, or one naming a remote host.
    """
    text = str(uri)
    if not text.startswith(SCHEME + ":"):
        raise InvalidValue(f"Not a gitml URI: {text!r} (expected gitml:/path/to/repo)")
    rest = text[len(SCHEME) + 1 :]
    if rest.startswith("//"):
        host, _, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise InvalidValue(f"Invalid gitml URI {text!r}: the repository is a local path "
                               f"(gitml:///abs/path or gitml:/abs/path), not host {host!r}")
        rest = "/" + path
    rest = unquote(rest.split("?", 1)[0].split("#", 1)[0])
    return os.path.abspath(rest or ".")


def strip_file_scheme(uri: str) -> str:
    """``uri`` without a leading ``file://``: ``file:///abs/path`` names the path ``/abs/path``."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


def tracking_uri(path: str | os.PathLike[str]) -> str:
    """The normal form ``gitml:///abs/path`` of a repository path."""
    return f"{SCHEME}://{os.path.abspath(os.fspath(path))}"


@dataclass(frozen=True)
class ArtifactLocation:
    """What an artifact URI names: repository (or server root), run, pinned commit, path in the run."""

    root: str  # "gitml:///abs/repo" or another scheme's root ("mlflow-artifacts:")
    run_id: str
    commit: str | None
    path: str  # "" for the run's artifact root

    @property
    def repo(self) -> str:
        return repo_path(self.root)


def run_artifact_uri(root: str, run_id: str, commit: str | None = None) -> str:
    """The artifact URI of run ``run_id`` under ``root`` (a ``gitml:`` URI or a server's artifact root)."""
    pin = f"@{commit}" if commit else ""
    return f"{root.rstrip('/')}/{RUNS_SEGMENT}/{run_id}{pin}"


def parse_artifact_uri(uri: str) -> ArtifactLocation:
    """Split an artifact URI into its parts.

    Raises:
        InvalidValue: the URI names no run (``/.gitml-runs/<run_id>`` missing).
    """
    text = str(uri).rstrip("/")
    m = _RUN_PART.search(text)
    if m is None:
        raise InvalidValue(f"Not a gitml artifact URI: {uri!r} (expected .../{RUNS_SEGMENT}/<run_id>/<path>)")
    root = text[: m.start()] or f"{SCHEME}:"
    return ArtifactLocation(root, m.group(1), m.group(2), unquote(m.group(3) or ""))
