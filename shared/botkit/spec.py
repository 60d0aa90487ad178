"""What a channel package implements so the shared runtime can run it: its :class:`ChannelSpec`
(routes, adapter factory, hooks, :class:`Capabilities`), its :class:`ChannelAdapter` (sending),
and the optional adapter capabilities as typed protocols.

The runtime never probes an adapter with ``getattr``: an optional ability is a
``runtime_checkable`` :class:`~typing.Protocol` (:class:`DownloadsMedia`, :class:`UploadsMedia`,
:class:`SendsVoice`, :class:`SendsTemplates`, :class:`MarksRead`, :class:`AnswersCallbacks`,
:class:`SetsWebhook`) checked with ``isinstance``, so mypy checks every call's signature. What a
channel can show (voice notes, templates, buttons, lists, text length, a customer-service window)
is declared once, in the channel's manifest (:class:`shared.channels.registry.Capabilities`,
re-exported here); the spec carries it as :attr:`ChannelSpec.capabilities`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import aiohttp
from aiohttp import web

from shared.channels.base import CustomerRef, InboundMessage, Reply, SendError
from shared.channels.registry import Capabilities
from shared.phones import looks_like_phone, phone_digits
from shared.store.files import bot_db_filename

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

__all__ = [
    "VOICE_MIME",
    "AnswersCallbacks",
    "Capabilities",
    "ChannelAdapter",
    "ChannelSpec",
    "DownloadsMedia",
    "MarksRead",
    "PartCallback",
    "PartCounter",
    "SendsTemplates",
    "SendsVoice",
    "SetsWebhook",
    "UploadsMedia",
    "part_tag",
    "send_parts",
]

#: The audio format of a voice note everywhere in the fleet (what ``/internal/tts`` returns).
VOICE_MIME = "audio/ogg"


# ------------------------------------------------------------------------------ sending

PartCallback = Callable[[int, str], None]
"""Called after each accepted part with ``(part index, provider id)``."""


@runtime_checkable
class PartCounter(Protocol):
    """An ``on_part`` callback that also wants the number of parts before the first is sent
    (the outbox uses it to record the last part together with the row's completion)."""

    def __call__(self, index: int, provider_id: str, /) -> None:
        """Record one accepted part."""

    def expect(self, total: int) -> None:
        """Learn how many parts the reply rendered to."""


P = TypeVar("P")


def part_tag(tag: str, part: int) -> str:
    """Return the per-part tag an adapter attaches to a provider message (``{tag}:{part}``)."""
    return f"{tag}:{part}"


async def send_parts(
    parts: Sequence[P],
    send_one: Callable[[int, P], Awaitable[str]],
    *,
    skip_parts: frozenset[int] = frozenset(),
    on_part: PartCallback | None = None,
) -> list[str]:
    """Send rendered parts in order, skipping those already accepted; the adapters' common loop.

    Args:
        parts: the rendered provider requests, in sending order.
        send_one: sends part ``index`` and returns its provider id (raises :class:`SendError`).
        skip_parts: indexes the provider already accepted (not sent again).
        on_part: called after each accepted part, before the next one is sent.

    Returns:
        The provider ids of the parts sent by this call, in order.
    """
    if isinstance(on_part, PartCounter):
        on_part.expect(len(parts))
    ids: list[str] = []
    for index, part in enumerate(parts):
        if index in skip_parts:
            continue
        provider_id = await send_one(index, part)
        ids.append(provider_id)
        if on_part is not None:
            on_part(index, provider_id)
    return ids


class ChannelAdapter(ABC):
    """Sends channel-neutral replies through one provider.

    Implementations render each :data:`Reply` within the provider's limits (one reply may become
    several provider messages, "parts") and raise :class:`SendError` on failure.
    """

    @abstractmethod
    async def send(
        self,
        customer: CustomerRef,
        reply: Reply,
        *,
        reply_to: str | None = None,
        tag: str | None = None,
        skip_parts: frozenset[int] = frozenset(),
        on_part: PartCallback | None = None,
    ) -> list[str]:
        """Send one reply; return the provider message ids created by this call.

        Args:
            customer: who to send to.
            reply: what to send.
            reply_to: provider id of the message this one answers, when the channel quotes.
            tag: an opaque id of this reply (the outbox passes ``ob:{outbox id}``); channels
                that can have the provider echo it back in status reports attach
                ``{tag}:{part}`` to every part (:func:`part_tag`).
            skip_parts: indexes of parts the provider already accepted: not sent again.
            on_part: called with ``(part index, provider id)`` after each accepted part, before
                the next one is sent (an :class:`PartCounter` is first told the part count).

        Raises:
            SendError: the provider refused or could not be reached; parts accepted before the
                failure were already reported to ``on_part``.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold no resources
        """Release connections."""


# ------------------------------------------------------------------------------ capabilities


@runtime_checkable
class DownloadsMedia(Protocol):
    """An adapter that fetches a customer's media (a voice note for speech-to-text)."""

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        """Return ``(bytes, mime)`` of an inbound media id.

        Raises:
            SendError: the media could not be fetched.
        """
        ...


@runtime_checkable
class UploadsMedia(Protocol):
    """An adapter that uploads media ahead of a send and gets a provider media id back (WhatsApp
    Graph ``/media``); the outbox row then holds only that id."""

    async def upload_media(self, data: bytes, mime: str, filename: str = "voice.ogg") -> str:
        """Upload ``data``; return the provider's media id.

        Raises:
            SendError: the upload failed.
        """
        ...


@runtime_checkable
class SendsVoice(Protocol):
    """An adapter whose :meth:`ChannelAdapter.send` delivers an
    :class:`~shared.channels.base.AudioReply` as a voice note.

    Attributes:
        voice_formats: the MIME types it sends as voice notes (``("audio/ogg",)``: OGG/Opus).
    """

    voice_formats: tuple[str, ...]


@runtime_checkable
class SendsTemplates(Protocol):
    """An adapter that sends approved message templates (WhatsApp, outside the 24-hour window)."""

    async def send_template(
        self,
        customer: CustomerRef,
        name: str,
        language: str,
        params: list[str] | None = None,
    ) -> list[str]:
        """Send template ``name`` in ``language``; return the provider message ids."""
        ...


@runtime_checkable
class MarksRead(Protocol):
    """An adapter that marks an inbound message as read (WhatsApp blue ticks)."""

    async def mark_read(self, message_id: str) -> bool:
        """Mark it read; best effort (False on failure)."""
        ...


@runtime_checkable
class AnswersCallbacks(Protocol):
    """An adapter that acknowledges a button press (Telegram ``answerCallbackQuery``)."""

    async def answer_callback(self, callback_query_id: str, text: str | None = None) -> bool:
        """Stop the button's spinner; best effort (False on failure)."""
        ...


@runtime_checkable
class SetsWebhook(Protocol):
    """An adapter that registers the bot's webhook with the provider (Telegram ``setWebhook``)."""

    async def set_webhook(self, url: str, secret_token: str) -> None:
        """Register ``url`` with ``secret_token``.

        Raises:
            SendError: the provider refused it.
        """
        ...


class ChannelSpec(ABC):
    """One messaging channel (WhatsApp, SMS, Telegram) as the bot runtime sees it.

    Attributes:
        kind: ``whatsapp``, ``sms`` or ``telegram``.
        capabilities: what the channel can show and when it may write: its manifest's
            :class:`~shared.channels.registry.Capabilities`.
        default_confirm_hold_s: how long a reply interrupted by a crash waits for the
            provider's confirmation before it is sent again (0: the provider never confirms).
    """

    kind: str = ""
    capabilities: Capabilities = Capabilities()
    default_confirm_hold_s: float = 0.0

    @property
    def customer_service_window(self) -> timedelta | None:
        """``capabilities.customer_service_window`` (``None``: the bot may write at any time)."""
        return self.capabilities.customer_service_window

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

    def quote_id(self, message: InboundMessage) -> str | None:
        """The provider id a reply quotes to show which message it answers (WhatsApp
        ``context.message_id``, Telegram ``reply_parameters``); ``None``: cannot quote."""
        return None

    def customer_from_address(self, address: str) -> CustomerRef:
        """Turn an operator-typed address (``/control/send`` ``to``) into a customer reference."""
        text = address.strip()
        if looks_like_phone(text):
            return CustomerRef(phone=f"+{phone_digits(text)}")
        return CustomerRef(bsuid=text)
