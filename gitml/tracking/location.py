"""Where ``set_tracking_uri(uri)`` and ``Client(tracking_uri)`` point gitml: a git repository's path.

gitml's own API writes to a git repository, named by a path, a ``file:``
URI or a ``gitml:`` URI (the grammar in ``gitml.tracking.uri``, shared with the plugin,
so ``gitml:/path/to/repo`` means the same in both routes). An MLflow server
(``http://...``) or database (``sqlite:...``, ``postgresql://...``) URI is
refused with one line naming the other route: real mlflow with
``MLFLOW_TRACKING_URI=gitml:<repo>`` writes into the same repository
(docs/mlflow.md), instead of the path error it used to cause.
"""

from __future__ import annotations

import os
import re

from gitml.errors import InvalidValue
from gitml.tracking.uri import SCHEME, repo_path, strip_file_scheme

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


class UnsupportedTrackingUri(InvalidValue):
    """A tracking URI that names no git repository (an MLflow server or database)."""


def repository_path(uri: str | os.PathLike[str] | None) -> str | None:
    """The repository path ``uri`` names (None: the default, the repository around the working directory).

    Raises:
        UnsupportedTrackingUri: an MLflow server, database or Databricks URI.
        InvalidValue: a ``gitml:`` URI naming a remote host.
    """
    if uri is None:
        return None
    text = os.fspath(uri)
    if not text:
        return None
    if text.startswith("file://"):
        return strip_file_scheme(text) or None
    if text.startswith(SCHEME + ":"):
        return repo_path(text)
    m = _SCHEME.match(text)
    scheme = m.group(1).lower() if m else ""
    if text == "databricks" or (len(scheme) > 1 and scheme != "file" and not os.path.exists(text)):
        raise UnsupportedTrackingUri(
            f"Cannot track into {text!r}: gitml's API writes to a git repository (a path or "
            f"gitml:/path/to/repo), not an MLflow server or database; to have real mlflow log into this "
            f"repository, set MLFLOW_TRACKING_URI=gitml:<repo> (see docs/mlflow.md)")
    if scheme == "file":
        return text[len("file:") :] or None
    return text
