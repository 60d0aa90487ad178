"""Twilio webhook form fields → inbound messages and delivery statuses.

Pure functions over the decoded form (``MultiDict`` or ``dict`` of strings). Inbound SMS/MMS
carry ``MessageSid``, ``From``, ``To``, ``Body``, ``NumMedia`` and ``MediaUrl{n}`` /
``MediaContentType{n}``; status callbacks carry ``MessageSid`` (``SmsSid`` on older accounts),
``MessageStatus`` and, for failures, ``ErrorCode`` / ``ErrorMessage``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shared.channels.base import (
    PHONE,
    CustomerRef,
    InboundKind,
    InboundMessage,
    StatusUpdate,
)
from shared.phones import normalize_phone

logger = logging.getLogger(__name__)

#: Query parameter of the ``StatusCallback`` URL carrying the message's ``{tag}:{part}`` (the
#: adapter's ``TAG_PARAM``; repeated here so parsing does not import the Twilio SDK).
TAG_PARAM = "ob"

#: Twilio ``MessageStatus`` → the runtime's status (``None``: nothing to record; the bot marks a
#: message ``sent`` as soon as Twilio accepted it).
STATUS_MAP: dict[str, str | None] = {
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


class FormError(ValueError):
    """A required field is missing or malformed (the webhook answers 400)."""


class SenderError(ValueError):
    """The form is well formed but its sender is not a phone number (kept as a dead letter)."""


def _get(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return str(value).strip() if value is not None else ""


def media_kind(content_type: str) -> InboundKind:
    """Map an MMS ``MediaContentType`` to the runtime's message kind."""
    main = content_type.split(";")[0].strip().lower()
    if main.startswith("image/"):
        return "image"
    if main.startswith("audio/"):
        return "audio"
    if main.startswith("video/"):
        return "other"
    return "document"


def parse_inbound(form: Mapping[str, Any]) -> InboundMessage:
    """Build the inbound message of an incoming-message webhook.

    Args:
        form: the decoded form fields.

    Returns:
        The message; the customer is keyed by the sender's E.164 phone.

    Raises:
        FormError: ``MessageSid`` or ``From`` is missing, or ``NumMedia`` is not a number.
        SenderError: ``From`` is not a phone number (short code, alphanumeric sender).
    """
    sid = _get(form, "MessageSid") or _get(form, "SmsMessageSid") or _get(form, "SmsSid")
    sender = _get(form, "From")
    if not sid:
        raise FormError("MessageSid is missing")
    if not sender:
        raise FormError("From is missing")
    try:
        phone = normalize_phone(sender)
    except ValueError as exc:
        raise SenderError(f"From is not a phone number: {sender!r}") from exc
    num_media_text = _get(form, "NumMedia") or "0"
    if not num_media_text.isdigit():
        raise FormError(f"NumMedia is not a number: {num_media_text!r}")
    raw = {key: str(form[key]) for key in form}
    message = InboundMessage(
        provider_message_id=sid,
        customer=CustomerRef({PHONE: phone}),
        kind="text",
        text=str(form.get("Body") or ""),
        raw=raw,
    )
    if int(num_media_text) > 0:
        url = _get(form, "MediaUrl0")
        mime = _get(form, "MediaContentType0")
        message.kind = media_kind(mime) if url else "other"
        message.media_id = url or None
        message.media_mime = mime or None
    return message


def parse_status(
    form: Mapping[str, Any], query: Mapping[str, str] | None = None
) -> StatusUpdate | None:
    """Build the status update of a status callback.

    Args:
        form: the callback's form fields.
        query: the query string of the URL Twilio called: the ``StatusCallback`` the bot gave
            with the message, whose ``ob`` parameter is the message's ``{tag}:{part}``.

    Returns:
        The update, or ``None`` for intermediate statuses (``queued``, ``sending``...) and
        statuses Twilio may add later — except that a tagged callback is always returned (any
        status proves Twilio accepted the message; ``status`` is then ``accepted``, which
        changes no delivery status).

    Raises:
        FormError: ``MessageSid`` or ``MessageStatus`` is missing.
    """
    sid = _get(form, "MessageSid") or _get(form, "SmsSid")
    twilio_status = (_get(form, "MessageStatus") or _get(form, "SmsStatus")).lower()
    if not sid:
        raise FormError("MessageSid is missing")
    if not twilio_status:
        raise FormError("MessageStatus is missing")
    tag = _get(query, TAG_PARAM) if query is not None else ""
    status = STATUS_MAP.get(twilio_status)
    if status is None:
        if twilio_status not in STATUS_MAP:
            logger.debug("ignoring unknown Twilio status %s", twilio_status)
        if not tag:
            return None
        return StatusUpdate(provider_message_id=sid, status="accepted", tag=tag)
    update = StatusUpdate(provider_message_id=sid, status=status, tag=tag or None)
    code_text = _get(form, "ErrorCode")
    if code_text.isdigit() and int(code_text) != 0:
        update.error_code = int(code_text)
    if status == "failed":
        message = _get(form, "ErrorMessage")
        detail = message or f"Twilio {twilio_status}"
        if update.error_code:
            detail = f"{detail} ({update.error_code})"
        update.error = detail
    return update
