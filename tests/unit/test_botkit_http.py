"""The bot's HTTP surface in-process: webhook (verify → parse → persist → 200) and control API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from shared.botkit import build_app
from shared.orchestrator_client import OrchestratorClient, OrchestratorError
from shared.tokens import mint_control_token
from tests.botkit_support import APP_SECRET, VERIFY_TOKEN, FakeOrchestrator, Harness, make_harness
from whatsapp_bot.webhook import sign

DATA = Path(__file__).resolve().parents[1] / "data" / "whatsapp"
KEY = "ab" * 32


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(tmp_path, control_key=KEY):
        yield harness


@pytest.fixture
async def client(h: Harness) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(h.ctx))) as c:
        yield c


def signed(raw: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(raw, APP_SECRET), "Content-Type": "application/json"}


async def test_signed_payload_is_persisted_before_200(h: Harness, client: TestClient) -> None:
    raw = (DATA / "batched.json").read_bytes()
    resp = await client.post("/webhook", data=raw, headers=signed(raw))
    assert resp.status == 200
    rows = h.ctx.store.conn.execute("SELECT provider_message_id FROM inbox").fetchall()
    assert len(rows) == 5
    again = await client.post("/webhook", data=raw, headers=signed(raw))
    assert again.status == 200
    assert h.ctx.store.conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 5


async def test_bad_signature_403_and_nothing_stored(h: Harness, client: TestClient) -> None:
    raw = (DATA / "text.json").read_bytes()
    bad = await client.post(
        "/webhook", data=raw, headers={"X-Hub-Signature-256": sign(raw, "wrong")}
    )
    missing = await client.post("/webhook", data=raw)
    assert (bad.status, missing.status) == (403, 401)
    assert h.ctx.store.conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 0


async def test_not_json_400_and_uninterpretable_200_dead_letter(
    h: Harness, client: TestClient
) -> None:
    raw = b"definitely not json"
    assert (await client.post("/webhook", data=raw, headers=signed(raw))).status == 400
    odd = json.dumps({"object": "whatsapp_business_account", "entry": "nope"}).encode()
    assert (await client.post("/webhook", data=odd, headers=signed(odd))).status == 200
    (letter,) = h.ctx.store.dead_letters()
    assert "nope" in letter["raw"]
    assert letter["reason"].startswith("unparseable")


async def test_unknown_field_is_200_and_ignored(h: Harness, client: TestClient) -> None:
    raw = (DATA / "unknown_field.json").read_bytes()
    assert (await client.post("/webhook", data=raw, headers=signed(raw))).status == 200
    assert h.ctx.store.dead_letters() == []


async def test_body_over_3mb_is_413(h: Harness, client: TestClient) -> None:
    raw = b'{"pad": "' + b"x" * (3 * 1024 * 1024 + 10) + b'"}'
    resp = await client.post("/webhook", data=raw, headers=signed(raw))
    assert resp.status == 413


async def test_status_payload_updates_stored_message(h: Harness, client: TestClient) -> None:
    h.ctx.store.add_message(
        direction="out",
        customer="+16505551234",
        type_="text",
        provider_message_id="wamid.HBgLMTY1MDUwNzY1MjAVAgARGBJTVEFUVVNPVVQwMDAwMDEA",
        status="sent",
    )
    raw = (DATA / "statuses.json").read_bytes()  # sent, read, delivered (out of order)
    assert (await client.post("/webhook", data=raw, headers=signed(raw))).status == 200
    row = h.ctx.store.messages()[0]
    assert row["status"] == "read"


async def test_challenge(client: TestClient) -> None:
    ok = await client.get(
        "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
    )
    assert (ok.status, await ok.text()) == (200, "42")
    bad = await client.get(
        "/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "42"},
    )
    assert bad.status == 403


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_control_auth(client: TestClient) -> None:
    assert (await client.get("/control/health")).status == 401
    wrong_key = mint_control_token("cd" * 32, "support-bot")
    other_bot = mint_control_token(KEY, "other-bot")
    wrong_aud = jwt.encode(
        {"aud": "flotilla-internal", "sub": "support-bot", "exp": 2**31}, KEY, algorithm="HS256"
    )
    expired = jwt.encode(
        {"aud": "flotilla-control", "sub": "support-bot", "exp": 1}, KEY, algorithm="HS256"
    )
    for token in (wrong_key, other_bot, wrong_aud, expired, "garbage"):
        assert (await client.get("/control/health", headers=bearer(token))).status == 403
    resp = await client.get(
        "/control/health", headers=bearer(mint_control_token(KEY, "support-bot"))
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["instance_id"] == "support-bot"
    assert body["kind"] == "whatsapp"
    assert body["inbox_pending"] == 0


async def test_control_send_and_simulate(h: Harness, client: TestClient) -> None:
    token = bearer(mint_control_token(KEY, "support-bot"))
    resp = await client.post(
        "/control/simulate",
        headers=token,
        json={
            "from": "+1 555 010 0001",
            "text": "zxqv hi",
            "payload": None,
            "profile_name": "Tester",
        },
    )
    assert resp.status == 202
    inbox_id = (await resp.json())["inbox_id"]
    row = h.ctx.store.inbox_get(inbox_id)
    assert row is not None
    assert row.message.customer.phone == "+15550100001"
    await h.process_inbox()
    resp = await client.post(
        "/control/send", headers=token, json={"to": "+15550100001", "text": "Operator here"}
    )
    assert resp.status == 202
    outbox_id = (await resp.json())["outbox_id"]
    row_out = h.ctx.store.outbox_get(outbox_id)
    assert row_out is not None
    assert row_out.origin == "operator"
    assert row_out.reply == {"type": "text", "text": "Operator here"}
    assert row_out.user_id is not None  # matched the customer who wrote
    bad = await client.post("/control/send", headers=token, json={"to": "", "text": "x"})
    assert bad.status == 422


async def test_control_reload_switches_config(h: Harness, client: TestClient) -> None:
    h.orch.config = {**h.orch.config, "fallback_text": "NEW FALLBACK"}
    resp = await client.post(
        "/control/reload", headers=bearer(mint_control_token(KEY, "support-bot"))
    )
    assert resp.status == 200
    assert h.ctx.fallback_text == "NEW FALLBACK"


async def test_client_retries_config_and_propagates_request_id(h: Harness) -> None:
    from shared.logging import request_id_var

    h.orch.config_failures = 2
    client = OrchestratorClient(h.orch.url, h.orch.token(), "support-bot")
    token = request_id_var.set("req-123")
    try:
        config = await client.fetch_config(base_delay_s=0.01)
        assert config["id"] == "support-bot"
        assert await client.llm_reply("x", [], "+1") is None  # 404 → None
        h.orch.llm_status = 500
        assert await client.llm_reply("x", [], "+1") is None
    finally:
        request_id_var.reset(token)
        await client.close()
    assert h.orch.request_ids[-1] == "req-123"


async def test_client_does_not_retry_refused_token() -> None:
    orch = FakeOrchestrator(config={"id": "x"})
    async with TestServer(orch.app()) as server:
        client = OrchestratorClient(str(server.make_url("")), "", "x")
        client.token = ""
        with pytest.raises(OrchestratorError, match="refused"):
            await client.fetch_config(base_delay_s=0.01)
        await client.close()


def test_refresh_scheduled_before_expiry() -> None:
    orch = FakeOrchestrator(config={})
    client = OrchestratorClient("http://x", orch.token(ttl_s=3600), "support-bot")
    wait = client.seconds_until_refresh()
    assert 3200 <= wait <= 3300  # five minutes before exp
    short = OrchestratorClient("http://x", orch.token(ttl_s=60), "support-bot")
    assert 0 < short.seconds_until_refresh() <= 48
