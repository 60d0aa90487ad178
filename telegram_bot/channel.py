"""The Telegram channel as the shared runtime sees it."""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from shared.botkit.public import public_url_for
from shared.botkit.spec import (
    AnswersCallbacks,
    ChannelAdapter,
    ChannelSpec,
    SetsWebhook,
)
from shared.channels.base import CustomerRef, InboundMessage
from telegram_bot.adapter import DEFAULT_BASE_URL, TelegramAdapter
from telegram_bot.manifest import MANIFEST
from telegram_bot.parse import CALLBACK_QUERY_ID
from telegram_bot.webhook import make_routes

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

_CHAT_ID_RE = re.compile(r"^-?\d+$")


class TelegramChannel(ChannelSpec):
    """Telegram Bot API: secret-token webhook, inline keyboards, HTML formatting.

    Telegram has no customer-service window and an inline keyboard holds every option (one
    button per row), so nothing is paginated. Voice replies go out with ``sendVoice``: the
    OGG/Opus bytes travel in the outbox row, since the Bot API has no upload-only call.
    """

    kind = "telegram"
    capabilities = MANIFEST.capabilities


    def routes(self, ctx: BotContext) -> list[web.AbstractRouteDef]:
        """Return ``POST /webhook``."""
        return make_routes(ctx)

    def make_adapter(
        self, config: dict[str, Any], session: aiohttp.ClientSession
    ) -> ChannelAdapter:
        """Build the Bot API client from ``bot_token`` and ``telegram_api_base_url``."""
        return TelegramAdapter(
            session,
            token=str(config.get("bot_token") or ""),
            base_url=str(config.get("telegram_api_base_url") or DEFAULT_BASE_URL),
        )

    def parse_simulated(self, body: dict[str, Any]) -> InboundMessage:
        """Build a message from ``{"from": telegram user id, "text", "payload", "username",
        "profile_name"}``."""
        sender = str(body.get("from") or body.get("telegram_id") or "").strip()
        if not _CHAT_ID_RE.match(sender):
            raise ValueError("'from' (a numeric Telegram user id) is required")
        payload = body.get("payload") or None
        return InboundMessage(
            provider_message_id=f"sim.{uuid.uuid4().hex}",
            customer=CustomerRef(
                telegram_id=sender,
                username=body.get("username") or None,
                profile_name=body.get("profile_name") or None,
            ),
            kind="button" if payload else "text",
            text=str(body.get("text") or ""),
            payload=str(payload) if payload else None,
        )

    def customer_from_address(self, address: str) -> CustomerRef:
        """A numeric address is a Telegram user (chat) id; ``@name`` is a username."""
        text = address.strip()
        if _CHAT_ID_RE.match(text):
            return CustomerRef(telegram_id=text)
        return CustomerRef(username=text.lstrip("@"))

    def quote_id(self, message: InboundMessage) -> str | None:
        """The chat's ``message_id`` of a customer's message (not of a button press)."""
        mid = message.raw.get("message_id") if message.raw else None
        if message.kind == "button" or isinstance(mid, bool) or not isinstance(mid, int):
            return None
        return str(mid)

    async def on_received(self, ctx: BotContext, message: InboundMessage) -> None:
        """Answer a button press so the customer's spinner stops."""
        query_id = message.raw.get(CALLBACK_QUERY_ID) if message.raw else None
        adapter = ctx.adapter
        if query_id and isinstance(adapter, AnswersCallbacks):
            await adapter.answer_callback(str(query_id))

    async def on_start(self, ctx: BotContext) -> None:
        """Register the webhook (``setWebhook`` with the secret) when a public URL is known.

        Without a public URL the webhook must be set by hand (see docs/telegram.md).
        """
        url = public_url_for(ctx.config, "/webhook", kind=self.kind, instance_id=ctx.instance_id)
        secret = str(ctx.config.get("webhook_secret") or "")
        if not secret:
            logger.error(
                "no webhook_secret configured: every update will be refused with 403 "
                "(signatures are always checked); set one on this bot"
            )
            ctx.webhook_health.flag(
                ctx.client,
                "no Webhook secret is set on this bot, so every update Telegram sends is "
                "refused; set one in the bot's settings",
            )
            return
        if url is None:
            logger.info("no public URL configured; webhook not registered automatically")
            return
        if ctx.config.get("telegram_set_webhook", True) is False:
            return
        adapter = ctx.adapter
        if isinstance(adapter, SetsWebhook):
            await adapter.set_webhook(url, secret)
            logger.info("Telegram webhook registered", extra={"webhook_url": url})
