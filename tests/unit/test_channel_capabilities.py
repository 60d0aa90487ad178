"""Channel capabilities: typed protocols on the adapters, a :class:`Capabilities` on each spec,
``ChannelSpec``/``ChannelAdapter`` in one module, and voice replies that follow the capability
(WhatsApp uploads first, Telegram keeps the audio in the outbox row and sends ``sendVoice``,
SMS sends text only)."""

from __future__ import annotations

import ast
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.botkit import BotSettings, create_context
from shared.botkit.context import BotContext
from shared.botkit.spec import (
    VOICE_MIME,
    AnswersCallbacks,
    Capabilities,
    ChannelAdapter,
    ChannelSpec,
    DownloadsMedia,
    MarksRead,
    SendsTemplates,
    SendsVoice,
    SetsWebhook,
    UploadsMedia,
)
from shared.channels import registry
from shared.channels.base import (
    AudioReply,
    CustomerRef,
    SendError,
    TextReply,
    reply_from_dict,
    reply_to_dict,
)
from shared.orchestrator_client import OrchestratorClient
from shared.sandbox import Sandbox
from shared.store import BotStore
from sms_bot.channel import SmsChannel
from telegram_bot.channel import TelegramChannel
from whatsapp_bot.channel import WhatsAppChannel

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = (
    DownloadsMedia,
    UploadsMedia,
    SendsVoice,
    SendsTemplates,
    MarksRead,
    AnswersCallbacks,
    SetsWebhook,
)
#: What each shipped adapter can do, protocol by protocol.
EXPECTED: dict[str, set[type]] = {
    "whatsapp": {DownloadsMedia, UploadsMedia, SendsVoice, SendsTemplates, MarksRead},
    "telegram": {DownloadsMedia, SendsVoice, AnswersCallbacks, SetsWebhook},
    "sms": set(),
}
CHANNELS: dict[str, ChannelSpec] = {
    "whatsapp": WhatsAppChannel(),
    "telegram": TelegramChannel(),
    "sms": SmsChannel(),
}
# OGG/Opus is not decoded anywhere on these paths; any bytes stand for it.
AUDIO = b"OggS\x00\x02" + bytes(range(256)) * 4


async def _adapter(kind: str) -> ChannelAdapter:
    async with aiohttp.ClientSession() as session:
        return CHANNELS[kind].make_adapter({"id": "x"}, session)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_each_adapter_satisfies_exactly_its_protocols(kind: str) -> None:
    adapter = await _adapter(kind)
    assert {p for p in PROTOCOLS if isinstance(adapter, p)} == EXPECTED[kind]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_declared_capabilities_match_the_adapter(kind: str) -> None:
    spec = CHANNELS[kind]
    adapter = await _adapter(kind)
    caps = spec.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.voice_notes == isinstance(adapter, SendsVoice)
    if caps.voice_notes:
        assert isinstance(adapter, SendsVoice)
        assert VOICE_MIME in adapter.voice_formats
    assert caps.templates == isinstance(adapter, SendsTemplates)
    assert spec.customer_service_window == caps.customer_service_window


def test_capabilities_per_channel() -> None:
    wa, tg, sms = (CHANNELS[k].capabilities for k in ("whatsapp", "telegram", "sms"))
    assert (wa.voice_notes, tg.voice_notes, sms.voice_notes) == (True, True, False)
    assert wa.customer_service_window is not None
    assert wa.customer_service_window.total_seconds() == 24 * 3600
    assert tg.customer_service_window is None
    assert sms.customer_service_window is None
    assert (wa.max_buttons, sms.max_buttons) == (3, None)
    assert (wa.max_text, tg.max_text, sms.max_text) == (4096, 4096, 1600)


def test_spec_and_adapter_live_in_one_module() -> None:
    assert ChannelSpec.__module__ == ChannelAdapter.__module__ == "shared.botkit.spec"
    for protocol in PROTOCOLS:
        assert protocol.__module__ == "shared.botkit.spec"


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_a_spec_carries_its_manifests_capabilities(kind: str) -> None:
    """Capabilities are declared once, in the manifest; the spec reads them from there."""
    assert CHANNELS[kind].capabilities is registry.get(kind).capabilities


def _probes(path: Path) -> list[str]:
    """``getattr``/``hasattr`` calls whose object is an adapter (``adapter``, ``ctx.adapter``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and "adapter" in ast.unparse(node.args[0]).lower()
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_getattr_capability_probes_on_adapters() -> None:
    files = [
        p
        for folder in (
            "shared/botkit",
            "shared/channels",
            "whatsapp_bot",
            "sms_bot",
            "telegram_bot",
        )
        for p in sorted((ROOT / folder).rglob("*.py"))
    ]
    assert files
    assert [probe for path in files for probe in _probes(path)] == []


def test_audio_bytes_survive_the_outbox_only_without_a_media_id() -> None:
    inline = reply_to_dict(AudioReply(audio=AUDIO))
    assert "audio_b64" in inline
    back = reply_from_dict(inline)
    assert isinstance(back, AudioReply)
    assert (back.audio, back.media_id) == (AUDIO, None)

    uploaded = reply_to_dict(AudioReply(audio=AUDIO, media_id="123"))
    assert "audio_b64" not in uploaded
    back = reply_from_dict(uploaded)
    assert isinstance(back, AudioReply)
    assert (back.audio, back.media_id) == (None, "123")


# -- voice replies through a real context ------------------------------------------------------


class Tts:
    """A stand-in orchestrator that answers ``POST /internal/tts`` with fixed OGG bytes."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def app(self) -> web.Application:
        async def tts(request: web.Request) -> web.Response:
            self.texts.append((await request.json())["text"])
            return web.Response(body=AUDIO, content_type="audio/ogg")

        app = web.Application()
        app.router.add_post("/internal/tts", tts)
        return app


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(port=0) as running:
        yield running


