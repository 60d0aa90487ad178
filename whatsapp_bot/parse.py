"""WhatsApp Cloud API webhook payload → inbound messages and delivery statuses.

Pure functions over the decoded JSON. Unknown change fields, message types and status values are
ignored (Meta adds new ones); a payload whose structure makes no sense raises
:class:`PayloadError` so the webhook can keep it as a dead letter.

Message echoes (``smb_message_echoes``, :func:`parse_echoes`): what the business wrote to a
customer from the WhatsApp Business app on its own phone (coexistence); the bot records them and
pauses for that customer (human handoff, issue 13).

Customers are identified by every id the payload gives: ``from``/``wa_id`` (phone, may be absent
for customers who adopted a username), ``contacts[].user_id`` / ``from_user_id`` (BSUID),
``parent_user_id``, ``profile.username`` and ``profile.name``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.channels.base import (
    BSUID,
    PARENT_BSUID,
    PHONE,
    USERNAME,
    CustomerRef,
    InboundKind,
    InboundMessage,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

STATUSES = frozenset({"sent", "delivered", "read", "failed"})
MEDIA_KINDS: dict[str, InboundKind] = {
    "audio": "audio",
    "voice": "audio",
    "image": "image",
    "document": "document",
    "video": "other",
    "sticker": "other",
}
IGNORED_TYPES = frozenset({"reaction", "unsupported", "system", "ephemeral", "request_welcome"})


class PayloadError(ValueError):
    """The payload is JSON but not a WhatsApp webhook this bot can interpret."""


def _phone(raw: Any) -> str | None:
    if not raw:
        return None
    digits = "".join(ch for ch in str(raw) if ch.isdigit())
    return f"+{digits}" if digits else None


def _text(value: Any) -> str | None:
    """A string field as text, or ``None``: a number is kept as its digits, any other JSON type
    (a list or object where Meta sends a string) is dropped instead of travelling on as a dict.
    """
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _int(value: Any) -> int:
    """A Unix timestamp or error code; 0 when it is missing or not a finite number."""
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where} is not a list")
    return value


def _contact_for(message: dict[str, Any], contacts: list[dict[str, Any]]) -> dict[str, Any]:
    sender = message.get("from")
    sender_user = message.get("from_user_id")
    for contact in contacts:
        if sender and contact.get("wa_id") == sender:
            return contact
        if sender_user and contact.get("user_id") == sender_user:
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def customer_of(message: dict[str, Any], contacts: list[dict[str, Any]]) -> CustomerRef:
    """Build the sender's :class:`CustomerRef` from a message and the payload's contacts.

    Raises:
        PayloadError: neither a phone nor a BSUID is present.
    """
    contact = _contact_for(message, contacts)
    profile = _dict(contact.get("profile"))
    customer = CustomerRef(
        {
            PHONE: _phone(_text(message.get("from")) or _text(contact.get("wa_id"))),
            BSUID: _text(message.get("from_user_id")) or _text(contact.get("user_id")),
            PARENT_BSUID: (
                _text(message.get("from_parent_user_id")) or _text(contact.get("parent_user_id"))
            ),
            USERNAME: _text(profile.get("username")),
        },
        profile_name=_text(profile.get("name")),
    )
    if not customer.phone and not customer.bsuid:
        raise PayloadError("message without a sender phone or BSUID")
    return customer


def _message(raw: dict[str, Any], contacts: list[dict[str, Any]]) -> InboundMessage | None:
    message_id = raw.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise PayloadError("message without an id")
    kind_name = str(raw.get("type") or "")
    if kind_name in IGNORED_TYPES:
        logger.debug("ignoring message type %s", kind_name)
        return None
    message = InboundMessage(
        provider_message_id=message_id,
        customer=customer_of(raw, contacts),
        timestamp=_int(raw.get("timestamp")),
        context_message_id=_text(_dict(raw.get("context")).get("id")),
        raw=raw,
    )
    if kind_name == "text":
        message.kind = "text"
        message.text = _text(_dict(raw.get("text")).get("body")) or ""
    elif kind_name == "interactive":
        interactive = _dict(raw.get("interactive"))
        sub = interactive.get("type")
        if sub == "button_reply":
            reply = _dict(interactive.get("button_reply"))
            message.kind = "button"
        elif sub == "list_reply":
            reply = _dict(interactive.get("list_reply"))
            message.kind = "list"
        else:
            logger.debug("ignoring interactive type %s", sub)
            return None
        message.payload = _text(reply.get("id"))
        message.text = _text(reply.get("title")) or ""
    elif kind_name == "button":  # quick-reply button of a template
        button = _dict(raw.get("button"))
        message.kind = "button"
        message.payload = _text(button.get("payload"))
        message.text = _text(button.get("text")) or ""
    elif kind_name in MEDIA_KINDS:
        media = _dict(raw.get(kind_name))
        message.kind = MEDIA_KINDS[kind_name]
        message.media_id = _text(media.get("id")) or _text(media.get("link"))
        message.media_mime = _text(media.get("mime_type"))
        message.text = _text(media.get("caption")) or ""
    elif kind_name == "location":
        location = _dict(raw.get("location"))
        message.kind = "location"
        message.location = {
            key: location.get(key) for key in ("latitude", "longitude", "name", "address")
        }
        message.text = ", ".join(
            str(location[k]) for k in ("name", "address") if location.get(k)
        )
    elif kind_name == "contacts":
        shared = _list(raw.get("contacts"), "contacts")
        names = [_text(_dict(_dict(c).get("name")).get("formatted_name")) for c in shared]
        message.kind = "contacts"
        message.text = ", ".join(n for n in names if n)
    else:
        logger.debug("ignoring unknown message type %s", kind_name)
        return None
    return message


def _status(raw: dict[str, Any]) -> StatusUpdate | None:
    message_id = raw.get("id")
    status = raw.get("status")
    if not isinstance(message_id, str) or not message_id:
        raise PayloadError("status without an id")
    if not isinstance(status, str) or status not in STATUSES:
        return None
    update = StatusUpdate(provider_message_id=message_id, status=status)
    update.timestamp = _int(raw.get("timestamp"))
    # echoed from the message the bot sent: which outbox row and part this status confirms
    update.tag = _text(raw.get("biz_opaque_callback_data"))
    errors = _list(raw.get("errors"), "statuses[].errors")
    if errors:
        error = _dict(errors[0])
        details = _dict(error.get("error_data")).get("details")
        title = error.get("title") or error.get("message") or "error"
        update.error = f"{title}: {details}" if details else str(title)
        code = error.get("code")
        update.error_code = int(str(code)) if str(code).isdigit() else None
    return update


def parse_payload(data: Any) -> tuple[list[InboundMessage], list[StatusUpdate]]:
    """Extract every message and status from a webhook body (several entries and changes).

    Args:
        data: the decoded JSON body.

    Returns:
        ``(messages, statuses)`` in payload order.

    Raises:
        PayloadError: the body is not a WhatsApp webhook (wrong shape, messages without ids).
    """
    if not isinstance(data, dict):
        raise PayloadError("body is not a JSON object")
    if data.get("object") not in (None, "whatsapp_business_account"):
        raise PayloadError(f"unexpected object {data.get('object')!r}")
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("no entry list")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    for entry in entries:
        for change in _list(_dict(entry).get("changes"), "entry[].changes"):
            change = _dict(change)
            if change.get("field", "messages") != "messages":
                logger.debug("ignoring webhook field %s", change.get("field"))
                continue
            value = _dict(change.get("value"))
            contacts = [_dict(c) for c in _list(value.get("contacts"), "contacts")]
            for raw in _list(value.get("messages"), "messages"):
                parsed = _message(_dict(raw), contacts)
                if parsed is not None:
                    messages.append(parsed)
            for raw in _list(value.get("statuses"), "statuses"):
                update = _status(_dict(raw))
                if update is not None:
                    statuses.append(update)
    return messages, statuses


# -- message echoes (coexistence: the business answers from the WhatsApp Business app) --------

ECHO_FIELD = "smb_message_echoes"


@dataclass(slots=True)
class MessageEcho:
    """A message the business sent to a customer from its own phone (``smb_message_echoes``).

    Attributes:
        provider_message_id: the echoed message's ``wamid``.
        customer: the recipient (``to`` phone, ``to_user_id`` BSUID).
        kind: the message type (``text``, ``image``...).
        text: its text or caption.
        timestamp: Unix seconds.
    """

    provider_message_id: str
    customer: CustomerRef
    kind: str
    text: str
    timestamp: int


def parse_echoes(data: Any) -> list[MessageEcho]:
    """Extract the ``smb_message_echoes`` of a webhook body (``[]`` for any other body).

    Raises:
        PayloadError: an echo without an id or a recipient.
    """
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        return []
    echoes: list[MessageEcho] = []
    for entry in data["entry"]:
        for change in _list(_dict(entry).get("changes"), "entry[].changes"):
            change = _dict(change)
            if change.get("field") != ECHO_FIELD:
                continue
            value = _dict(change.get("value"))
            for raw in _list(value.get("message_echoes"), "message_echoes"):
                raw = _dict(raw)
                message_id = _text(raw.get("id"))
                if not message_id:
                    raise PayloadError("message echo without an id")
                customer = CustomerRef(
                    {PHONE: _phone(_text(raw.get("to"))), BSUID: _text(raw.get("to_user_id"))}
                )
                if not customer.phone and not customer.bsuid:
                    raise PayloadError("message echo without a recipient")
                kind = str(raw.get("type") or "text")
                body = _dict(raw.get(kind))
                text = _text(body.get("body")) or _text(body.get("caption")) or ""
                echoes.append(
                    MessageEcho(message_id, customer, kind, text, _int(raw.get("timestamp")))
                )
    return echoes
