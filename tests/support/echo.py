"""A tiny recording HTTP server standing in for a bot's port behind ``/hooks``: it keeps every
request it receives (method, raw path, headers, body) and answers 200 with a ``Set-Cookie``."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Send this ``X-Request-ID`` to make the echo server answer only after ``SLOW_S`` seconds.
SLOW_REQUEST_ID = "echo-slow"
SLOW_S = 4.0


@dataclass
class Seen:
    """One request as the backend got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class EchoServer:
    """Records requests on ``127.0.0.1:port`` in a background thread."""

    def __init__(self, port: int) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with echo._lock:
                    echo.seen.append(
                        Seen(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                if self.headers.get("X-Request-ID") == SLOW_REQUEST_ID:
                    time.sleep(SLOW_S)
                answer = b"echo:" + body[:100]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Set-Cookie", "session=from-the-bot; Path=/")
                self.send_header("Server", "echo-backend/1.0")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

            def do_HEAD(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = port
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def port_in(start: int, end: int, taken: set[int] | None = None) -> int:
    """A free port in ``start..end`` (inclusive) not in ``taken``."""
    for port in range(start, end + 1):
        if taken and port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{end}")
