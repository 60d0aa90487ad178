"""The WhatsApp channel as the shared runtime sees it."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from shared.botkit.spec import (
    ChannelAdapter,
    ChannelSpec,
    MarksRead,
    SendsTemplates,
)
from shared.channels.base import (
    CustomerRef,
    InboundMessage,
    Reply,
    SendError,
)
from shared.phones import looks_like_phone, phone_digits
from whatsapp_bot import render
from whatsapp_bot.adapter import WhatsAppAdapter
from whatsapp_bot.manifest import MANIFEST
from whatsapp_bot.webhook import make_routes

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v21.0"

#: What ``{name}`` becomes for a customer whose name is unknown (WhatsApp refuses empty
#: template parameters).
UNKNOWN_NAME = "there"
#: Longest template parameter value sent (Meta's limit for a body parameter is 1,024).
MAX_PARAM = 1024


def template_params(lines: Any, customer: CustomerRef, reply: Reply) -> list[str]:
    """The ``wa_template_params`` setting (one value per line) with ``{name}`` (the customer's
    name) and ``{text}`` (the message the bot wanted to send) filled in; plain replacement, no
    other placeholders are read."""
    name = (customer.profile_name or "").strip() or UNKNOWN_NAME
    text = str(getattr(reply, "text", "") or "").strip()
    out: list[str] = []
    for line in str(lines or "").splitlines():
        value = line.strip()
        if not value:
            continue
        value = value.replace("{name}", name).replace("{text}", text).strip() or UNKNOWN_NAME
        out.append(value[:MAX_PARAM])
    return out


class WhatsAppChannel(ChannelSpec):
    """WhatsApp Cloud API: webhook, Graph adapter, 24-hour window, Meta's limits."""

    kind = "whatsapp"
    capabilities = MANIFEST.capabilities
    #: Meta echoes ``biz_opaque_callback_data`` in status webhooks (usually within seconds).
    default_confirm_hold_s = 30.0


    def routes(self, ctx: BotContext) -> list[web.AbstractRouteDef]:
        """Return ``GET/POST /webhook``."""
        return make_routes(ctx)

    def make_adapter(
        self, config: dict[str, Any], session: aiohttp.ClientSession
    ) -> ChannelAdapter:
        """Build the Graph client from ``graph_api_*``, ``phone_number_id``, ``access_token``."""
        return WhatsAppAdapter(
            session,
            base_url=str(config.get("graph_api_base_url") or DEFAULT_GRAPH_BASE_URL),
            version=str(config.get("graph_api_version") or DEFAULT_GRAPH_VERSION),
            phone_number_id=str(config.get("phone_number_id") or ""),
            access_token=str(config.get("access_token") or ""),
        )

    def parse_simulated(self, body: dict[str, Any]) -> InboundMessage:
        """Build a message from ``{"from", "text", "payload", "profile_name"}`` (``from`` may be
        a phone or a BSUID; ``bsuid``/``username`` may be given too)."""
        sender = str(body.get("from") or "").strip()
        bsuid = body.get("bsuid") or None
        phone = None
        if sender and looks_like_phone(sender):
            phone = "+" + phone_digits(sender)
        elif sender:
            bsuid = bsuid or sender
        if not phone and not bsuid:
            raise ValueError("'from' (phone or BSUID) is required")
        payload = body.get("payload") or None
        return InboundMessage(
            provider_message_id=f"sim.{uuid.uuid4().hex}",
            customer=CustomerRef(
                phone=phone,
                bsuid=bsuid,
                username=body.get("username") or None,
                profile_name=body.get("profile_name") or None,
            ),
            kind="button" if payload else "text",
            text=str(body.get("text") or ""),
            payload=str(payload) if payload else None,
        )

    def paginate(self, reply: Reply, token: str) -> tuple[Reply, Reply | None]:
        """Split replies over Meta's 3 buttons / 10 rows, with a "More" choice."""
        return render.paginate(reply, token)

    async def send_outside_window(
        self, ctx: BotContext, customer: CustomerRef, reply: Reply
    ) -> list[str]:
        """Send the configured template instead of a free-form message, or refuse clearly."""
        name = str(ctx.config.get("wa_template_name") or "").strip()
        if not name:
            raise SendError(
                "outside the 24-hour customer-service window and no wa_template_name "
                "configured; free-form message not sent",
                retryable=False,
            )
        adapter = ctx.adapter
        if not isinstance(adapter, SendsTemplates):
            raise SendError("this adapter cannot send templates", retryable=False)
        language = str(ctx.config.get("wa_template_language") or "en_US")
        params = template_params(ctx.config.get("wa_template_params"), customer, reply)
        logger.info("24-hour window closed; sending template",
                    extra={"template": name, "params": len(params)})
        return await adapter.send_template(customer, name, language, params or None)

    async def on_start(self, ctx: BotContext) -> None:
        """A bot without an App secret refuses every webhook: say so at once."""
        if not ctx.config.get("app_secret"):
            ctx.webhook_health.flag(
                ctx.client,
                "no App secret is set on this bot, so every webhook Meta sends is refused; "
                "set it in the bot's settings",
            )

    def quote_id(self, message: InboundMessage) -> str | None:
        """The ``wamid`` (a simulated message has none Meta would know)."""
        mid = message.provider_message_id
        return None if not mid or mid.startswith("sim.") else mid

    async def on_received(self, ctx: BotContext, message: InboundMessage) -> None:
        """Mark the message read (blue ticks) unless ``wa_mark_read`` is false."""
        if ctx.config.get("wa_mark_read", True) is False:
            return
        if message.provider_message_id.startswith("sim."):
            return
        adapter = ctx.adapter
        if isinstance(adapter, MarksRead):
            await adapter.mark_read(message.provider_message_id)
