"""Channel-neutral message types shared by every bot.

A channel package (``whatsapp_bot``, ``sms_bot``, ``telegram_bot``) parses provider payloads into
:class:`InboundMessage` and renders the channel-neutral :data:`Reply` values that routing produces
into provider requests. Nothing here knows about any provider. What a channel implements (its
spec, its adapter and the adapter's optional capabilities) is in :mod:`shared.botkit.spec`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

InboundKind = Literal[
    "text", "button", "list", "audio", "image", "document", "location", "contacts", "other"
]


#: Identity schemes the shipped channels produce (a channel may add its own).
PHONE = "phone"
BSUID = "bsuid"
PARENT_BSUID = "parent_bsuid"
USERNAME = "username"
TELEGRAM_USER = "telegram_user"

#: Schemes that find a customer, strongest first; any other scheme comes after these
#: (alphabetically) and the movable schemes last (see :data:`MOVABLE_SCHEMES`).
SCHEME_PRIORITY: tuple[str, ...] = (BSUID, PHONE, TELEGRAM_USER)
#: Schemes whose value may pass to another customer (a handle given up and taken by someone
#: else): the latest holder keeps it, a customer has at most one, and they are the last resort
#: when finding a customer.
MOVABLE_SCHEMES: tuple[str, ...] = (USERNAME, PARENT_BSUID)
#: Schemes a reply can be addressed to, in order of preference (then any other non-movable one).
ADDRESS_ORDER: tuple[str, ...] = (PHONE, BSUID, TELEGRAM_USER, USERNAME)


def lookup_order(schemes: Iterable[str]) -> list[str]:
    """Order ``schemes`` the way a customer is looked up: :data:`SCHEME_PRIORITY`, then other
    fixed schemes alphabetically, then :data:`MOVABLE_SCHEMES`."""
    present = set(schemes)
    first = [s for s in SCHEME_PRIORITY if s in present]
    last = [s for s in MOVABLE_SCHEMES if s in present]
    middle = sorted(present - set(first) - set(last))
    return [*first, *middle, *last]


class IdentityView:
    """Named shortcuts to the well-known identity schemes of anything with ``identities``
    (``{scheme: value}``): a :class:`CustomerRef`, a stored customer."""

    __slots__ = ()
    identities: dict[str, str]

    @property
    def phone(self) -> str | None:
        """The :data:`PHONE` identity."""
        return self.identities.get(PHONE)

    @property
    def bsuid(self) -> str | None:
        """The :data:`BSUID` identity."""
        return self.identities.get(BSUID)

    @property
    def parent_bsuid(self) -> str | None:
        """The :data:`PARENT_BSUID` identity."""
        return self.identities.get(PARENT_BSUID)

    @property
    def username(self) -> str | None:
        """The :data:`USERNAME` identity."""
        return self.identities.get(USERNAME)

    @property
    def telegram_id(self) -> str | None:
        """The :data:`TELEGRAM_USER` identity."""
        return self.identities.get(TELEGRAM_USER)


class CustomerRef(IdentityView):
    """Every identity a channel gives for one customer: a mapping ``scheme → value``.

    Schemes are plain strings (:data:`PHONE` ``+15551234567`` in E.164, :data:`BSUID` the
    WhatsApp business-scoped user id ``BR.150257...``, :data:`PARENT_BSUID`,
    :data:`USERNAME`, :data:`TELEGRAM_USER` the Telegram user id as a string, or any scheme a
    channel declares). Empty values are dropped. The keyword arguments ``phone``, ``bsuid``,
    ``parent_bsuid``, ``username`` and ``telegram_id`` are shorthands for those schemes, and the
    read-only properties of the same names read them back.

    Attributes:
        identities: ``{scheme: value}``.
        profile_name: display name the customer chose (not an identity).
    """

    __slots__ = ("identities", "profile_name")

    def __init__(
        self,
        identities: Mapping[str, str | None] | None = None,
        *,
        profile_name: str | None = None,
        phone: str | None = None,
        bsuid: str | None = None,
        parent_bsuid: str | None = None,
        username: str | None = None,
        telegram_id: str | None = None,
    ) -> None:
        merged: dict[str, str] = {}
        for scheme, value in (identities or {}).items():
            if value:
                merged[str(scheme)] = str(value)
        for scheme, value in (
            (PHONE, phone),
            (BSUID, bsuid),
            (PARENT_BSUID, parent_bsuid),
            (USERNAME, username),
            (TELEGRAM_USER, telegram_id),
        ):
            if value:
                merged[scheme] = str(value)
        self.identities: dict[str, str] = merged
        self.profile_name = profile_name or None

    def get(self, scheme: str) -> str | None:
        """The value of one scheme, or ``None``."""
        return self.identities.get(scheme)






    def merged(self, other: CustomerRef | Mapping[str, str]) -> CustomerRef:
        """A reference with ``other``'s identities added (this one's values win)."""
        extra = other.identities if isinstance(other, CustomerRef) else other
        theirs = other.profile_name if isinstance(other, CustomerRef) else None
        name = self.profile_name or theirs
        return CustomerRef({**extra, **self.identities}, profile_name=name)

    def address(self) -> str:
        """Return the best identifier to reach this customer (phone first)."""
        for scheme in ADDRESS_ORDER:
            value = self.identities.get(scheme)
            if value:
                return value
        for scheme in sorted(self.identities):
            if scheme not in MOVABLE_SCHEMES:
                return self.identities[scheme]
        raise ValueError("customer has no identifier")

    def to_dict(self) -> dict[str, Any]:
        """``{"identities": {...}, "profile_name": ...}`` (see :meth:`from_dict`)."""
        return {"identities": dict(self.identities), "profile_name": self.profile_name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CustomerRef:
        """Inverse of :meth:`to_dict`; also reads the flat form stored before identities
        (``{"phone", "bsuid", "parent_bsuid", "username", "telegram_id", "profile_name"}``)."""
        if "identities" in data:
            return cls(data.get("identities") or {}, profile_name=data.get("profile_name"))
        return cls(
            profile_name=data.get("profile_name"),
            phone=data.get("phone"),
            bsuid=data.get("bsuid"),
            parent_bsuid=data.get("parent_bsuid"),
            username=data.get("username"),
            telegram_id=data.get("telegram_id"),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CustomerRef):
            return NotImplemented
        return self.identities == other.identities and self.profile_name == other.profile_name

    # Mutable, like the dataclass it replaces: not hashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CustomerRef({self.identities!r}, profile_name={self.profile_name!r})"


@dataclass(slots=True)
class InboundMessage:
    """One message a customer sent, parsed from a provider payload.

    Attributes:
        provider_message_id: the provider's unique id (WhatsApp ``wamid``, Twilio ``MessageSid``,
            Telegram ``update_id``/``message_id``); the inbox dedupes on it.
        customer: who sent it.
        kind: what it is.
        text: the text, or for ``button``/``list`` the title the customer saw.
        payload: for ``button``/``list`` the callback id (``prefix:action[:arg]``).
        media_id: provider media id or URL for audio/image/document.
        media_mime: MIME type of the media when known.
        location: ``{"latitude", "longitude", "name", "address"}`` for locations.
        context_message_id: the provider id of the message this one replies to.
        timestamp: provider timestamp (seconds since the epoch), 0 when unknown.
        raw: the provider's own dict for this message, kept for dead letters and debugging.
    """

    provider_message_id: str
    customer: CustomerRef
    kind: InboundKind = "text"
    text: str = ""
    payload: str | None = None
    media_id: str | None = None
    media_mime: str | None = None
    location: dict[str, Any] | None = None
    context_message_id: str | None = None
    timestamp: int = 0
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StatusUpdate:
    """A delivery status report for a message the bot sent.

    Attributes:
        provider_message_id: id the provider gave the outbound message.
        status: ``sent``, ``delivered``, ``read`` or ``failed`` (channels map their own names).
        error: provider error text for ``failed``.
        error_code: provider error code for ``failed`` (WhatsApp 131062 and the like).
        timestamp: provider timestamp, 0 when unknown.
        tag: the ``{tag}:{part}`` the bot attached to the message when it sent it (WhatsApp
            ``biz_opaque_callback_data``, the ``ob`` query parameter of a Twilio
            ``StatusCallback``), or ``None``. It confirms that the provider accepted that part.
    """

    provider_message_id: str
    status: str
    error: str | None = None
    error_code: int | None = None
    timestamp: int = 0
    tag: str | None = None


@dataclass(slots=True)
class Button:
    """A reply button: ``id`` is the callback (``prefix:action[:arg]``), ``title`` is shown."""

    id: str
    title: str


@dataclass(slots=True)
class ListRow:
    """One selectable row of a list message."""

    id: str
    title: str
    description: str = ""


@dataclass(slots=True)
class ListSection:
    """A titled group of rows in a list message."""

    title: str
    rows: list[ListRow]


@dataclass(slots=True)
class TextReply:
    """Plain text. ``*bold*`` marks emphasis; links go in the text (no URL buttons)."""

    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ButtonsReply:
    """Text with reply buttons. Channels paginate when there are more than they allow."""

    text: str
    buttons: list[Button]
    type: Literal["buttons"] = "buttons"


@dataclass(slots=True)
class ListReply:
    """Text with a single-select list (``button`` is the label that opens the list)."""

    text: str
    button: str
    sections: list[ListSection]
    type: Literal["list"] = "list"


@dataclass(slots=True)
class AudioReply:
    """A voice note: OGG/Opus bytes, or a provider media id already uploaded."""

    audio: bytes | None = None
    media_id: str | None = None
    mime: str = "audio/ogg; codecs=opus"
    type: Literal["audio"] = "audio"


Reply = TextReply | ButtonsReply | ListReply | AudioReply


def reply_to_dict(reply: Reply) -> dict[str, Any]:
    """Serialize a reply for the outbox.

    An audio reply keeps its provider media id; audio bytes are stored (base64, ``audio_b64``)
    only when there is no media id, for channels that cannot upload media ahead of the send
    (Telegram ``sendVoice`` takes the file in the sending request).
    """
    if isinstance(reply, TextReply):
        return {"type": "text", "text": reply.text}
    if isinstance(reply, ButtonsReply):
        return {
            "type": "buttons",
            "text": reply.text,
            "buttons": [{"id": b.id, "title": b.title} for b in reply.buttons],
        }
    if isinstance(reply, ListReply):
        return {
            "type": "list",
            "text": reply.text,
            "button": reply.button,
            "sections": [
                {
                    "title": s.title,
                    "rows": [
                        {"id": r.id, "title": r.title, "description": r.description}
                        for r in s.rows
                    ],
                }
                for s in reply.sections
            ],
        }
    data: dict[str, Any] = {"type": "audio", "media_id": reply.media_id, "mime": reply.mime}
    if reply.audio and not reply.media_id:
        data["audio_b64"] = base64.b64encode(reply.audio).decode("ascii")
    return data


def reply_from_dict(data: dict[str, Any]) -> Reply:
    """Inverse of :func:`reply_to_dict`.

    Raises:
        ValueError: the dict is not a reply this module knows.
    """
    kind = data.get("type")
    if kind == "text":
        return TextReply(text=str(data["text"]))
    if kind == "buttons":
        return ButtonsReply(
            text=str(data["text"]),
            buttons=[Button(id=b["id"], title=b["title"]) for b in data["buttons"]],
        )
    if kind == "list":
        return ListReply(
            text=str(data["text"]),
            button=str(data.get("button", "Choose")),
            sections=[
                ListSection(
                    title=s.get("title", ""),
                    rows=[
                        ListRow(id=r["id"], title=r["title"], description=r.get("description", ""))
                        for r in s["rows"]
                    ],
                )
                for s in data["sections"]
            ],
        )
    if kind == "audio":
        encoded = data.get("audio_b64")
        return AudioReply(
            audio=base64.b64decode(encoded) if encoded else None,
            media_id=data.get("media_id"),
            mime=data.get("mime", "audio/ogg"),
        )
    raise ValueError(f"unknown reply type: {kind!r}")


class WebhookError(Exception):
    """A request the webhook refuses; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SendError(Exception):
    """A provider refused or failed a send.

    Attributes:
        retryable: whether trying again later may succeed (429, 5xx, network errors).
        retry_after: seconds the provider asked us to wait, when it said.
        code: provider error code (e.g. WhatsApp 131062), when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code
