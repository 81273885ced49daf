"""``gitml serve``: the scoring app under gunicorn, a production WSGI server with worker processes.

The model is loaded once in the master before the workers fork (so a
model that does not load fails before the port is bound, and workers share
its memory); each worker then starts its own stage follower.
"""

from __future__ import annotations

from typing import Any

from gitml.serving.app import DEFAULT_MAX_BODY, ModelHolder, ScoringApp, log_to_stderr


def make_app(model_uri: str, poll_seconds: float = 2.0, max_body: int = DEFAULT_MAX_BODY) -> ScoringApp:
    """The WSGI app for ``model_uri`` (loads the model now)."""
    return ScoringApp(ModelHolder(model_uri, poll_seconds), max_body)


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 2,
          poll_seconds: float = 2.0, max_body: int = DEFAULT_MAX_BODY, timeout: int = 60,
          ready: Any = None) -> None:
    """Serve ``model_uri`` until interrupted.

    Raises:
        ModelNotFound and the registry's errors, before anything listens.
    """
    from gunicorn.app.base import BaseApplication

    log_to_stderr()
    app = make_app(model_uri, poll_seconds, max_body)

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "worker_class": "sync",
                "timeout": timeout,
                "keepalive": 5,
                "accesslog": None,
                "post_fork": lambda server, worker: app.holder.start_following(),
                "when_ready": (lambda server: ready(server)) if ready else (lambda server: None),
                "proc_name": f"gitml-serve {model_uri}",
                "control_socket_disable": True,  # gunicorn >= 24: no shared ~/.gunicorn socket
            }.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    _Server().run()
