"""The sandbox application: providers + control API, and ways to run it in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from types import ModuleType, TracebackType
from typing import Any

from aiohttp import web

from shared.sandbox import control, graph_api, telegram_api, twilio_api
from shared.sandbox.common import BODY_KEY, SEQ_KEY, STATE_KEY, mask_headers, read_body
from shared.sandbox.state import (
    DEFAULT_MAX_MESSAGES,
    DEFAULT_MAX_REQUESTS,
    RecordedRequest,
    SandboxState,
)

logger = logging.getLogger(__name__)

# Meta accepts media up to 100 MB (documents); the sandbox keeps a generous margin below that.
CLIENT_MAX_SIZE = 64 * 1024 * 1024

_PROVIDER_MODULES: tuple[tuple[str, str, ModuleType], ...] = (
    (graph_api.PREFIX + "/", "graph", graph_api),
    (twilio_api.PREFIX + "/", "twilio", twilio_api),
    (telegram_api.PREFIX + "/", "telegram", telegram_api),
)
_TELEGRAM_TOKEN_IN_PATH = re.compile(r"^(/telegram/(?:file/)?bot\d+:)[^/]+")


def _provider_of(path: str) -> tuple[str, ModuleType] | None:
    for prefix, name, module in _PROVIDER_MODULES:
        if path.startswith(prefix):
            return name, module
    return None


def _response_payload(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response) or response.body is None:
        return None
    body = response.body
    if not isinstance(body, bytes | bytearray):
        return None
    if response.content_type == "application/json":
        try:
            return json.loads(body)
        except ValueError:
            return None
    return {"content_type": response.content_type, "size": len(body)}


@web.middleware
async def record_provider_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    """Parse, fault-inject and record every request to a provider route."""
    found = _provider_of(request.path)
    if found is None:
        return await handler(request)  # type: ignore[no-any-return]
    provider, module = found
    state = request.app[STATE_KEY]
    seq = state.next_request_seq()
    request[SEQ_KEY] = seq
    ts = time.time()
    started = time.monotonic()
    body = await read_body(request)
    request[BODY_KEY] = body
    rule = state.faults.pick(provider, request.path)
    if rule is not None and rule.mode == "slow":
        await asyncio.sleep(rule.delay)
    response: web.StreamResponse
    if rule is not None and rule.mode != "slow":
        response = module.fault_response(rule)
    else:
        try:
            response = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            response = module.not_found_response(request)
    logged_json, logged_form = body.for_log()
    path = _TELEGRAM_TOKEN_IN_PATH.sub(r"\1***", request.path)
    state.record(
        RecordedRequest(
            seq=seq,
            provider=provider,
            method=request.method,
            path=path,
            query={k: request.query.get(k) for k in request.query},
            headers=mask_headers(request.headers),
            json=logged_json,
            form=logged_form,
            status=response.status,
            response=_response_payload(response),
            fault=rule.mode if rule is not None else None,
            ts=ts,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
        )
    )
    logger.debug("%s %s %s -> %s", provider, request.method, path, response.status)
    return response


def create_app(
    *,
    seed: int | None = 0,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    max_messages: int = DEFAULT_MAX_MESSAGES,
) -> web.Application:
    """Build the sandbox application.

    Args:
        seed: seed of the RNG that decides which requests a ``rate`` fault hits.
        max_requests: how many requests the log keeps (oldest dropped first).
        max_messages: how many accepted outbound messages are kept.

    Returns:
        An aiohttp application serving ``/graph``, ``/twilio``, ``/telegram`` and
        ``/_sandbox``; its state is ``app[STATE_KEY]``.
    """
    app = web.Application(middlewares=[record_provider_requests], client_max_size=CLIENT_MAX_SIZE)
    state = SandboxState(seed=seed, max_requests=max_requests, max_messages=max_messages)
    app[STATE_KEY] = state

    async def start_webhooks(_app: web.Application) -> None:
        await state.webhooks.start()

    async def stop_webhooks(_app: web.Application) -> None:
        await state.webhooks.stop()

    app.on_startup.append(start_webhooks)
    app.on_cleanup.append(stop_webhooks)
    graph_api.add_routes(app)
    twilio_api.add_routes(app)
    telegram_api.add_routes(app)
    control.add_routes(app)
    return app


async def start_sandbox(
    host: str = "127.0.0.1", port: int = 0, **app_options: Any
) -> tuple[web.AppRunner, web.Application]:
    """Start the sandbox on the running event loop.

    Args:
        host: interface to bind (keep loopback unless a container needs otherwise).
        port: TCP port; 0 picks a free one (read it from ``runner.addresses``).
        **app_options: passed to :func:`create_app`.

    Returns:
        ``(runner, app)``; stop it with ``await runner.cleanup()``.
    """
    app = create_app(**app_options)
    # No access log: Telegram paths carry bot tokens; the middleware logs masked paths.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, app


class Sandbox:
    """The sandbox as an object: ``await Sandbox().start()``, ``.url``, ``await .stop()``.

    Also an async context manager. ``.state`` gives direct access to what it recorded.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> None:
        self.host = host
        self.port = port
        self._app_options = app_options
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None

    async def start(self) -> Sandbox:
        """Bind and serve; returns ``self`` once the port accepts connections."""
        self._runner, self._app = await start_sandbox(self.host, self.port, **self._app_options)
        address = self._runner.addresses[0]
        self.port = int(address[1])
        logger.info("sandbox providers listening on %s", self.url)
        return self

    async def stop(self) -> None:
        """Stop serving and release the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8090`` (providers live under its prefixes)."""
        return f"http://{self.host}:{self.port}"

    @property
    def graph_url(self) -> str:
        """Value for a WhatsApp bot's ``graph_api_base_url``."""
        return self.url + graph_api.PREFIX

    @property
    def twilio_url(self) -> str:
        """Value for the Twilio SDK's ``client.api.base_url``."""
        return self.url + twilio_api.PREFIX

    @property
    def telegram_url(self) -> str:
        """Prefix for ``{telegram_url}/bot{token}/{method}`` (python-telegram-bot ``base_url``
        is ``telegram_url + "/bot"``)."""
        return self.url + telegram_api.PREFIX

    @property
    def app(self) -> web.Application:
        """The running aiohttp application."""
        if self._app is None:
            raise RuntimeError("sandbox is not started")
        return self._app

    @property
    def state(self) -> SandboxState:
        """What the sandbox recorded (requests, messages, faults)."""
        return self.app[STATE_KEY]

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class SandboxThread:
    """The sandbox on its own event loop in a daemon thread, for synchronous tests.

    Use as ``with SandboxThread() as sandbox: ...`` or ``start()`` / ``stop()``. Read recorded
    data through the HTTP control API (``/_sandbox/*``) rather than ``state``: the state belongs
    to the sandbox's thread.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **app_options: Any) -> None:
        self.sandbox = Sandbox(host, port, **app_options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self.sandbox.start())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.sandbox.stop())
            loop.close()

    def start(self, timeout: float = 10.0) -> SandboxThread:
        """Start the thread and wait until the sandbox accepts connections."""
        self._thread = threading.Thread(target=self._run, name="flotilla-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("sandbox did not start in time")
        if self._error is not None:
            raise RuntimeError("sandbox failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the sandbox and join its thread."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None

    @property
    def url(self) -> str:
        """Base URL of the running sandbox."""
        return self.sandbox.url

    @property
    def state(self) -> SandboxState:
        """The sandbox state (read-only use from other threads, at your own risk)."""
        return self.sandbox.state

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
