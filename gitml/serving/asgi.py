"""A WSGI app behind gunicorn's asyncio (``asgi``) worker: slow clients cost a coroutine, never a thread.

gunicorn's sync worker gives each connection the whole process, and its
``gthread`` worker gives each one a thread, until the request has arrived:
a client that sends its headers or its body slowly holds that slot for as
long as it likes, and a handful of them stop the server (issue 14). The
``asgi`` worker parses requests in an event loop, so a connection that is
still arriving costs a coroutine and a buffer. ``WsgiBridge`` then:

- reads the whole body in the event loop (at most ``max_body`` bytes, 413
  above it; at most ``body_seconds`` for all of it, 408 after that), and
- only then runs the WSGI app in one of ``threads`` threads, streaming what
  it returns back through the loop with the transport's backpressure.

So a thread is taken only by a request that has fully arrived. Every
answer says ``Connection: close`` and the server keeps no connection alive
(``keepalive = 0`` in ``server.run_gunicorn``): gunicorn 26.2's asyncio
worker resets its request parser after each response and so drops a
request that arrived while the response's thread was finishing, which a
keep-alive browser triggers all the time. A new connection on loopback
costs far less than a lost request.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import unquote_to_bytes

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
# A coroutine function (gunicorn's is): ``_run`` hands its calls to ``run_coroutine_threadsafe``.
Send = Callable[[Message], Coroutine[Any, Any, None]]
WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

DEFAULT_THREADS = 4
DEFAULT_BODY_SECONDS = 30.0
WHOLE_BODY = 256 * 1024  # an answer up to this size is handed to the loop in one piece


class WsgiBridge:
    """An ASGI app that answers each HTTP request with the WSGI app ``app``, in a thread pool.

    The 413 and 408 it answers itself are JSON, as every error of the
    scoring server and of the viewer's API.
    """

    def __init__(self, app: WsgiApp, *, max_body: int, threads: int = DEFAULT_THREADS,
                 body_seconds: float = DEFAULT_BODY_SECONDS, multiprocess: bool = True) -> None:
        self.app = app
        self.max_body = max_body
        self.body_seconds = body_seconds
        self.multiprocess = multiprocess
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def pool(self) -> ThreadPoolExecutor:
        # Made on first use, in the worker: threads do not survive the fork.
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="gitml-request")
            return self._pool

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # a websocket: nothing here speaks it; gunicorn closes it
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        loop = asyncio.get_running_loop()
        whole = await loop.run_in_executor(self.pool(), self._run, self._environ(scope, body), send, loop)
        if whole is not None:  # a small answer comes back whole: sent from here, no trip per message
            status, headers, content = whole
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content, "more_body": False})

    async def _read_body(self, scope: Message, receive: Receive, send: Send) -> bytes | None:
        """The request body, read in the loop; None once answered (413, 408) or when the client left."""
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _answer(send, 413, "REQUEST_LIMIT_EXCEEDED",
                          f"Request body of {int(declared)} bytes is over the limit of {self.max_body} bytes")
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_seconds
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                await _answer(send, 408, "REQUEST_TIMEOUT",
                              f"The request body did not arrive within {self.body_seconds:g} s")
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _answer(send, 413, "REQUEST_LIMIT_EXCEEDED",
                              f"Request body is over the limit of {self.max_body} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _environ(self, scope: Message, body: bytes) -> dict[str, Any]:
        """PEP 3333's environ for an ASGI HTTP scope, as gunicorn's own WSGI workers build it."""
        server = scope.get("server") or ("localhost", 80)
        client = scope.get("client") or ("", 0)
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": scope.get("root_path", ""),
            "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "REMOTE_ADDR": str(client[0]),
            "REMOTE_PORT": str(client[1]),
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
        }
        for name, value in scope.get("headers", []):
            key = name.decode("latin-1").upper().replace("-", "_")
            if key == "CONTENT_LENGTH":
                continue  # the body is all here: its length is what the app reads
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    def _run(self, environ: dict[str, Any], send: Send,
             loop: asyncio.AbstractEventLoop) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Run the WSGI app (in a pool thread).

        An answer the app returns as a list (the scoring app's, whatever its
        size) or of at most ``WHOLE_BODY`` bytes is returned whole (status,
        headers, body) for the loop to send: one hand-over between thread and
        loop instead of three, and no thread waits on a client that reads
        slowly. A longer generated one, or one the app starts with ``write``,
        goes out message by message through the loop as it comes, each
        waiting for the client (backpressure); then None is returned.
        """

        def emit(message: Message) -> None:
            sending = asyncio.run_coroutine_threadsafe(send(message), loop)
            while True:  # as long as the client reads (backpressure), but not past the loop's end
                try:
                    sending.result(timeout=1.0)
                    return
                except FutureTimeout:
                    if loop.is_closed() or not loop.is_running():
                        sending.cancel()  # the worker is exiting: a thread left waiting would hold up its exit
                        raise ConnectionAbortedError("the worker's event loop stopped mid-response") from None

        status_headers: list[tuple[int, list[tuple[bytes, bytes]]]] = []
        sent = False  # the start message went out
        held: list[bytes] = []  # body chunks not sent yet, in order
        streaming = False  # chunks go out as they come

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if exc_info is not None and (sent or any(held)):  # PEP 3333: a non-empty chunk sends the headers
                raise exc_info[1].with_traceback(exc_info[2])
            status_headers[:] = [(int(status.split(" ", 1)[0]),
                                  [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
                                   if k.lower() != "connection"] + [(b"connection", b"close")])]
            return write

        def send_body(data: bytes) -> None:
            nonlocal sent
            if not sent:
                emit({"type": "http.response.start", "status": status_headers[0][0],
                      "headers": status_headers[0][1]})
                sent = True
            if data:
                emit({"type": "http.response.body", "body": bytes(data), "more_body": True})

        def stream() -> None:
            nonlocal streaming
            streaming = True
            for part in held:
                send_body(part)
            held.clear()

        def write(data: bytes) -> None:  # WSGI's write(): after what the app returned before it
            stream()
            send_body(data)

        result = self.app(environ, start_response)
        materialized = isinstance(result, (list, tuple))
        size = 0
        try:
            for chunk in result:
                if streaming:
                    send_body(chunk)
                    continue
                held.append(bytes(chunk))
                size += len(chunk)
                if size > WHOLE_BODY and not materialized:
                    stream()
            if not streaming and status_headers:
                return status_headers[0][0], status_headers[0][1], b"".join(held)
            stream()
            send_body(b"")
            emit({"type": "http.response.body", "body": b"", "more_body": False})
            return None
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _header(scope: Message, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: the app was built before the loop started."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
