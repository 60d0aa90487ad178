"""Everything a running bot shares between its webhook, workers and control API."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from shared.botkit.attention import WebhookHealth
from shared.botkit.outbox import parse_part_tag
from shared.channels.base import (
    CustomerRef,
    InboundMessage,
    Reply,
    StatusUpdate,
    reply_to_dict,
)
from shared.logging import current_request_id
from shared.store import BotStore, InboxRow, utcnow

if TYPE_CHECKING:
    from shared.botkit.inbox import InboxWorker
    from shared.botkit.outbox import OutboxWorker
    from shared.botkit.scheduler import Scheduler
    from shared.botkit.settings import BotSettings
    from shared.botkit.spec import ChannelAdapter, ChannelSpec
    from shared.orchestrator_client import OrchestratorClient

logger = logging.getLogger(__name__)

DEFAULT_FALLBACK_TEXT = (
    "Thanks for your message! I can't answer that right now; a person will get back to you soon."
)
DEFAULT_RATE_LIMIT_TEXT = (
    "You've sent a lot of messages in a short time. Please wait a little; we'll read everything."
)


@dataclass(eq=False)
class BotContext:
    """The running bot.

    Attributes:
        settings: environment settings.
        channel: the channel implementation.
        config: the instance config from the orchestrator (replaced on reload).
        store: the bot's database.
        adapter: the provider client (rebuilt on reload).
        http: the shared HTTP session adapters use.
        client: the orchestrator client (``None`` in some tests).
        clock: the time source (tests move it).
        inbox: the inbox worker (set by the runtime).
        outbox: the outbox worker (set by the runtime).
        scheduler: the durable scheduler (set by the runtime; ``None`` in some tests).
        started_at: monotonic start time, for ``uptime_s``.
    """

    settings: BotSettings
    channel: ChannelSpec
    config: dict[str, Any]
    store: BotStore
    adapter: ChannelAdapter
    http: aiohttp.ClientSession
    client: OrchestratorClient | None = None
    clock: Callable[[], datetime] = utcnow
    inbox: InboxWorker | None = None
    outbox: OutboxWorker | None = None
    scheduler: Scheduler | None = None
    started_at: float = field(default_factory=time.monotonic)
    funnel_cache: dict[str, Any] = field(default_factory=dict)
    webhook_health: WebhookHealth = field(default_factory=WebhookHealth)

    @property
    def instance_id(self) -> str:
        """This bot's id."""
        return self.settings.instance_id

    @property
    def fallback_text(self) -> str:
        """Text sent when no funnel step and no LLM answer fits."""
        return str(self.config.get("fallback_text") or DEFAULT_FALLBACK_TEXT)

    @property
    def rate_limit_text(self) -> str:
        """The polite notice sent once when a customer goes over the rate limit."""
        return str(self.config.get("rate_limit_text") or DEFAULT_RATE_LIMIT_TEXT)

    def apply_config(self, config: dict[str, Any]) -> None:
        """Switch to a new config (``/control/reload``): new adapter, funnel reloaded lazily."""
        self.config = config
        self.adapter = self.channel.make_adapter(config, self.http)
        self.funnel_cache.clear()

    # -- webhook side -----------------------------------------------------------------------

    def accept_inbound(
        self, message: InboundMessage, *, request_id: str | None = None
    ) -> int | None:
        """Persist a received message to the inbox and hand it to the inbox worker.

        Call this before answering the provider: once it returns, the message survives a crash.

        Returns:
            The inbox id, or ``None`` when the provider delivered this message before.
        """
        rid = request_id or current_request_id()
        customer = message.customer.address()
        now = self.clock()
        inbox_id = self.store.inbox_insert(message, customer=customer, request_id=rid, now=now)
        if inbox_id is None:
            logger.info(
                "duplicate delivery ignored",
                extra={"provider_message_id": message.provider_message_id},
            )
            return None
        if self.inbox is not None:
            fresh = InboxRow(
                id=inbox_id,
                provider_message_id=message.provider_message_id,
                customer=customer,
                message=message,
                state="received",
                attempts=0,
                request_id=rid,
                received_at=now,
            )
            self.inbox.submit(inbox_id, customer, fresh)
        return inbox_id

    def apply_status(self, update: StatusUpdate) -> bool:
        """Apply a delivery status report (monotonic; unknown ids are ignored).

        A status carrying an outbox tag (``update.tag``, ``ob:{outbox id}:{part}``) is also the
        provider's confirmation that it accepted that part: the part is recorded on its outbox
        row (with its ``messages`` row) and the row is made due now, so a row held after a
        crash is settled without sending that part again.
        """
        now = self.clock()
        confirmed = False
        target = parse_part_tag(update.tag)
        if target is not None:
            outbox_id, part = target
            confirmed = self.store.outbox_confirm_part(
                outbox_id, part, update.provider_message_id, now=now
            )
            if confirmed:
                self.wake_outbox()
        changed = self.store.update_message_status(
            update.provider_message_id,
            update.status,
            error=update.error,
            error_code=update.error_code,
            now=now,
        )
        log = logger.warning if update.status == "failed" else logger.debug
        log(
            "delivery status",
            extra={
                "provider_message_id": update.provider_message_id,
                "status": update.status,
                "changed": changed,
                "confirmed_part": confirmed,
                "error": update.error,
                "error_code": update.error_code,
            },
        )
        return changed

    def dead_letter(self, raw: bytes | str, reason: str, *, request_id: str | None = None) -> None:
        """Keep a signed body the bot could not interpret (answered 200 so Meta stops retrying)."""
        self.store.add_dead_letter(raw, reason, request_id=request_id or current_request_id())
        logger.warning("dead letter stored", extra={"reason": reason})

    # -- sending ----------------------------------------------------------------------------

    def enqueue_reply(
        self,
        customer: CustomerRef,
        reply: Reply,
        *,
        user_id: int | None,
        source_inbox_id: int | None = None,
        origin: str = "bot",
        reply_to: str | None = None,
    ) -> int:
        """Queue one reply (paginated by the channel) in the outbox; return the outbox id.

        When the channel cannot show the whole reply, the first page is queued and the rest is
        kept under a token that the page's "More" option (``nav:more:<token>``) brings back.
        """
        token = secrets.token_hex(4)
        first, rest = self.channel.paginate(reply, token)
        with self.store.transaction():
            if rest is not None:
                self.store.save_continuation(token, reply_to_dict(rest), user_id=user_id)
            return self.store.outbox_add(
                customer=customer,
                reply=reply_to_dict(first),
                user_id=user_id,
                reply_to=reply_to,
                source_inbox_id=source_inbox_id,
                origin=origin,
                request_id=current_request_id(),
                now=self.clock(),
            )

    def wake_outbox(self) -> None:
        """Tell the outbox worker there is something to send."""
        if self.outbox is not None:
            self.outbox.wake()
