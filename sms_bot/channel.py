"""The Twilio SMS/MMS channel as the shared runtime sees it."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from shared.botkit.public import public_url_for
from shared.botkit.spec import ChannelAdapter, ChannelSpec
from shared.channels.base import CustomerRef, InboundMessage
from shared.phones import normalize_phone
from sms_bot.adapter import DEFAULT_BASE_URL, TwilioAdapter
from sms_bot.manifest import MANIFEST
from sms_bot.webhook import make_routes, validation_enabled

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)


class SmsChannel(ChannelSpec):
    """Twilio Programmable Messaging: signed form webhooks, the REST API, numbered options.

    SMS has no customer-service window and no buttons, so nothing is paginated: every option is
    listed with its number. Voice replies are not sent (``voice_notes=False``): the text reply
    stands alone (see docs/sms.md).
    """

    kind = "sms"
    capabilities = MANIFEST.capabilities
    #: Twilio calls each message's ``StatusCallback`` (with its ``?ob=`` tag) when it is sent.
    default_confirm_hold_s = 30.0


    def routes(self, ctx: BotContext) -> list[web.AbstractRouteDef]:
        """Return ``POST /webhook`` and ``POST /status``."""
        return make_routes(ctx)

    def make_adapter(
        self, config: dict[str, Any], session: aiohttp.ClientSession
    ) -> ChannelAdapter:
        """Build the Twilio client from ``account_sid``, ``auth_token``, ``twilio_base_url``,
        ``messaging_service_sid`` / ``from_number``; status callbacks go to the public
        ``/status`` URL when one is known."""
        status_callback = public_url_for(
            config, "/status", kind=self.kind, instance_id=str(config.get("id") or "")
        )
        return TwilioAdapter(
            session,
            account_sid=str(config.get("account_sid") or ""),
            auth_token=str(config.get("auth_token") or ""),
            base_url=str(config.get("twilio_base_url") or DEFAULT_BASE_URL),
            from_number=str(config.get("from_number") or ""),
            messaging_service_sid=str(config.get("messaging_service_sid") or ""),
            status_callback=status_callback,
        )

    def confirm_hold(self, config: dict[str, Any]) -> timedelta:
        """No public ``/status`` URL means no status callbacks: nothing to wait for."""
        if public_url_for(config, "/status", kind=self.kind,
                          instance_id=str(config.get("id") or "")) is None:
            return timedelta(0)
        return super().confirm_hold(config)

    def parse_simulated(self, body: dict[str, Any]) -> InboundMessage:
        """Build a message from ``{"from": phone, "text"}`` (``from`` in any phone format)."""
        sender = str(body.get("from") or "").strip()
        if not sender:
            raise ValueError("'from' (a phone number) is required")
        phone = normalize_phone(sender)  # ValueError → 422
        return InboundMessage(
            provider_message_id=f"sim.{uuid.uuid4().hex}",
            customer=CustomerRef(phone=phone, profile_name=body.get("profile_name") or None),
            kind="text",
            text=str(body.get("text") or ""),
            payload=str(body["payload"]) if body.get("payload") else None,
        )

    def customer_from_address(self, address: str) -> CustomerRef:
        """Turn an operator-typed phone number into an E.164 customer reference."""
        try:
            return CustomerRef(phone=normalize_phone(address))
        except ValueError:
            return super().customer_from_address(address)

    async def on_start(self, ctx: BotContext) -> None:
        """Say clearly where Twilio must post, and warn when signatures are not checked."""
        webhook = public_url_for(
            ctx.config, "/webhook", kind=self.kind, instance_id=ctx.instance_id
        )
        if validation_enabled(ctx.config) and not (
            ctx.config.get("twilio_webhook_secret") or ctx.config.get("auth_token")
        ):
            ctx.webhook_health.flag(
                ctx.client,
                "no Auth token is set on this bot, so every message Twilio posts is refused; "
                "set it in the bot's settings",
            )
        if not validation_enabled(ctx.config):
            logger.warning(
                "Twilio signature check is OFF (twilio_validate_signature=false): "
                "use this only for local tests"
            )
        if webhook is None:
            logger.warning(
                "no public URL configured (public_url or FLOTILLA_PUBLIC_URL): signatures are "
                "checked against the local address and no status callbacks are requested"
            )
        else:
            logger.info("Twilio webhook URL", extra={"webhook_url": webhook})
