"""The sandbox sends Meta-like status webhooks (and Twilio status callbacks) after it accepts a
message: signed, in the background, retried until the receiver answers 200."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator
from yarl import URL

from shared.sandbox import Sandbox

PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "sandbox-hook-secret"
AUTH = {"Authorization": "Bearer EAAG-sandbox-token"}


@dataclass
class Receiver:
    """A bot stand-in: records every webhook and answers ``fail_first`` 500s first."""

    fail_first: int = 0
    hang_s: float = 0.0
    received: list[tuple[bytes, dict[str, str], str]] = field(default_factory=list)
    attempts: int = 0
    got: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            self.attempts += 1
            raw = await request.read()
            if self.hang_s:
                await asyncio.sleep(self.hang_s)
            if self.attempts <= self.fail_first:
                return web.Response(status=500)
            self.received.append((raw, dict(request.headers), str(request.url)))
            self.got.set()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/webhook", hook)
        app.router.add_post("/status", hook)
        return app


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def serve(receiver: Receiver) -> TestServer:
    server = TestServer(receiver.app(), host="127.0.0.1")
    await server.start_server()
    receiver.url = str(server.make_url("/webhook"))
    return server


async def register(http: aiohttp.ClientSession, sandbox: Sandbox, url: str) -> None:
    spec = {"provider": "graph", "phone_number_id": PHONE_NUMBER_ID, "url": url,
            "app_secret": APP_SECRET}
    async with http.post(f"{sandbox.url}/_sandbox/webhooks", json=spec) as res:
        assert res.status == 201, await res.text()
        assert APP_SECRET not in await res.text()


async def send_text(
    http: aiohttp.ClientSession, sandbox: Sandbox, **extra: Any
) -> tuple[int, dict[str, Any]]:
    payload = {"messaging_product": "whatsapp", "to": "48600100200", "type": "text",
               "text": {"body": "hello"}, **extra}
    url = f"{sandbox.graph_url}/v21.0/{PHONE_NUMBER_ID}/messages"
    async with http.post(url, json=payload, headers=AUTH) as res:
        return res.status, await res.json()


async def test_accepted_message_gets_a_signed_sent_status_with_callback_data(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver()
    server = await serve(receiver)
    try:
        await register(http, sandbox, receiver.url)
        status, body = await send_text(http, sandbox, biz_opaque_callback_data="ob:7:0")
        assert status == 200
        wamid = body["messages"][0]["id"]
        await asyncio.wait_for(receiver.got.wait(), 5)
        raw, headers, _url = receiver.received[0]
        expected = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == expected
        data = json.loads(raw)
        value = data["entry"][0]["changes"][0]["value"]
        assert value["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
        (st,) = value["statuses"]
        assert st["id"] == wamid
        assert st["status"] == "sent"
        assert st["recipient_id"] == "48600100200"
        assert st["biz_opaque_callback_data"] == "ob:7:0"
        assert abs(int(st["timestamp"]) - time.time()) < 60
    finally:
        await server.close()


async def test_status_without_callback_data_omits_the_field(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver()
    server = await serve(receiver)
    try:
        await register(http, sandbox, receiver.url)
        await send_text(http, sandbox)
        await asyncio.wait_for(receiver.got.wait(), 5)
        value = json.loads(receiver.received[0][0])["entry"][0]["changes"][0]["value"]
        assert "biz_opaque_callback_data" not in value["statuses"][0]
    finally:
        await server.close()


async def test_failed_deliveries_are_retried_until_200(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver(fail_first=3)
    server = await serve(receiver)
    try:
        await register(http, sandbox, receiver.url)
        await send_text(http, sandbox, biz_opaque_callback_data="ob:1:0")
        await asyncio.wait_for(receiver.got.wait(), 10)
        assert receiver.attempts == 4
        assert len(receiver.received) == 1
        async with http.get(f"{sandbox.url}/_sandbox/webhooks") as res:
            info = await res.json()
        assert info["stats"]["delivered"] == 1
        assert info["stats"]["failed_attempts"] == 3
        assert info["webhooks"][0]["app_secret"] == "***"
    finally:
        await server.close()


async def test_receiver_down_then_up_still_gets_the_status(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver()
    server = await serve(receiver)
    port = server.port
    url = receiver.url
    await server.close()  # the bot is down (killed) when the message is accepted
    await register(http, sandbox, url)
    await send_text(http, sandbox, biz_opaque_callback_data="ob:2:0")
    await asyncio.sleep(0.5)
    again = TestServer(receiver.app(), host="127.0.0.1", port=port)
    await again.start_server()
    try:
        await asyncio.wait_for(receiver.got.wait(), 15)
        st = json.loads(receiver.received[0][0])["entry"][0]["changes"][0]["value"]["statuses"]
        assert st[0]["biz_opaque_callback_data"] == "ob:2:0"
    finally:
        await again.close()


async def test_a_slow_receiver_never_delays_the_send_answer(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver(hang_s=3)
    server = await serve(receiver)
    try:
        await register(http, sandbox, receiver.url)
        started = time.monotonic()
        status, _ = await send_text(http, sandbox)
        assert status == 200
        assert time.monotonic() - started < 1.0
    finally:
        await server.close()


async def test_delete_and_reset_forget_registrations(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver()
    server = await serve(receiver)
    try:
        await register(http, sandbox, receiver.url)
        async with http.delete(f"{sandbox.url}/_sandbox/webhooks") as res:
            assert (await res.json())["removed"] == 1
        await send_text(http, sandbox)
        await register(http, sandbox, receiver.url)
        async with http.post(f"{sandbox.url}/_sandbox/reset") as res:
            assert res.status == 200
        await send_text(http, sandbox)
        await asyncio.sleep(0.3)
        assert receiver.attempts == 0
    finally:
        await server.close()


async def test_registration_is_validated(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    url = f"{sandbox.url}/_sandbox/webhooks"
    async with http.post(url, json={"provider": "graph", "url": "http://x/"}) as res:
        assert res.status == 400
        assert "phone_number_id" in (await res.json())["error"]
    async with http.post(url, json={"provider": "telegram", "phone_number_id": "1",
                                    "url": "http://x/", "app_secret": "s"}) as res:
        assert res.status == 400


async def test_callback_data_over_512_characters_is_refused(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await send_text(http, sandbox, biz_opaque_callback_data="x" * 513)
    assert status == 400
    assert "biz_opaque_callback_data" in body["error"]["error_data"]["details"]
    status, _ = await send_text(http, sandbox, biz_opaque_callback_data="x" * 512)
    assert status == 200


async def test_twilio_status_callback_is_called_signed(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    receiver = Receiver()
    server = await serve(receiver)
    account, token = "AC" + "1" * 32, "twilio-auth-token"
    callback = str(server.make_url("/status")) + "?ob=ob%3A5%3A1"
    try:
        basic = base64.b64encode(f"{account}:{token}".encode()).decode()
        url = f"{sandbox.twilio_url}/2010-04-01/Accounts/{account}/Messages.json"
        form = {"To": "+15550001111", "From": "+15550002222", "Body": "hi",
                "StatusCallback": callback}
        async with http.post(url, data=form, headers={"Authorization": f"Basic {basic}"}) as res:
            assert res.status == 201
            sid = (await res.json())["sid"]
        await asyncio.wait_for(receiver.got.wait(), 5)
        raw, headers, called = receiver.received[0]
        fields = dict(parse_qsl(raw.decode()))
        assert fields["MessageSid"] == sid
        assert fields["MessageStatus"] == "sent"
        assert URL(called).query["ob"] == "ob:5:1"  # the tag comes back with the callback
        assert RequestValidator(token).validate(callback, fields, headers["X-Twilio-Signature"])
    finally:
        await server.close()