@pytest.fixture
async def tts() -> AsyncIterator[tuple[Tts, str]]:
    fake = Tts()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def _context(
    channel: ChannelSpec,
    config: dict[str, Any],
    tmp_path: Path,
    http: aiohttp.ClientSession,
    client: OrchestratorClient,
) -> BotContext:
    settings = BotSettings(
        instance_id="v1",
        kind=channel.kind,
        internal_token="t",
        orchestrator_url=client.base_url,
        control_key="",
        data_dir=tmp_path,
        port=None,
        host="127.0.0.1",
        log_level="INFO",
    )
    return create_context(
        channel,
        settings,
        {"id": "v1", "tts_enabled": True, "funnel": None, **config},
        http=http,
        client=client,
        store=BotStore.open(tmp_path / channel.db_filename("v1")),
    )


async def test_telegram_voice_reply_keeps_the_audio_in_the_outbox_and_sends_it_with_send_voice(
    tmp_path: Path, sandbox: Sandbox, tts: tuple[Tts, str]
) -> None:
    fake, url = tts
    token = "7000000009:AAH-voice-test"
    async with aiohttp.ClientSession() as http:
        client = OrchestratorClient(url, "t", "v1")
        ctx = await _context(
            TelegramChannel(),
            {"bot_token": token, "telegram_api_base_url": sandbox.telegram_url},
            tmp_path,
            http,
            client,
        )
        try:
            assert ctx.inbox is not None
            assert ctx.outbox is not None
            user = ctx.store.resolve_user(CustomerRef(telegram_id="521234567"))
            await ctx.inbox.speak(user, [TextReply("Hello *there*")], source_inbox_id=0)
            (row,) = ctx.store.outbox_all()
            assert row.reply["type"] == "audio"
            assert row.reply["media_id"] is None
            assert row.reply["audio_b64"]
            assert fake.texts == ["Hello *there*"]
            await ctx.outbox.send_row(row)
            settled = ctx.store.outbox_get(row.id)
            assert settled is not None
            assert settled.state == "sent"
            # the audio was only kept to be sent: the settled row does not carry it any more
            assert "audio_b64" not in settled.reply
            assert settled.reply["type"] == "audio"
        finally:
            await client.close()
            ctx.store.close()
    (sent,) = sandbox.state.find_messages(provider="telegram", to="521234567")
    assert sent.type == "voice"
    file_id = sent.payload["voice"]["file_id"]
    assert sent.payload["voice"]["file_size"] == len(AUDIO)
    assert sandbox.state.media[file_id].data == AUDIO


async def test_sms_voice_reply_is_skipped_and_logged_text_only(
    tmp_path: Path, tts: tuple[Tts, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = tts
    async with aiohttp.ClientSession() as http:
        client = OrchestratorClient(url, "t", "v1")
        ctx = await _context(
            SmsChannel(),
            {"account_sid": "AC1", "auth_token": "x", "from_number": "+15550001"},
            tmp_path,
            http,
            client,
        )
        try:
            assert ctx.inbox is not None
            user = ctx.store.resolve_user(CustomerRef(phone="+14155550123"))
            with caplog.at_level(logging.INFO, logger="shared.botkit.inbox"):
                await ctx.inbox.speak(user, [TextReply("Hello")], source_inbox_id=0)
            assert ctx.store.outbox_all() == []
            assert fake.texts == []  # no speech is even made
            assert any("voice reply skipped" in r.getMessage() for r in caplog.records)
        finally:
            await client.close()
            ctx.store.close()


async def test_telegram_downloads_a_customers_voice_note_through_get_file(
    sandbox: Sandbox,
) -> None:
    token = "7000000010:AAH-download-test"
    async with aiohttp.ClientSession() as http:
        adapter = TelegramChannel().make_adapter(
            {"bot_token": token, "telegram_api_base_url": sandbox.telegram_url}, http
        )
        assert isinstance(adapter, DownloadsMedia)
        # a voice note in Telegram's file store (the sandbox keeps what sendVoice uploads)
        await adapter.send(CustomerRef(telegram_id="521234567"), AudioReply(audio=AUDIO))
        (sent,) = sandbox.state.find_messages(provider="telegram", to="521234567")
        data, mime = await adapter.download_media(sent.payload["voice"]["file_id"])
        assert (data, mime) == (AUDIO, "audio/ogg")

        with pytest.raises(SendError) as info:
            await adapter.download_media("no-such-file")
        assert info.value.retryable is False
        assert token not in str(info.value)
