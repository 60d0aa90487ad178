"""Test seams for the bot runtime: the real sandbox Graph API and a tiny fake internal API.

The fake orchestrator serves only the four internal routes a bot calls (config, events, token
refresh, llm reply) and records what it received; it is the thin seam named in the brief. The
provider side is the real sandbox app (``shared.sandbox``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.botkit import BotContext, BotSettings, create_context
from shared.orchestrator_client import OrchestratorClient
from shared.sandbox.server import create_app as create_sandbox_app
from shared.store import BotStore
from shared.tokens import mint_internal_token
from whatsapp_bot.channel import WhatsAppChannel

INTERNAL_SECRET = "internal-secret-for-tests-0123456789abcdef"
APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "verify-me"
PHONE_NUMBER_ID = "106540352242922"


@dataclass
class FakeOrchestrator:
    """Records what a bot posts; ``llm_answer`` None → 404 like before the AI issue lands."""

    config: dict[str, Any]
    instance_id: str = "support-bot"
    events: list[dict[str, Any]] = field(default_factory=list)
    llm_requests: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)
    llm_answer: str | None = None
    llm_escalate: bool = False  # the backend's "a person should answer"
    llm_reason: str = ""  # why it escalates ("ask_for_person": the model recognised a request)
    llm_status: int = 404
    llm_warming: int = 0  # answer this many replies 503 + Retry-After (models loading)
    config_failures: int = 0
    refreshes: int = 0
    url: str = ""

    def token(self, ttl_s: int = 3600) -> str:
        return mint_internal_token(
            INTERNAL_SECRET, self.instance_id, kind="whatsapp", gen=1, ttl_s=ttl_s
        )

    def app(self) -> web.Application:
        async def config(request: web.Request) -> web.Response:
            self.request_ids.append(request.headers.get("X-Request-ID"))
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                return web.json_response({"detail": "no token"}, status=401)
            if self.config_failures > 0:
                self.config_failures -= 1
                return web.json_response({"detail": "starting"}, status=503)
            return web.json_response(self.config)

        async def events(request: web.Request) -> web.Response:
            self.events.append(await request.json())
            return web.json_response({"ok": True}, status=202)

        async def refresh(request: web.Request) -> web.Response:
            self.refreshes += 1
            return web.json_response({"token": self.token(), "expires_in": 3600})

        async def llm(request: web.Request) -> web.Response:
            self.request_ids.append(request.headers.get("X-Request-ID"))
            if self.llm_warming > 0:
                self.llm_warming -= 1
                return web.json_response(
                    {"detail": "warming up"}, status=503, headers={"Retry-After": "1"}
                )
            self.llm_requests.append(await request.json())
            if self.llm_answer is None:
                return web.json_response({"detail": "Not Found"}, status=self.llm_status)
            return web.json_response(
                {
                    "text": self.llm_answer,
                    "confidence": 0.9,
                    "sources": [],
                    "usage": {},
                    "escalate": self.llm_escalate,
                    "reason": self.llm_reason,
                }
            )

        app = web.Application()
        app.router.add_get("/internal/config", config)
        app.router.add_post("/internal/events", events)
        app.router.add_post("/internal/token/refresh", refresh)
        app.router.add_post("/internal/llm/reply", llm)
        return app


def wa_config(graph_url: str, port: int = 0, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "id": "support-bot",
        "kind": "whatsapp",
        "name": "Support",
        "webhook_port": port,
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": "EAAG-test-token",
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "graph_api_base_url": graph_url,
        "graph_api_version": "v21.0",
        "wa_template_name": "",
        "wa_template_language": "en_US",
        "allowed_phones": [],
        "blocked_phones": [],
        "rate_limit_count": 0,
        "rate_limit_hours": 0,
        "funnel": None,
        "fallback_text": "FALLBACK: a person will answer soon.",
        "wa_mark_read": False,
    }
    config.update(overrides)
    return config


class Clock:
    """A movable clock for windows and back-off."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Harness:
    ctx: BotContext
    orch: FakeOrchestrator
    sandbox_url: str
    http: aiohttp.ClientSession
    clock: Clock

    async def process_inbox(self) -> None:
        assert self.ctx.inbox is not None
        for _ in range(100):
            await asyncio.sleep(0)
        assert await self.ctx.inbox.wait_idle(5)

    async def flush_outbox(self) -> None:
        """Send every row due now (the worker's loop body, driven by the test)."""
        assert self.ctx.outbox is not None
        while True:
            rows = self.ctx.store.outbox_due(now=self.clock())
            if not rows:
                return
            for row in rows:
                await self.ctx.outbox.send_row(row)

    async def settle(self) -> None:
        await self.process_inbox()
        await self.flush_outbox()

    async def sent(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"provider": "graph"}
        if to:
            params["to"] = to
        async with self.http.get(f"{self.sandbox_url}/_sandbox/messages", params=params) as r:
            return (await r.json())["messages"]  # type: ignore[no-any-return]

    async def fault(self, **spec: Any) -> None:
        async with self.http.post(
            f"{self.sandbox_url}/_sandbox/faults", json={"provider": "graph", **spec}
        ) as r:
            assert r.status == 201, await r.text()


async def start_servers(
    orch: FakeOrchestrator,
) -> tuple[TestServer, TestServer]:
    sandbox = TestServer(create_sandbox_app(), host="127.0.0.1")
    await sandbox.start_server()
    fake = TestServer(orch.app(), host="127.0.0.1")
    await fake.start_server()
    orch.url = str(fake.make_url("")).rstrip("/")
    return sandbox, fake


async def make_harness(
    tmp_path: Path, *, control_key: str = "ab" * 32, **config: Any
) -> AsyncIterator[Harness]:
    orch = FakeOrchestrator(config={})
    sandbox, fake = await start_servers(orch)
    sandbox_url = str(sandbox.make_url("")).rstrip("/")
    orch.config = wa_config(f"{sandbox_url}/graph", **config)
    settings = BotSettings(
        instance_id="support-bot",
        kind="whatsapp",
        internal_token=orch.token(),
        orchestrator_url=orch.url,
        control_key=control_key,
        data_dir=tmp_path,
        port=None,
        host="127.0.0.1",
        log_level="INFO",
    )
    http = aiohttp.ClientSession()
    client = OrchestratorClient(orch.url, settings.internal_token, settings.instance_id)
    clock = Clock()
    ctx = create_context(
        WhatsAppChannel(),
        settings,
        orch.config,
        http=http,
        client=client,
        store=BotStore.open(tmp_path / "wa_sales_support-bot.db"),
    )
    ctx.clock = clock
    try:
        yield Harness(ctx=ctx, orch=orch, sandbox_url=sandbox_url, http=http, clock=clock)
    finally:
        await client.close()
        await http.close()
        ctx.store.close()
        await sandbox.close()
        await fake.close()


MakeHarness = Callable[..., AsyncIterator[Harness]]
