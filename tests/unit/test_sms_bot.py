"""sms_bot: Twilio signature checks, form parsing, numbered rendering, the adapter against the
sandbox through the real ``twilio`` SDK, and the webhook handlers in-process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from shared.botkit import BotSettings, build_app, create_context
from shared.botkit.context import BotContext
from shared.channels.base import (
    AudioReply,
    Button,
    ButtonsReply,
    CustomerRef,
    ListReply,
    ListRow,
    ListSection,
    SendError,
    TextReply,
)
from shared.routing import reply_options
from shared.sandbox import Sandbox
from shared.store import BotStore
from sms_bot.adapter import TwilioAdapter
from sms_bot.channel import SmsChannel
from sms_bot.parse import FormError, SenderError, parse_inbound, parse_status
from sms_bot.render import BODY_MAX, render
from sms_bot.webhook import EMPTY_TWIML, WebhookError, decode_form, sign, verify_signature

DATA = Path(__file__).resolve().parents[1] / "data" / "twilio"
ACCOUNT_SID = "AC00000000000000000000000000000001"
AUTH_TOKEN = "twilio-auth-token-for-tests"
PUBLIC = "https://bots.example.com/hooks/sms/shop"


def fields(name: str) -> dict[str, str]:
    return json.loads((DATA / name).read_text())  # type: ignore[no-any-return]


# -- signature -------------------------------------------------------------------------------


def test_signature_computed_by_twilio_validator_is_accepted() -> None:
    form = fields("inbound_sms.json")
    url = f"{PUBLIC}/webhook"
    verify_signature(url, form, sign(url, form, AUTH_TOKEN), AUTH_TOKEN)


def test_signature_follows_twilios_scheme() -> None:
    # Twilio's documented scheme, computed by hand: HMAC-SHA1 over the URL followed by every
    # field name and value sorted by name, base64-encoded.
    url = "https://example.com/myapp?foo=1&bar=2"
    form = {"To": "+18005551212", "Body": "hi", "From": "+12349013030"}
    data = url + "".join(f"{k}{form[k]}" for k in sorted(form))
    expected = base64.b64encode(hmac.new(b"12345", data.encode(), hashlib.sha1).digest()).decode()
    verify_signature(url, form, expected, "12345")
    with pytest.raises(WebhookError):
        verify_signature(url.replace("foo=1", "foo=2"), form, expected, "12345")


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda url, form, sig: (url, form, None), 401),
        (lambda url, form, sig: (url, form, ""), 401),
        (lambda url, form, sig: (url, {**form, "Body": "tampered"}, sig), 403),
        (lambda url, form, sig: (url.replace("/webhook", "/status"), form, sig), 403),
        (lambda url, form, sig: (url, form, sign(url, form, "other-token")), 403),
    ],
)
def test_signature_refusals(mutate: Any, status: int) -> None:
    form = fields("inbound_sms.json")
    url = f"{PUBLIC}/webhook"
    url, form, sig = mutate(url, form, sign(url, form, AUTH_TOKEN))
    with pytest.raises(WebhookError) as info:
        verify_signature(url, form, sig, AUTH_TOKEN)
    assert info.value.status == status


def test_no_auth_token_configured_refuses_everything() -> None:
    form = fields("inbound_sms.json")
    with pytest.raises(WebhookError) as info:
        verify_signature(PUBLIC, form, sign(PUBLIC, form, ""), "")
    assert info.value.status == 403


def test_decode_form_keeps_repeated_fields_and_refuses_garbage() -> None:
    form = decode_form(b"A=1&A=2&Body=hello+world")
    assert form.getall("A") == ["1", "2"]
    assert form["Body"] == "hello world"
    with pytest.raises(WebhookError) as info:
        decode_form(b"\xff\xfe\x00")
    assert info.value.status == 400


# -- parsing ---------------------------------------------------------------------------------


def test_parse_inbound_sms() -> None:
    message = parse_inbound(fields("inbound_sms.json"))
    assert message.provider_message_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert message.customer.phone == "+14155550123"
    assert message.kind == "text"
    assert message.text == "hi"


def test_parse_inbound_mms() -> None:
    message = parse_inbound(fields("inbound_mms.json"))
    assert message.kind == "image"
    assert message.media_mime == "image/jpeg"
    assert message.media_id
    assert message.media_id.startswith("https://api.twilio.com/")
    assert message.text == "photo of my rack"


def test_parse_inbound_normalises_the_sender_to_e164() -> None:
    form = {**fields("inbound_sms.json"), "From": "0048 600-100-200"}
    assert parse_inbound(form).customer.phone == "+48600100200"


def test_parse_inbound_refusals() -> None:
    base = fields("inbound_sms.json")
    with pytest.raises(FormError):
        parse_inbound({k: v for k, v in base.items() if "Sid" not in k})
    with pytest.raises(FormError):
        parse_inbound({k: v for k, v in base.items() if k != "From"})
    with pytest.raises(FormError):
        parse_inbound({**base, "NumMedia": "lots"})
    with pytest.raises(SenderError):
        parse_inbound({**base, "From": "ACME"})


def test_parse_status_delivered_and_undelivered() -> None:
    delivered = parse_status(fields("status_delivered.json"))
    assert delivered is not None
    assert (delivered.status, delivered.error_code) == ("delivered", None)
    failed = parse_status(fields("status_undelivered.json"))
    assert failed is not None
    assert failed.status == "failed"
    assert failed.error_code == 30003
    assert failed.error
    assert "30003" in failed.error


@pytest.mark.parametrize("status", ["queued", "sending", "accepted", "something_new"])
def test_parse_status_ignores_intermediate_states(status: str) -> None:
    assert parse_status({**fields("status_delivered.json"), "MessageStatus": status}) is None


def test_parse_status_requires_sid_and_status() -> None:
    with pytest.raises(FormError):
        parse_status({"MessageStatus": "sent"})
    with pytest.raises(FormError):
        parse_status({"MessageSid": "SM1"})


# -- rendering -------------------------------------------------------------------------------


def test_buttons_render_as_numbered_options_in_reply_options_order() -> None:
    reply = ButtonsReply(
        text="Hello *Anna*! Pick one:",
        buttons=[Button("sales:seg:diy", "DIY"), Button("sales:seg:basic", "Basic"),
                 Button("sales:seg:custom", "Custom")],
    )
    (body,) = render(reply)
    assert body.startswith("Hello Anna! Pick one:")
    assert "*" not in body
    lines = [line for line in body.splitlines() if line[:1].isdigit()]
    assert lines == ["1. DIY", "2. Basic", "3. Custom"]
    # Digit N selects reply_options()[N-1]: the same order the router maps back.
    assert [title for _cb, title in reply_options(reply)] == ["DIY", "Basic", "Custom"]


def test_list_rows_are_numbered_across_sections_with_descriptions() -> None:
    reply = ListReply(
        text="FAQ",
        button="Topics",
        sections=[
            ListSection("Product", [ListRow("faq:what_is", "What is it?", "in short")]),
            ListSection("Navigation", [ListRow("nav:menu", "Main menu")]),
        ],
    )
    (body,) = render(reply)
    assert "1. What is it? - in short" in body
    assert "2. Main menu" in body


def test_long_text_is_split_under_twilio_limit_and_options_stay_at_the_end() -> None:
    paragraph = ("word " * 60).strip()
    text = "\n\n".join([paragraph] * 12)  # about 3,600 characters
    bodies = render(ButtonsReply(text=text, buttons=[Button("nav:menu", "Menu")]))
    assert len(bodies) >= 3
    assert all(len(b) <= BODY_MAX for b in bodies)
    assert bodies[-1].rstrip().endswith("Reply with a number.")
    assert "1. Menu" in bodies[-1]


def test_blank_text_renders_nothing_and_audio_is_refused() -> None:
    assert render(TextReply("   ")) == []
    with pytest.raises(ValueError, match="SMS"):
        render(AudioReply(media_id="x"))


# -- adapter against the sandbox (real twilio SDK) ------------------------------------------


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(port=0) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def add_fault(http: aiohttp.ClientSession, sandbox: Sandbox, **spec: Any) -> None:
    async with http.post(
        f"{sandbox.url}/_sandbox/faults", json={"provider": "twilio", **spec}
    ) as r:
        assert r.status == 201, await r.text()


def adapter(http: aiohttp.ClientSession, sandbox: Sandbox, **kw: Any) -> TwilioAdapter:
    options: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "base_url": sandbox.twilio_url,
        "from_number": "+15005550006",
    }
    options.update(kw)
    return TwilioAdapter(http, **options)


async def test_adapter_sends_numbered_sms_with_status_callback(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    twilio = adapter(http, sandbox, status_callback=f"{PUBLIC}/status")
    reply = ButtonsReply(text="Choose", buttons=[Button("a:b", "First"), Button("c:d", "Second")])
    ids = await twilio.send(CustomerRef(phone="+14155550123"), reply)
    assert len(ids) == 1
    assert ids[0].startswith("SM")
    (sent,) = sandbox.state.find_messages(provider="twilio", to="+14155550123")
    assert sent.message_id == ids[0]
    assert sent.payload["From"] == "+15005550006"
    assert sent.payload["StatusCallback"] == f"{PUBLIC}/status"
    assert "1. First\n2. Second" in (sent.text or "")


async def test_adapter_prefers_the_messaging_service(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    twilio = adapter(http, sandbox, messaging_service_sid="MG00000000000000000000000000000002")
    await twilio.send(CustomerRef(phone="+14155550123"), TextReply("hello"))
    (sent,) = sandbox.state.find_messages(provider="twilio")
    assert sent.payload["MessagingServiceSid"] == "MG00000000000000000000000000000002"
    assert "From" not in sent.payload
    assert "StatusCallback" not in sent.payload


async def test_adapter_429_is_retryable_with_retry_after(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await add_fault(http, sandbox, mode="429", count=1, retry_after=7)
    twilio = adapter(http, sandbox)
    with pytest.raises(SendError) as info:
        await twilio.send(CustomerRef(phone="+14155550123"), TextReply("hello"))
    assert info.value.retryable is True
    assert info.value.retry_after == 7
    assert info.value.code == 20429
    # The fault was used up: the retry goes through.
    assert await twilio.send(CustomerRef(phone="+14155550123"), TextReply("hello"))


async def test_adapter_5xx_is_retryable(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    await add_fault(http, sandbox, mode="500", count=1)
    with pytest.raises(SendError) as info:
        await adapter(http, sandbox).send(CustomerRef(phone="+14155550123"), TextReply("x"))
    assert info.value.retryable is True


@pytest.mark.parametrize("code", [21610, 21211])
async def test_adapter_unsubscribed_and_invalid_number_are_permanent(
    sandbox: Sandbox, http: aiohttp.ClientSession, code: int
) -> None:
    await add_fault(http, sandbox, mode="error", count=1, error_code=code)
    with pytest.raises(SendError) as info:
        await adapter(http, sandbox).send(CustomerRef(phone="+14155550123"), TextReply("x"))
    assert info.value.retryable is False
    assert info.value.code == code


async def test_adapter_refuses_before_calling_twilio(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(SendError, match="no phone"):
        await adapter(http, sandbox).send(CustomerRef(telegram_id="1"), TextReply("x"))
    with pytest.raises(SendError, match="sender"):
        await adapter(http, sandbox, from_number="").send(
            CustomerRef(phone="+14155550123"), TextReply("x")
        )
    with pytest.raises(SendError) as info:
        await adapter(http, sandbox).send(CustomerRef(phone="+14155550123"), AudioReply(b"x"))
    assert info.value.retryable is False
    assert sandbox.state.find_messages(provider="twilio") == []


async def test_adapter_wrong_credentials_are_permanent(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    twilio = adapter(http, sandbox, account_sid="AC" + "9" * 32)
    twilio.auth_token = ""
    with pytest.raises(SendError) as info:
        await twilio.send(CustomerRef(phone="+14155550123"), TextReply("x"))
    assert info.value.retryable is False


# -- the webhook handlers, in-process -------------------------------------------------------


@pytest.fixture
async def bot(
    tmp_path: Path, sandbox: Sandbox, http: aiohttp.ClientSession
) -> AsyncIterator[tuple[TestClient, BotContext]]:
    config = {
        "id": "shop",
        "kind": "sms",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15005550006",
        "twilio_base_url": sandbox.twilio_url,
        "public_url": PUBLIC,
        "funnel": None,
        "rate_limit_count": 0,
    }
    settings = BotSettings(
        instance_id="shop", kind="sms", internal_token="t", orchestrator_url="http://127.0.0.1:9",
        control_key="", data_dir=tmp_path, port=None, host="127.0.0.1", log_level="INFO",
    )
    channel = SmsChannel()
    ctx = create_context(
        channel, settings, config, http=http, client=None,
        store=BotStore.open(tmp_path / channel.db_filename("shop")),
    )
    ctx.inbox = None  # persist only: these tests look at what the webhook stored
    async with TestClient(TestServer(build_app(ctx))) as client:
        yield client, ctx
    ctx.store.close()


def signed_post(path: str, form: dict[str, str], token: str = AUTH_TOKEN) -> dict[str, Any]:
    return {
        "data": urlencode(form),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(f"{PUBLIC}{path}", MultiDict(form), token),
        },
    }


async def test_webhook_persists_and_answers_empty_twiml(
    bot: tuple[TestClient, BotContext],
) -> None:
    client, ctx = bot
    form = fields("inbound_sms.json")
    for _ in range(2):  # Twilio retried: stored once
        r = await client.post("/webhook", **signed_post("/webhook", form))
        assert r.status == 200
        assert r.content_type == "text/xml"
        assert await r.text() == EMPTY_TWIML
    rows = ctx.store.inbox_open()
    assert [row.provider_message_id for row in rows] == [form["MessageSid"]]
    assert rows[0].customer == "+14155550123"


async def test_webhook_refusals_store_nothing(bot: tuple[TestClient, BotContext]) -> None:
    client, ctx = bot
    form = fields("inbound_sms.json")
    r = await client.post("/webhook", data=urlencode(form))
    assert r.status == 401
    r = await client.post("/webhook", **signed_post("/webhook", form, token="wrong"))
    assert r.status == 403
    signed = signed_post("/webhook", form)
    signed["data"] = urlencode({**form, "Body": "tampered"})
    r = await client.post("/webhook", **signed)
    assert r.status == 403
    bad = signed_post("/webhook", {"Body": "no sid"})
    r = await client.post("/webhook", **bad)
    assert r.status == 400
    assert ctx.store.inbox_open() == []


async def test_webhook_keeps_a_non_phone_sender_as_dead_letter(
    bot: tuple[TestClient, BotContext],
) -> None:
    client, ctx = bot
    form = {**fields("inbound_sms.json"), "From": "ACME"}
    r = await client.post("/webhook", **signed_post("/webhook", form))
    assert r.status == 200
    assert ctx.store.inbox_open() == []
    assert len(ctx.store.dead_letters()) == 1


async def test_validation_can_be_turned_off_for_local_tests(
    bot: tuple[TestClient, BotContext],
) -> None:
    client, ctx = bot
    ctx.config["twilio_validate_signature"] = False
    r = await client.post("/webhook", data=urlencode(fields("inbound_sms.json")))
    assert r.status == 200
    assert len(ctx.store.inbox_open()) == 1


async def test_status_callback_updates_the_stored_message(
    bot: tuple[TestClient, BotContext],
) -> None:
    client, ctx = bot
    ctx.store.add_message(
        direction="out", customer="+14155550123", type_="text", text="hi", user_id=None,
        provider_message_id="SM00000000000000000000000000000000", status="sent",
    )
    r = await client.post("/status", **signed_post("/status", fields("status_undelivered.json")))
    assert r.status == 200
    row = ctx.store.message_by_provider_id("SM00000000000000000000000000000000")
    assert row is not None
    assert (row["status"], row["error_code"]) == ("failed", 30003)
    r = await client.post("/status", **signed_post("/status", fields("status_delivered.json")))
    assert r.status == 200
    row = ctx.store.message_by_provider_id("SM00000000000000000000000000000000")
    assert row is not None
    assert row["status"] == "delivered"
    # A status signed for the other route is refused.
    r = await client.post("/status", **signed_post("/webhook", fields("status_delivered.json")))
    assert r.status == 403


def test_simulate_and_operator_addresses_use_e164() -> None:
    channel = SmsChannel()
    message = channel.parse_simulated({"from": "+1 (415) 555-0123", "text": "hi"})
    assert message.customer.phone == "+14155550123"
    assert channel.customer_from_address("0048 600 100 200").phone == "+48600100200"
    with pytest.raises(ValueError, match="from"):
        channel.parse_simulated({"text": "no sender"})
    assert channel.customer_service_window is None
    assert channel.db_filename("shop") == "sms_bot_shop.db"
