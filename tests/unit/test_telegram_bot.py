"""telegram_bot: secret check, update parsing, inline-keyboard/HTML rendering, the adapter
against the sandbox Bot API (429 ``retry_after`` included) and the webhook in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

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
from shared.sandbox import Sandbox
from shared.store import BotStore
from telegram_bot.adapter import TelegramAdapter
from telegram_bot.channel import TelegramChannel
from telegram_bot.parse import CALLBACK_QUERY_ID, UpdateError, parse_update
from telegram_bot.render import TEXT_MAX, RenderError, keyboard, render, to_html
from telegram_bot.webhook import SECRET_HEADER, WebhookError, verify_secret

DATA = Path(__file__).resolve().parents[1] / "data" / "telegram"
TOKEN = "7000000001:AAH-test-token_for-the-sandbox"
SECRET = "s3cret-token_for-tests"
USER = "521234567"


def update(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())  # type: ignore[no-any-return]


# -- secret ----------------------------------------------------------------------------------


def test_secret_accepted_and_refused() -> None:
    verify_secret(SECRET, SECRET)
    for header, configured, status in [
        (None, SECRET, 401),
        ("", SECRET, 401),
        ("wrong", SECRET, 403),
        (SECRET + "x", SECRET, 403),
        (SECRET, "", 403),  # nothing configured: refuse, never accept unverified updates
    ]:
        with pytest.raises(WebhookError) as info:
            verify_secret(header, configured)
        assert info.value.status == status


# -- parsing ---------------------------------------------------------------------------------


def test_parse_text_message_keys_the_customer_by_user_id() -> None:
    message = parse_update(update("message_text.json"))
    assert message is not None
    assert message.provider_message_id == "update:813572001"
    assert message.kind == "text"
    assert message.text == "hi"
    assert message.customer.telegram_id == USER
    assert message.customer.phone is None
    assert message.customer.username == "anna_k"
    assert message.customer.profile_name == "Anna Kowalska"
    assert message.customer.address() == USER


def test_parse_callback_query() -> None:
    message = parse_update(update("callback_query.json"))
    assert message is not None
    assert message.kind == "button"
    assert message.payload == "faq:menu"
    assert message.text == "FAQ"  # the pressed button's title, from the keyboard
    assert message.raw[CALLBACK_QUERY_ID] == "2238412039485720391"
    assert message.customer.telegram_id == USER


@pytest.mark.parametrize(
    ("name", "kind", "media_id", "text"),
    [
        ("voice.json", "audio", "AwACAgIAAxkBAAIBZ2ZqVoice0000000000000000000000", ""),
        ("photo.json", "image", "AgACAgIAAxkBAAIBaGZqLarge", "my server rack"),
        ("document.json", "document", "BQACAgIAAxkBAAIBaWZqDoc", "requirements.pdf"),
    ],
)
def test_parse_media(name: str, kind: str, media_id: str, text: str) -> None:
    message = parse_update(update(name))
    assert message is not None
    assert (message.kind, message.media_id, message.text) == (kind, media_id, text)


def test_parse_location_and_contact() -> None:
    location = parse_update(update("location.json"))
    assert location is not None
    assert location.kind == "location"
    assert location.location is not None
    assert location.location["latitude"] == pytest.approx(52.229676)
    contact = parse_update(update("contact.json"))
    assert contact is not None
    assert contact.kind == "contacts"
    assert "+48600100200" in contact.text
    assert contact.customer.phone == "+48600100200"  # their own number, shared by them


@pytest.mark.parametrize("name", ["edited_message.json", "group_message.json"])
def test_ignored_updates(name: str) -> None:
    assert parse_update(update(name)) is None


@pytest.mark.parametrize("body", [[], {"message": {}}, {"update_id": "7"}])
def test_unparseable_updates(body: Any) -> None:
    with pytest.raises(UpdateError):
        parse_update(body)


def test_message_without_sender_is_unparseable() -> None:
    with pytest.raises(UpdateError):
        parse_update(update("unknown_shape.json"))


# -- rendering -------------------------------------------------------------------------------


def test_bold_becomes_html_and_the_rest_is_escaped() -> None:
    assert to_html("Hi *Anna* & <team>: 5 * 3 > 2") == (
        "Hi <b>Anna</b> &amp; &lt;team&gt;: 5 * 3 &gt; 2"
    )
    assert to_html("*<script>*") == "<b>&lt;script&gt;</b>"


def test_buttons_render_as_inline_keyboard_in_option_order() -> None:
    reply = ButtonsReply(
        text="Pick *one*",
        buttons=[Button("sales:seg:diy", "DIY"), Button("sales:seg:basic", "Basic")],
    )
    (call,) = render(reply, USER)
    assert call.method == "sendMessage"
    assert call.params["parse_mode"] == "HTML"
    assert call.params["text"] == "Pick <b>one</b>"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "DIY", "callback_data": "sales:seg:diy"}],
            [{"text": "Basic", "callback_data": "sales:seg:basic"}],
        ]
    }


def test_list_rows_become_keyboard_rows() -> None:
    reply = ListReply(
        text="FAQ",
        button="Topics",
        sections=[
            ListSection("Product", [ListRow("faq:what_is", "What is it?")]),
            ListSection("Nav", [ListRow("nav:menu", "Main menu")]),
        ],
    )
    markup = keyboard(reply)
    assert markup is not None
    assert [row[0]["callback_data"] for row in markup["inline_keyboard"]] == [
        "faq:what_is",
        "nav:menu",
    ]


def test_callback_data_over_64_bytes_is_refused_at_render_time() -> None:
    ok = "sales:ans:" + "q" * 54  # exactly 64 bytes
    assert keyboard(ButtonsReply(text="x", buttons=[Button(ok, "fits")])) is not None
    too_long = "sales:ans:" + "ж" * 28  # 66 bytes, 38 characters
    with pytest.raises(RenderError, match="64"):
        render(ButtonsReply(text="x", buttons=[Button(too_long, "no")]), USER)


def test_long_text_split_under_4096_after_escaping_keyboard_on_last_part() -> None:
    text = ("a&b " * 2000).strip()  # 8,000 characters; escaping makes it 14,000
    calls = render(ButtonsReply(text=text, buttons=[Button("nav:menu", "Menu")]), USER)
    assert len(calls) >= 3
    assert all(len(c.params["text"]) <= TEXT_MAX for c in calls)
    assert "reply_markup" in calls[-1].params
    assert all("reply_markup" not in c.params for c in calls[:-1])


def test_audio_and_blank_text() -> None:
    (voice,) = render(AudioReply(audio=b"OggS..."), USER)
    assert voice.method == "sendVoice"
    assert "voice" in voice.files
    assert render(TextReply("  "), USER) == []
    (empty_body,) = render(ButtonsReply(text="", buttons=[Button("nav:menu", "Menu")]), USER)
    assert empty_body.params["text"]


# -- adapter against the sandbox -------------------------------------------------------------


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
        f"{sandbox.url}/_sandbox/faults", json={"provider": "telegram", **spec}
    ) as r:
        assert r.status == 201, await r.text()


def tg(http: aiohttp.ClientSession, sandbox: Sandbox) -> TelegramAdapter:
    return TelegramAdapter(http, token=TOKEN, base_url=sandbox.telegram_url)


async def test_adapter_sends_inline_keyboard(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    reply = ButtonsReply(text="Hello *Anna*", buttons=[Button("faq:menu", "FAQ")])
    ids = await tg(http, sandbox).send(CustomerRef(telegram_id=USER), reply)
    (sent,) = sandbox.state.find_messages(provider="telegram", to=USER)
    assert ids == [f"{USER}:{sent.message_id}"]
    assert sent.text == "Hello <b>Anna</b>"
    assert sent.payload["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "faq:menu"


async def test_adapter_429_honours_retry_after(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await add_fault(http, sandbox, mode="429", count=1, retry_after=9)
    adapter = tg(http, sandbox)
    with pytest.raises(SendError) as info:
        await adapter.send(CustomerRef(telegram_id=USER), TextReply("hi"))
    assert info.value.retryable is True
    assert info.value.retry_after == 9
    assert await adapter.send(CustomerRef(telegram_id=USER), TextReply("hi"))


async def test_adapter_errors(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    adapter = tg(http, sandbox)
    await add_fault(http, sandbox, mode="500", count=1)
    with pytest.raises(SendError) as info:
        await adapter.send(CustomerRef(telegram_id=USER), TextReply("hi"))
    assert info.value.retryable is True
    await add_fault(http, sandbox, mode="error", count=1, error_code=403)
    with pytest.raises(SendError) as info:
        await adapter.send(CustomerRef(telegram_id=USER), TextReply("hi"))
    assert info.value.retryable is False
    assert "blocked" in str(info.value)
    with pytest.raises(SendError, match="Telegram id"):
        await adapter.send(CustomerRef(phone="+14155550123"), TextReply("hi"))
    bad = ButtonsReply(text="x", buttons=[Button("x" * 65, "too long")])
    with pytest.raises(SendError) as info:
        await adapter.send(CustomerRef(telegram_id=USER), bad)
    assert info.value.retryable is False
    assert sandbox.state.find_messages(provider="telegram") == []


async def test_adapter_error_messages_never_carry_the_token(
    http: aiohttp.ClientSession,
) -> None:
    adapter = TelegramAdapter(http, token=TOKEN, base_url="http://127.0.0.1:9")
    with pytest.raises(SendError) as info:
        await adapter.send(CustomerRef(telegram_id=USER), TextReply("hi"))
    assert info.value.retryable is True
    assert TOKEN not in str(info.value)


async def test_answer_callback_and_set_webhook(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    adapter = tg(http, sandbox)
    assert await adapter.answer_callback("2238412039485720391") is True
    assert await adapter.answer_callback("") is False  # refused by the Bot API, not raised
    await adapter.set_webhook("https://bots.example.com/hooks/telegram/tg/webhook", SECRET)
    bot = sandbox.state.telegram_bot(TOKEN)
    assert bot.webhook_url == "https://bots.example.com/hooks/telegram/tg/webhook"
    assert bot.webhook_secret == SECRET


# -- the webhook, in-process -----------------------------------------------------------------


@pytest.fixture
async def bot(
    tmp_path: Path, sandbox: Sandbox, http: aiohttp.ClientSession
) -> AsyncIterator[tuple[TestClient, BotContext]]:
    config = {
        "id": "tg",
        "kind": "telegram",
        "bot_token": TOKEN,
        "webhook_secret": SECRET,
        "telegram_api_base_url": sandbox.telegram_url,
        "funnel": None,
    }
    settings = BotSettings(
        instance_id="tg", kind="telegram", internal_token="t",
        orchestrator_url="http://127.0.0.1:9", control_key="", data_dir=tmp_path, port=None,
        host="127.0.0.1", log_level="INFO",
    )
    channel = TelegramChannel()
    ctx = create_context(
        channel, settings, config, http=http, client=None,
        store=BotStore.open(tmp_path / channel.db_filename("tg")),
    )
    ctx.inbox = None  # persist only: these tests look at what the webhook stored
    async with TestClient(TestServer(build_app(ctx))) as client:
        yield client, ctx
    ctx.store.close()


async def test_webhook_persists_once_per_update_id(bot: tuple[TestClient, BotContext]) -> None:
    client, ctx = bot
    for _ in range(2):
        r = await client.post(
            "/webhook", json=update("message_text.json"), headers={SECRET_HEADER: SECRET}
        )
        assert r.status == 200
    rows = ctx.store.inbox_open()
    assert [row.provider_message_id for row in rows] == ["update:813572001"]
    assert rows[0].customer == USER


async def test_webhook_refusals_store_nothing(bot: tuple[TestClient, BotContext]) -> None:
    client, ctx = bot
    body = update("message_text.json")
    assert (await client.post("/webhook", json=body)).status == 401
    r = await client.post("/webhook", json=body, headers={SECRET_HEADER: "nope"})
    assert r.status == 403
    ctx.config["webhook_secret"] = ""
    r = await client.post("/webhook", json=body, headers={SECRET_HEADER: ""})
    assert r.status == 401
    r = await client.post("/webhook", json=body, headers={SECRET_HEADER: SECRET})
    assert r.status == 403
    assert ctx.store.inbox_open() == []
    assert ctx.store.dead_letters() == []


async def test_webhook_authentic_garbage_is_200_and_a_dead_letter(
    bot: tuple[TestClient, BotContext],
) -> None:
    client, ctx = bot
    headers = {SECRET_HEADER: SECRET}
    r = await client.post("/webhook", data=b"{not json", headers=headers)
    assert r.status == 200
    r = await client.post("/webhook", json=update("unknown_shape.json"), headers=headers)
    assert r.status == 200
    r = await client.post("/webhook", json=update("edited_message.json"), headers=headers)
    assert r.status == 200
    assert ctx.store.inbox_open() == []
    assert len(ctx.store.dead_letters()) == 2  # the edit is ignored, not an error


def test_operator_addresses_and_simulate() -> None:
    channel = TelegramChannel()
    assert channel.customer_from_address(USER) == CustomerRef(telegram_id=USER)
    assert channel.customer_from_address("@anna_k") == CustomerRef(username="anna_k")
    message = channel.parse_simulated({"from": USER, "payload": "faq:menu"})
    assert (message.kind, message.payload, message.customer.telegram_id) == (
        "button", "faq:menu", USER,
    )
    with pytest.raises(ValueError, match="Telegram"):
        channel.parse_simulated({"from": "+14155550123"})
    assert channel.customer_service_window is None
    assert channel.db_filename("tg") == "telegram_bot_tg.db"
