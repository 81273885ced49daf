"""``gitml ui``: the viewer under gunicorn, one app (and repository handle) per worker process."""

from __future__ import annotations

import os
from typing import Any

from gitml.serving.server import run_gunicorn
from gitml.webview import LOOPBACK_HOSTS, create_app

# Every route is GET: a request body is never read, so a large one is refused before it is received.
MAX_BODY = 1024 * 1024


def is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, asked: list[str] | None) -> list[str] | None:
    """The Host names to answer: ``asked`` (``*``: any), else loopback names on a loopback bind, else any."""
    if asked:
        return None if "*" in asked else asked
    return LOOPBACK_HOSTS if is_loopback(host) else None


def serve(repo_path: str | os.PathLike[str] | None, host: str = "127.0.0.1", port: int = 5050,
          workers: int = 3, hosts: list[str] | None = None, ready: Any = None) -> None:
    """Serve the viewer until interrupted.

    Raises:
        NotARepository, AddressInUse: before anything listens.
    """
    allowed = allowed_hosts(host, hosts)
    create_app(repo_path, allowed_hosts=allowed)  # fail here, not in every worker, when the repository is wrong
    run_gunicorn(lambda: create_app(repo_path, allowed_hosts=allowed), host, port, workers=workers, timeout=120,
                 max_body=MAX_BODY, name=f"gitml-ui {repo_path or os.getcwd()}", ready=ready)
