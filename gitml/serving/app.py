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
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import InvalidValue
from gitml.serving.protocol import ArrayInput, ScoringError, error_body, parse_request, predictions_body

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
    try:
        _, _, last = grammar.split_reference(ref.strip("/"))  # as the registry resolves it
    except InvalidValue:
        return False  # loading it says what is wrong
    return not (last.isdigit() or grammar.VERSION_RE.match(last))


def _load_source(source: Any, allow_pickle: bool | None = None) -> Any:
    """The PyFuncModel at a resolved ModelSource, from exactly the run commit it pins (no second resolve).

    ``allow_pickle`` is the opt-in for models that run code when loaded
    (None: the ``GITML_ALLOW_PICKLE`` setting); see ``gitml.models.trust``.
    """
    from gitml.models.pyfunc import load_model
    from gitml.models.uri import fetch

    if source.run_id is None:
        return load_model(str(source.path), allow_pickle=allow_pickle)
    dst = tempfile.mkdtemp(prefix="gitml-serve-")
    try:
        return load_model(str(fetch(source, dst)), allow_pickle=allow_pickle)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise


class ModelHolder:
    """The model being served; for a stage or 'latest', kept in step with the registry.

    ``current`` is replaced with one assignment, so a request sees either
    the old model or the new one. ``status`` says how following goes
    (``/version`` shows it): ``stage_missing`` while the followed stage or
    'latest' names no version (the last one is still served), ``deprecated``
    while the model is, and ``follow_error`` for the last check that failed.
    """

    def __init__(self, model_uri: str, poll_seconds: float = 2.0, allow_pickle: bool | None = None) -> None:
        from gitml.models.uri import resolve

        self.model_uri = model_uri
        self.poll_seconds = poll_seconds
        self.allow_pickle = allow_pickle
        self.follow = _follows(model_uri)
        self.current = self._load(resolve(model_uri))
        self.status: dict[str, Any] = {"following": self.follow}
        if self.follow:
            self.status.update(stage_missing=False, deprecated=self._deprecated(self.current.info.get("model")),
                               follow_error=None)
        self._failed: str | None = None  # commit of a version that failed to load: not retried
        self._logged: str | None = None  # the last problem logged: each is logged once
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._thread_lock = threading.Lock()  # request threads all call start_following: start one follower

    def _load(self, source: Any) -> Loaded:
        """Load the model ``source`` pins; its info describes that same source."""
        model = _load_source(source, self.allow_pickle)
        info = _describe(self.model_uri, source)
        info["loaded_at"] = int(time.time())
        return Loaded(model, info)

    def describe(self) -> dict[str, Any]:
        """What ``/version`` answers: the model being served, and how following it goes."""
        return {**self.current.info, **self.status}

    def start_following(self) -> None:
        """Start the follower thread in this process (call again after a fork)."""
        if not self.follow or (self._thread is not None and self._thread_pid == os.getpid()):
            return
        with self._thread_lock:
            if self._thread is not None and self._thread_pid == os.getpid():
                return
            self._thread = threading.Thread(target=self._run, name="gitml-follow", daemon=True)
            self._thread.start()
            self._thread_pid = os.getpid()

    def _run(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            try:
                self.check()
            except Exception as e:  # noqa: BLE001 - keep serving the model we have
                self._problem(f"checking {self.model_uri} failed: {type(e).__name__}: {e}", exc_info=True)

    def check(self) -> bool:
        """Load and swap in the version the URI names now, if it changed. True if swapped.

        Never raises for a registry or load problem: the served model stays,
        ``status`` says what is wrong, and each problem is logged once. A
        version that failed to load is not tried again.
        """
        if not self.follow:
            return False
        from gitml import registry
        from gitml.errors import GitmlError, NotFound
        from gitml.models.uri import resolve

        try:
            source = resolve(self.model_uri)
        except NotFound as e:  # the stage unassigned, the version deregistered, the model deprecated or gone
            # (registries that refuse a deprecated model say so with ModelDeprecated)
            deprecated = isinstance(e, getattr(registry, "ModelDeprecated", ())) or self.status.get("deprecated")
            self._set(stage_missing=True, deprecated=bool(deprecated), follow_error=e.message)
            self._problem(f"{self.model_uri} names no version now ({e.message}); still serving {self._serving()}",
                          level=logging.WARNING)
            return False
        except GitmlError as e:
            self._set(follow_error=e.message)
            self._problem(f"cannot resolve {self.model_uri} ({e.message}); still serving {self._serving()}")
            return False
        version = source.version
        deprecated = self._deprecated(getattr(version, "model", None))
        if deprecated and not self.status.get("deprecated"):
            log.warning("gitml serve: model %s is deprecated; still following %s", version.model, self.model_uri)
        self._set(stage_missing=False, deprecated=deprecated)
        commit = getattr(version, "commit", None)
        if commit is None or commit == self.current.info.get("commit"):
            self._set(follow_error=None)
            self._logged = None
            return False
        if commit == self._failed:
            return False
        try:
            loaded = self._load(source)
        except Exception as e:  # noqa: BLE001 - any loader error: keep serving the old model
            self._failed = commit
            what = f"{version.model} {version.version}"
            self._set(follow_error=f"{what} failed to load: {type(e).__name__}: {e}")
            self._problem(f"{self.model_uri} moved to {what}, which failed to load; still serving "
                          f"{self._serving()} and not retrying {what}", exc_info=True)
            return False
        old = self._serving()
        self.current = loaded  # one assignment: a request sees the old model or the new one
        self._set(follow_error=None)
        self._logged = None
        log.warning("gitml serve: %s moved from %s to %s", self.model_uri, old, self._serving())
        return True

    def _serving(self) -> str:
        info = self.current.info
        return f"{info.get('model')} {info.get('version')}"

    def _set(self, **changes: Any) -> None:
        self.status = {**self.status, **changes}  # one assignment: /version reads a whole status

    def _problem(self, message: str, exc_info: bool = False, level: int = logging.ERROR) -> None:
        """Log ``message`` unless it is the problem logged last (a poll every few seconds must not flood)."""
        if message != self._logged:
            self._logged = message
            log.log(level, "gitml serve: %s", message, exc_info=exc_info)

    @staticmethod
    def _deprecated(name: str | None) -> bool:
        """Whether registered model ``name`` is deprecated now (False if that cannot be told)."""
        if not name:
            return False
        from gitml import registry
        from gitml.errors import GitmlError
        from gitml.tracking import runs

        try:
            return registry.get_model(runs.open_repo(), name).deprecated
        except GitmlError:
            return False


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

                from gitml.version import VERSION

                body = json.dumps({"gitml_version": VERSION, **self.holder.describe()}).encode()
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
        data, params = parse_request(body, environ.get("CONTENT_TYPE"), model.metadata.signature,
                                     model.array_lane)
        try:
            if isinstance(data, ArrayInput):
                predictions = model.predict_array(data.values)
            else:
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
