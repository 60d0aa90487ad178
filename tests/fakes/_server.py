"""Run a small aiohttp app on a free loopback port, with scripted faults."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    """One scripted failure: answer ``status`` (with ``Retry-After`` if set) instead."""

    status: int
    retry_after: float | None = None
    delay_s: float = 0.0


@dataclass
class FakeState:
    """What a fake received and what it will do next."""

    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def fail_next(self, *statuses: int, retry_after: float | None = None) -> None:
        """Answer the next requests with these statuses, in order."""
        self.faults.extend(Fault(s, retry_after) for s in statuses)

    def fail_always(self, status: int, count: int = 100) -> None:
        """Answer the next ``count`` requests with ``status``."""
        self.faults.extend(Fault(status) for _ in range(count))

    def hang_next(self, seconds: float) -> None:
        """Sleep ``seconds`` before answering the next request (timeouts)."""
        self.faults.append(Fault(0, delay_s=seconds))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL (``http://127.0.0.1:PORT``)."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
