"""Telegram Bot API ``Update`` objects → inbound messages.

Pure functions over the decoded JSON. Handled: ``message`` (text, voice/audio, photo, document,
location, contact; other kinds as ``other``) and ``callback_query`` (an inline-keyboard press:
the payload is its ``data``). ``edited_message`` and every other update type are ignored (the
webhook answers 200 and stores nothing). Messages from groups and channels are ignored too: the
bot talks to customers in private chats, where the chat id is the user id.

The provider message id is ``update:{update_id}``, so a redelivered update is recognised.
Customers are keyed by their Telegram user id (no phone); username and name are kept.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from shared.channels.base import PHONE, TELEGRAM_USER, USERNAME, CustomerRef, InboundMessage
from shared.phones import normalize_phone

logger = logging.getLogger(__name__)

CALLBACK_QUERY_ID = "callback_query_id"


class UpdateError(ValueError):
    """The JSON is not an update this bot can interpret (kept as a dead letter)."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> int:
    """An integer field (date, size); 0 when missing or not a finite number."""
    if isinstance(value, bool):
        return 0
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _id(value: Any) -> str | None:
    """A ``file_id``-like string field; anything but a non-empty string is dropped."""
    return value if isinstance(value, str) and value else None


def customer_of(user: dict[str, Any]) -> CustomerRef:
    """Build a :class:`CustomerRef` from a Telegram ``User``.

    Raises:
        UpdateError: the user has no id.
    """
    user_id = user.get("id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise UpdateError("sender without a numeric id")
    name = " ".join(
        str(user[k]).strip() for k in ("first_name", "last_name") if user.get(k)
    ).strip()
    return CustomerRef(
        {
            TELEGRAM_USER: str(user_id),
            USERNAME: str(user["username"]) if user.get("username") else None,
        },
        profile_name=name or None,
    )


def _largest_photo(photos: Any) -> dict[str, Any]:
    sizes = [p for p in photos if isinstance(p, dict)] if isinstance(photos, list) else []
    if not sizes:
        return {}
    return max(sizes, key=lambda p: (_num(p.get("file_size")), _num(p.get("width"))))


def _message(update_id: int, raw: dict[str, Any]) -> InboundMessage | None:
    chat = _dict(raw.get("chat"))
    if chat.get("type", "private") != "private":
        logger.info("ignoring a message from a %s chat", chat.get("type"))
        return None
    sender = _dict(raw.get("from"))
    if not sender:
        raise UpdateError("message without a sender")
    if sender.get("is_bot"):
        return None
    message = InboundMessage(
        provider_message_id=f"update:{update_id}",
        customer=customer_of(sender),
        timestamp=_num(raw.get("date")),
        context_message_id=(
            str(_dict(raw.get("reply_to_message")).get("message_id"))
            if raw.get("reply_to_message")
            else None
        ),
        raw=raw,
    )
    caption = str(raw.get("caption") or "")
    if "text" in raw:
        message.kind = "text"
        message.text = str(raw.get("text") or "")
    elif "voice" in raw or "audio" in raw:
        media = _dict(raw.get("voice") or raw.get("audio"))
        message.kind = "audio"
        message.media_id = _id(media.get("file_id"))
        message.media_mime = _id(media.get("mime_type")) or "audio/ogg"
        message.text = caption
    elif "photo" in raw:
        photo = _largest_photo(raw.get("photo"))
        message.kind = "image"
        message.media_id = _id(photo.get("file_id"))
        message.media_mime = "image/jpeg"
        message.text = caption
    elif "document" in raw:
        document = _dict(raw.get("document"))
        message.kind = "document"
        message.media_id = _id(document.get("file_id"))
        message.media_mime = _id(document.get("mime_type"))
        message.text = caption or str(document.get("file_name") or "")
    elif "location" in raw:
        location = _dict(raw.get("location"))
        venue = _dict(raw.get("venue"))
        message.kind = "location"
        message.location = {
            "latitude": location.get("latitude"),
            "longitude": location.get("longitude"),
            "name": venue.get("title"),
            "address": venue.get("address"),
        }
        message.text = ", ".join(str(v) for v in (venue.get("title"), venue.get("address")) if v)
    elif "contact" in raw:
        contact = _dict(raw.get("contact"))
        name = " ".join(
            str(contact[k]) for k in ("first_name", "last_name") if contact.get(k)
        ).strip()
        phone = str(contact.get("phone_number") or "")
        with contextlib.suppress(ValueError):  # else keep what Telegram sent (shown as text)
            phone = normalize_phone(phone) if phone else ""
        message.kind = "contacts"
        message.text = " ".join(v for v in (name, phone) if v)
        if contact.get("user_id") == sender.get("id") and phone.startswith("+"):
            message.customer.identities[PHONE] = phone  # the customer shared their own number
    else:
        message.kind = "other"
        message.text = caption
    return message


def _callback(update_id: int, raw: dict[str, Any]) -> InboundMessage | None:
    query_id = raw.get("id")
    if not query_id:
        raise UpdateError("callback_query without an id")
    data = raw.get("data")
    if not isinstance(data, str) or not data:
        return None  # a game button or an inline-mode press: nothing to route
    origin = _dict(raw.get("message"))
    if origin and _dict(origin.get("chat")).get("type", "private") != "private":
        logger.info("ignoring a button press in a group chat")
        return None
    return InboundMessage(
        provider_message_id=f"update:{update_id}",
        customer=customer_of(_dict(raw.get("from"))),
        kind="button",
        text=_button_title(origin, data),
        payload=data,
        context_message_id=str(origin["message_id"]) if origin.get("message_id") else None,
        raw={CALLBACK_QUERY_ID: str(query_id), **raw},
    )


def _button_title(origin: dict[str, Any], data: str) -> str:
    """The title of the pressed button, read from the message's keyboard (else the data)."""
    keyboard = _dict(origin.get("reply_markup")).get("inline_keyboard")
    for row in keyboard if isinstance(keyboard, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                return str(button.get("text") or data)
    return data


def parse_update(data: Any) -> InboundMessage | None:
    """Extract the customer message of one update.

    Args:
        data: the decoded JSON body.

    Returns:
        The message, or ``None`` for updates the bot does not handle (edits, group chats...).

    Raises:
        UpdateError: not an update object, no ``update_id``, or a sender without an id.
    """
    if not isinstance(data, dict):
        raise UpdateError("body is not a JSON object")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise UpdateError("no numeric update_id")
    if isinstance(data.get("message"), dict):
        return _message(update_id, data["message"])
    if isinstance(data.get("callback_query"), dict):
        return _callback(update_id, data["callback_query"])
    kinds = [k for k in data if k != "update_id"]
    logger.debug("ignoring update kind %s", ",".join(kinds) or "none")
    return None
