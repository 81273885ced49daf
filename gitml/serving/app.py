"""The scoring server's WSGI app, and the model it serves (which can follow a stage).

Routes, as ``mlflow models serve``: ``GET /ping`` and ``GET /health`` (200
once the model is loaded), ``GET /version`` (JSON: which model version and
run answer), ``POST /invocations``. Every error is JSON
``{"error_code": ..., "message": ...}`` with a 4xx status; a bad request
never takes the server down.

A model given by stage (``rf#production``, ``models:/rf/Production``,
``models:/rf@production``) or as ``latest`` is *followed*: a thread checks
the registry every few seconds and, when the stage has moved, loads the new
version beside the old one and swaps it in with one assignment. Requests in
flight finish on the model they started with; none is dropped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from gitml.serving.protocol import ScoringError, error_body, parse_request, predictions_body

log = logging.getLogger("gitml.serving")

DEFAULT_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Loaded:
    """A loaded model and what it is."""

    model: Any
    info: dict[str, Any] = field(default_factory=dict)


def _describe(uri: str, source: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"model_uri": uri}
    v = getattr(source, "version", None)
    if v is not None:
        info.update(model=v.model, version=v.version, number=v.number, stages=list(v.stages),
                    run_id=v.run_id, commit=v.commit, tag=v.tag)
    elif getattr(source, "run_id", None):
        info.update(run_id=source.run_id, artifact_path=source.artifact_path)
    else:
        info.update(path=str(source.path))
    return info


def _follows(uri: str) -> bool:
    """True if ``uri`` names a stage or 'latest' (what it points at can move)."""
    from gitml.registry import tags as grammar

    ref = uri[len("models:/") :] if uri.startswith("models:/") else uri
    if uri.startswith(("runs:/", "file://")) or (not uri.startswith("models:/") and grammar.SHORTCUT_RE.match(uri) is None):
        return False
    for sep in ("#", "@", "/"):
        _, found, last = ref.rpartition(sep)
        if found:
            return not (last.isdigit() or grammar.VERSION_RE.match(last))
    return False


class ModelHolder:
    """The model being served; for a stage or 'latest', kept in step with the registry."""

    def __init__(self, model_uri: str, poll_seconds: float = 2.0) -> None:
        self.model_uri = model_uri
        self.poll_seconds = poll_seconds
        self.follow = _follows(model_uri)
        self.current = self._load()
        self._failed: str | None = None
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None

    def _load(self) -> Loaded:
        from gitml.models.pyfunc import load_model
        from gitml.models.uri import resolve

        source = resolve(self.model_uri)
        model = load_model(self.model_uri)
        info = _describe(self.model_uri, source)
        info["loaded_at"] = int(time.time())
        return Loaded(model, info)

    def start_following(self) -> None:
        """Start the follower thread in this process (call again after a fork)."""
        if not self.follow or (self._thread is not None and self._thread_pid == os.getpid()):
            return
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="gitml-follow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            try:
                self.check()
            except Exception:  # noqa: BLE001 - keep serving the model we have
                log.exception("gitml serve: checking %s failed; still serving %s", self.model_uri,
                              self.current.info.get("version"))

    def check(self) -> bool:
        """Load and swap in the version the URI names now, if it changed. True if swapped."""
        from gitml.models.uri import resolve

        source = resolve(self.model_uri)
        commit = getattr(getattr(source, "version", None), "commit", None)
        if commit is None or commit == self.current.info.get("commit") or commit == self._failed:
            return False
        try:
            loaded = self._load()
        except Exception:
            self._failed = commit
            raise
        old = self.current.info.get("version")
        self.current = loaded  # one assignment: a request sees the old model or the new one
        log.warning("gitml serve: %s moved from %s to %s", self.model_uri, old, loaded.info.get("version"))
        return True


class ScoringApp:
    """A WSGI application serving one ModelHolder."""

    def __init__(self, holder: ModelHolder, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.holder = holder
        self.max_body = max_body

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.holder.start_following()
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/invocations":
                if method != "POST":
                    raise ScoringError(f"/invocations takes POST, not {method}", 405, "BAD_REQUEST")
                return self._invocations(environ, start_response)
            if path in ("/ping", "/health"):
                return _respond(start_response, 200, b"\n")
            if path == "/version":
                import json

                from gitml import __version__

                body = json.dumps({"gitml_version": __version__, **self.holder.current.info}).encode()
                return _respond(start_response, 200, body)
            raise ScoringError(f"No such endpoint {path!r}: use /invocations, /ping, /health or /version",
                               404, "ENDPOINT_NOT_FOUND")
        except ScoringError as e:
            return _respond(start_response, e.http_status, e.body())
        except Exception as e:  # noqa: BLE001 - one broken request must not take the worker down
            log.exception("gitml serve: unexpected error on %s %s", method, path)
            return _respond(start_response, 500, error_body(f"{type(e).__name__}: {e}", "INTERNAL_ERROR"))

    def _invocations(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = _read_body(environ, self.max_body)
        loaded = self.holder.current
        model = loaded.model
        data, params = parse_request(body, environ.get("CONTENT_TYPE"), model.metadata.signature)
        try:
            predictions = model.predict(data, params=params) if params else model.predict(data)
        except ScoringError:
            raise
        except Exception as e:  # noqa: BLE001 - the model's own errors are the client's input problem
            from gitml.errors import GitmlError

            if isinstance(e, GitmlError):
                raise ScoringError(f"Failed to predict: {e.message}", 400) from None
            raise ScoringError(
                "Encountered an unexpected error while evaluating the model. Verify that the input is "
                f"compatible with the model for inference. Error: {type(e).__name__}: {e}", 400
            ) from None
        return _respond(start_response, 200, predictions_body(predictions))


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            n = int(length)
        except ValueError:
            raise ScoringError(f"Invalid Content-Length {length!r}") from None
        if n > limit:
            raise ScoringError(f"Request body of {n} bytes is over the limit of {limit} bytes "
                               "(gitml serve --max-body-mb)", 413, "REQUEST_LIMIT_EXCEEDED")
        return stream.read(n)
    data = stream.read(limit + 1)  # chunked: read at most one byte past the limit
    if len(data) > limit:
        raise ScoringError(f"Request body is over the limit of {limit} bytes (gitml serve --max-body-mb)",
                           413, "REQUEST_LIMIT_EXCEEDED")
    return data


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error"}


def _respond(start_response: Any, status: int, body: bytes) -> list[bytes]:
    start_response(f"{status} {_REASONS.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def log_to_stderr() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
