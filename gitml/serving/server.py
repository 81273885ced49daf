"""``gitml serve``: the scoring app under gunicorn, a production WSGI server with worker processes.

The model is loaded once in the master before the workers fork (so a
model that does not load fails before the port is bound, and workers share
its memory). A followed stage may have moved since: each worker checks it
once before it serves (a worker gunicorn forks again after a timeout or a
crash would otherwise serve the master's version until its first poll),
then starts its own follower.
"""

from __future__ import annotations

import threading
from typing import Any

from gitml.errors import GitmlError
from gitml.serving import DEFAULT_SERVE_THREADS
from gitml.serving.app import DEFAULT_MAX_BODY, ModelHolder, ScoringApp, log, log_to_stderr
from gitml.serving.asgi import DEFAULT_THREADS, WsgiBridge


def make_app(model_uri: str, poll_seconds: float = 2.0, max_body: int = DEFAULT_MAX_BODY,
             allow_pickle: bool | None = None) -> ScoringApp:
    """The WSGI app for ``model_uri`` (loads the model now; ``allow_pickle`` as ``pyfunc.load_model``)."""
    return ScoringApp(ModelHolder(model_uri, poll_seconds, allow_pickle), max_body)


def worker_started(holder: ModelHolder, worker: Any = None) -> None:
    """In a newly forked worker, before it serves: catch up with a followed stage, then follow it.

    ``worker`` (gunicorn's) is kept alive while a new version loads, so a
    load slower than --timeout does not get the worker killed, again and again.
    """
    done = threading.Event()
    if worker is not None:
        def heartbeat() -> None:
            while not done.wait(1.0):
                worker.notify()

        threading.Thread(target=heartbeat, name="gitml-boot-heartbeat", daemon=True).start()
    try:
        holder.check()
    except Exception:  # noqa: BLE001 - serve what the master loaded rather than no worker at all
        log.exception("gitml serve: checking %s in a new worker failed; serving %s", holder.model_uri,
                      holder.current.info.get("version"))
    finally:
        done.set()
    holder.start_following()


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 2,
          threads: int = DEFAULT_SERVE_THREADS, poll_seconds: float = 2.0, max_body: int = DEFAULT_MAX_BODY, timeout: int = 60,
          ready: Any = None, allow_pickle: bool | None = None) -> None:
    """Serve ``model_uri`` until interrupted.

    ``allow_pickle`` opts in to models that run code when loaded, for the
    model served now and every version a followed stage moves to.

    Raises:
        ModelNotFound, UntrustedModel and the registry's errors, before anything listens.
    """
    log_to_stderr()
    app = make_app(model_uri, poll_seconds, max_body, allow_pickle)
    run_gunicorn(lambda: app, host, port, workers=workers, threads=threads, timeout=timeout,
                 name=f"gitml-serve {model_uri}",
                 max_body=max_body, post_fork=lambda server, worker: worker_started(app.holder, worker), ready=ready)


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AddressInUse(GitmlError):
    """The host and port to listen on are taken (or not this machine's)."""


def check_address(host: str, port: int) -> None:
    """Fail now, with the fix named, rather than after gunicorn's retries.

    Raises:
        AddressInUse.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as e:
            raise AddressInUse(f"Cannot listen on {bind_address(host, port)}: {e.strerror}; "
                               "pick another port with --port (or stop what uses it)") from None


def run_gunicorn(load: Any, host: str, port: int, *, workers: int, timeout: int, name: str,
                 max_body: int, threads: int = DEFAULT_THREADS, post_fork: Any = None, ready: Any = None) -> None:
    """Run the WSGI app ``load()`` returns under gunicorn until interrupted.

    ``load`` is called in each worker after the fork (return a prebuilt app
    to share what the master loaded, as ``gitml serve`` does with its model).
    Each worker is gunicorn's asyncio (``asgi``) worker in front of
    ``threads`` threads running the app (``asgi.WsgiBridge``): a request
    takes a thread only once it has fully arrived, so clients that send
    slowly cannot take every worker (issue 14). ``max_body`` bounds a
    request body (413 above it).
    """
    from gunicorn.app.base import BaseApplication

    check_address(host, port)

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": bind_address(host, port),
                "workers": workers,
                "worker_class": "asgi",
                "asgi_lifespan": "off",  # the app is built before the loop starts: nothing to start or stop
                "timeout": timeout,
                # One request per connection: gunicorn 26.2's asyncio worker resets its parser
                # after a response and drops a request the client sent meanwhile, which a
                # keep-alive browser does all the time when the answer comes from a thread
                # (requests hung until the keep-alive timeout). WsgiBridge says "close".
                "keepalive": 0,
                "accesslog": None,
                "post_fork": post_fork or (lambda server, worker: None),
                "when_ready": (lambda server: ready(server)) if ready else (lambda server: None),
                "proc_name": name,
                "control_socket_disable": True,  # gunicorn >= 24: no shared ~/.gunicorn socket
            }.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return WsgiBridge(load(), max_body=max_body, threads=threads, multiprocess=workers > 1)

    _Server().run()
