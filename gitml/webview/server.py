"""``gitml ui``: the viewer under gunicorn, one app (and repository handle) per worker process."""

from __future__ import annotations

import os
from typing import Any

from gitml.serving.server import run_gunicorn
from gitml.webview import LOOPBACK_HOSTS, create_app

# Pages are GETs; edits are small forms (a description at most): a larger body is refused before it is received.
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


def writes_allowed(host: str, read_only: bool, allow_writes: bool) -> bool:
    """Edits from the viewer: on by default on a loopback address, never with ``read_only``,
    elsewhere only with ``allow_writes`` (anyone who reaches the port could edit)."""
    return not read_only and (allow_writes or is_loopback(host))


def serve(repo_path: str | os.PathLike[str] | None, host: str = "127.0.0.1", port: int = 5050,
          workers: int = 3, hosts: list[str] | None = None, ready: Any = None, writes: bool = False) -> None:
    """Serve the viewer until interrupted.

    Raises:
        NotARepository, AddressInUse: before anything listens.
    """
    import secrets

    allowed = allowed_hosts(host, hosts)
    token = secrets.token_urlsafe(32)  # one for every worker: a form from one is good on another

    def make() -> Any:
        return create_app(repo_path, allowed_hosts=allowed, writes=writes, csrf_token=token)

    make()  # fail here, not in every worker, when the repository is wrong
    run_gunicorn(make, host, port, workers=workers, timeout=120,
                 max_body=MAX_BODY, name=f"gitml-ui {repo_path or os.getcwd()}", ready=ready)
