"""``gitml ui``: the viewer under gunicorn, one app (and repository handle) per worker process."""

from __future__ import annotations

import os
from typing import Any

from gitml.serving.server import run_gunicorn
from gitml.webview import LOOPBACK_HOSTS, create_app


def trusted_hosts(host: str) -> list[str] | None:
    """On a loopback address only loopback Host headers are answered (no DNS rebinding); else any."""
    return LOOPBACK_HOSTS if host in ("127.0.0.1", "localhost", "::1") else None


def serve(repo_path: str | os.PathLike[str] | None, host: str = "127.0.0.1", port: int = 5050,
          workers: int = 3, ready: Any = None) -> None:
    """Serve the viewer until interrupted.

    Raises:
        NotARepository: before anything listens.
    """
    hosts = trusted_hosts(host)
    create_app(repo_path, trusted_hosts=hosts)  # fail here, not in every worker, when the repository is wrong
    run_gunicorn(lambda: create_app(repo_path, trusted_hosts=hosts), host, port, workers=workers, timeout=120,
                 name=f"gitml-ui {repo_path or os.getcwd()}", ready=ready)
