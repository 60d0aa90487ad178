"""What a channel package implements so the shared runtime can run it."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from shared.channels.base import ChannelAdapter, CustomerRef, InboundMessage, Reply, SendError
from shared.store.files import bot_db_filename

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

_PHONE_RE = re.compile(r"^\+?[\d\s().-]{6,}$")


class ChannelSpec(ABC):
    """One messaging channel (WhatsApp, SMS, Telegram) as the bot runtime sees it.

    Attributes:
        kind: ``whatsapp``, ``sms`` or ``telegram``.
        customer_service_window: how long after a customer's last message free-form replies are
            allowed (WhatsApp: 24 h); ``None`` when the channel has no such rule.
        default_confirm_hold_s: how long a reply interrupted by a crash waits for the
            provider's confirmation before it is sent again (0: the provider never confirms).
    """

    kind: str = ""
    customer_service_window: timedelta | None = None
    default_confirm_hold_s: float = 0.0

    def confirm_hold(self, config: dict[str, Any]) -> timedelta:
        """How long a row interrupted mid-send waits for the provider's confirmation
        (``BotStore.outbox_recover``): the instance config's ``delivery_confirm_hold_s``, else
        :attr:`default_confirm_hold_s`. Channels without confirmations keep 0."""
        if not self.default_confirm_hold_s:
            return timedelta(0)
        value = config.get("delivery_confirm_hold_s")
        try:
            seconds = float(value) if value not in (None, "") else self.default_confirm_hold_s
        except (TypeError, ValueError):
            seconds = self.default_confirm_hold_s
        return timedelta(seconds=max(0.0, seconds))

    def db_filename(self, instance_id: str) -> str:
        """Return the SQLite file name inside ``BOT_DATA_DIR``."""
        return bot_db_filename(self.kind, instance_id)

    @abstractmethod
    def routes(self, ctx: BotContext) -> list[web.AbstractRouteDef]:
        """Return the public webhook routes (``GET/POST /webhook``...).

        Handlers verify, parse, then call :meth:`BotContext.accept_inbound` /
        :meth:`BotContext.apply_status` / :meth:`BotContext.dead_letter` and answer.
        """

    @abstractmethod
    def make_adapter(
        self, config: dict[str, Any], session: aiohttp.ClientSession
    ) -> ChannelAdapter:
        """Build the provider client from the bot's config (called again on reload)."""

    @abstractmethod
    def parse_simulated(self, body: dict[str, Any]) -> InboundMessage:
        """Turn a ``/control/simulate`` body into an inbound message.

        Raises:
            ValueError: the body lacks a sender.
        """

    def paginate(self, reply: Reply, token: str) -> tuple[Reply, Reply | None]:
        """Split a reply the channel cannot show at once.

        Args:
            reply: the full reply.
            token: a fresh token; when there is a rest, the first page must offer a "More"
                option with the callback ``nav:more:<token>``.

        Returns:
            ``(first page, rest or None)``. The default shows everything at once.
        """
        return reply, None

    async def send_outside_window(
        self, ctx: BotContext, customer: CustomerRef, reply: Reply
    ) -> list[str]:
        """Send when the customer-service window is closed (WhatsApp: an approved template).

        Returns:
            Provider message ids.

        Raises:
            SendError: nothing may be sent (the default).
        """
        raise SendError(
            "outside the customer-service window; free-form message not sent", retryable=False
        )

    async def on_received(self, ctx: BotContext, message: InboundMessage) -> None:  # noqa: B027 - optional hook
        """Optional hook after a message is taken for handling (WhatsApp marks it read)."""

    async def on_start(self, ctx: BotContext) -> None:  # noqa: B027 - optional hook
        """Optional hook once the webhook listens (Telegram registers its webhook).

        Runs in the background; an exception is logged and never stops the bot.
        """

    def customer_from_address(self, address: str) -> CustomerRef:
        """Turn an operator-typed address (``/control/send`` ``to``) into a customer reference."""
        text = address.strip()
        if _PHONE_RE.match(text):
            digits = re.sub(r"\D", "", text)
            return CustomerRef(phone=f"+{digits}")
        return CustomerRef(bsuid=text)
