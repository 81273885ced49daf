"""A bounded slowloris for the server tests: connections that send a request slowly and never finish it.

Not a test module: ``tests/test_serving.py`` and ``tests/test_webview.py``
point it at a real ``gitml serve`` / ``gitml ui``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator


class SlowClients:
    """``headers`` connections that send one header line every ``interval`` seconds, and ``bodies``
    that declare a 1000-byte body and send one byte a second; none ever completes its request."""

    def __init__(self, port: int, path: str, headers: int = 8, bodies: int = 0, interval: float = 2.0) -> None:
        self.port = port
        self.interval = interval
        self.stop = threading.Event()
        self.header_socks = [self._open(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(headers)]
        self.body_socks = [
            self._open(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 1000\r\n\r\n")
            for _ in range(bodies)
        ]
        self.closed_by_server = 0
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)
        self._thread.start()

    def _open(self, head: str) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(head.encode())
        return s

    def _trickle(self) -> None:
        n = 0
        while not self.stop.wait(1.0):
            n += 1
            socks = [(s, b"[") for s in self.body_socks]
            if n % max(1, round(self.interval)) == 0:
                socks += [(s, f"X-Slow-{n}: 1\r\n".encode()) for s in self.header_socks]
            for s, data in socks:
                try:
                    s.sendall(data)
                except OSError:
                    self.closed_by_server += 1

    def still_open(self) -> int:
        """How many slow connections the server has not closed (a peek that does not block)."""
        alive = 0
        for s in self.header_socks + self.body_socks:
            try:
                s.setblocking(False)
                try:
                    alive += s.recv(1, socket.MSG_PEEK) != b""  # b"": closed; data: an answer, still open
                except BlockingIOError:
                    alive += 1  # nothing to read: open and waiting
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    s.setblocking(True)
        return alive

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        for s in self.header_socks + self.body_socks:
            with contextlib.suppress(OSError):
                s.close()


@contextlib.contextmanager
def slow_clients(port: int, path: str, headers: int = 8, bodies: int = 0) -> Iterator[SlowClients]:
    clients = SlowClients(port, path, headers, bodies)
    try:
        yield clients
    finally:
        clients.close()


def answers_while_held(clients: SlowClients, url: str, pings: int = 4, timeout: float = 15.0) -> list[int]:
    """GET ``url`` ``pings`` times, one a second, while ``clients`` keep trickling; the statuses.

    A request that gets no answer within ``timeout`` seconds fails the test:
    the bound is generous (a shared, noisy machine), the point is that an
    answer comes at all while the slow clients hold their connections.
    """
    statuses = []
    for _ in range(pings):
        clients.stop.wait(1.0)  # let the slow clients send another piece in between
        start = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                statuses.append(r.status)
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
        except OSError as e:
            raise AssertionError(f"{url} gave no answer within {time.monotonic() - start:.0f} s while "
                                 f"{len(clients.header_socks)} slow header and {len(clients.body_socks)} slow "
                                 f"body senders held connections: {e}") from None
    return statuses
