"""Run an aiohttp fake (tests/fakes) on its own event loop in a daemon thread.

Sync tests (``TestClient``, subprocesses) block their thread while they wait for the app, so a
fake served on the test's own loop could never answer; this one always can.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from tests.fakes._server import free_port


@contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 from a background thread; yield its base URL."""
    loop = asyncio.new_event_loop()
    port = free_port()
    ready = threading.Event()
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-server", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
