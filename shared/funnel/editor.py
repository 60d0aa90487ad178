"""What the funnel editor needs: checking a document in plain language and previewing it.

The admin UI's Funnel tab edits a funnel document in the browser; it asks the orchestrator
(``POST /admin/funnels/validate`` and ``/admin/funnels/preview``) to check it with
:func:`check_document` and to play a few customer messages through the real router with
:func:`preview`. Nothing here does I/O or touches a bot's stored state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.channels.base import CustomerRef, InboundMessage, reply_to_dict
from shared.funnel.schema import Funnel
from shared.funnel.validation import FunnelError, FunnelValidationError, load_funnel

MAX_ERRORS = 100
"""At most this many problems are reported for one document (the rest are counted)."""

MAX_PREVIEW_STEPS = 50
"""A preview replays at most this many customer messages."""

PREVIEW_CUSTOMER = "+15550000000"

_IDENT_HELP = "use only lower-case letters, digits and _ (e.g. opening_hours)"

# pydantic's wording -> what a business owner reads next to the field
_PLAIN_RULES: list[tuple[str, str]] = [
    (r"^String should have at least 1 character", "must not be empty"),
    (r"^Field required", "is required: fill it in"),
    (r"^String should match pattern '\^\[a-z0-9\]", _IDENT_HELP),
    (r"^String should have at most (\d+) characters?", r"is too long (at most \1 characters)"),
    (r"^List should have at least 1 item", "needs at least one entry"),
    (r"^Dictionary should have at least 1 item", "needs at least one entry"),
    (r"^Extra inputs are not permitted", "is not part of the funnel format (remove it)"),
    (r"^Input should be a valid string", "must be a text"),
    (r"^Input should be a valid integer", "must be a whole number"),
    (r"^Input should be a valid number", "must be a number"),
    (r"^Input should be a valid boolean", "must be yes or no"),
    (r"^Input should be a valid list", "must be a list"),
    (r"^Input should be a valid dictionary", "must be an object ({...})"),
    (r"^Input should be less than or equal to (\S+)", r"must be at most \1"),
    (r"^Input should be greater than or equal to (\S+)", r"must be at least \1"),
    (r"^Input should be greater than (\S+)", r"must be more than \1"),
    (r"^not a callback id", "is not an action the bot knows: pick one from the list"),
    (r"^unknown faq key '(.*)'", r"points to the FAQ answer '\1', which does not exist"),
    (r"^unknown faq section '(.*)'", r"points to the FAQ section '\1', which does not exist"),
    (r"^unknown screen '(.*)'", r"points to the screen '\1', which does not exist"),
    (r"^the funnel has no (\w+)", r"needs the funnel's \1 part, which is switched off"),
    (r"^duplicate faq key '(.*)'", r"the FAQ id '\1' is used twice: ids must be unique"),
    (r"^duplicate section id '(.*)'", r"the section id '\1' is used twice: ids must be unique"),
    (r"^funnel_state '(.*)' is used twice", r"the step id '\1' is used twice: ids must be unique"),
]
_PLAIN = [(re.compile(pattern), plain) for pattern, plain in _PLAIN_RULES]


def plain_message(msg: str) -> str:
    """Say one validation message in plain language.

    Args:
        msg: a message of pydantic or :func:`shared.funnel.validation.check_funnel`.

    Returns:
        What a business owner reads next to the field; unknown messages pass unchanged.
    """
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    for pattern, plain in _PLAIN:
        if pattern.match(msg):
            return pattern.sub(plain, msg, count=1) if "\\" in plain else plain
    return msg


def plain_errors(errors: list[FunnelError]) -> list[FunnelError]:
    """Put every message of ``errors`` in plain language.

    Args:
        errors: the problems, as :class:`~shared.funnel.validation.FunnelValidationError` has them.

    Returns:
        The same problems (at most :data:`MAX_ERRORS`, then one counting the rest).
    """
    out: list[FunnelError] = [
        {"loc": list(e["loc"]), "msg": plain_message(str(e["msg"]))} for e in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        out.append({"loc": [], "msg": f"…and {len(errors) - MAX_ERRORS} more problems"})
    return out


def check_document(doc: Mapping[str, Any]) -> tuple[Funnel | None, list[FunnelError]]:
    """Validate a funnel document.

    Returns:
        ``(funnel, [])`` when it is valid, else ``(None, errors)`` in plain language.
    """
    try:
        return load_funnel(doc), []
    except FunnelValidationError as exc:
        return None, plain_errors(exc.errors)


@dataclass(frozen=True, slots=True)
class PreviewStep:
    """One thing the customer does: types ``text`` or presses a button (``payload``)."""

    text: str = ""
    payload: str | None = None


def preview(
    funnel: Funnel, steps: list[PreviewStep], name: str | None = None
) -> list[dict[str, Any]]:
    """Play ``steps`` through the router from a fresh conversation.

    Args:
        funnel: the (validated) funnel.
        steps: the customer's messages, in order.
        name: the customer's display name (``{name}`` in the welcome text).

    Returns:
        One turn per step: ``{text, payload, replies, handler, needs_llm}``; ``replies`` are
        :func:`shared.channels.base.reply_to_dict` dicts; ``needs_llm`` means no funnel step
        took the message (a real bot would answer it with its AI).
    """
    from shared.routing import ConversationState, route

    state = ConversationState(profile_name=name or None)
    customer = CustomerRef(phone=PREVIEW_CUSTOMER, profile_name=name or None)
    turns: list[dict[str, Any]] = []
    for i, step in enumerate(steps[:MAX_PREVIEW_STEPS]):
        message = InboundMessage(
            provider_message_id=f"preview-{i}",
            customer=customer,
            kind="button" if step.payload else "text",
            text=step.text,
            payload=step.payload or None,
        )
        result = route(message, state, funnel)
        state = result.state
        turns.append(
            {
                "text": step.text,
                "payload": step.payload,
                "replies": [reply_to_dict(r) for r in result.replies],
                "handler": result.handler,
                "needs_llm": result.needs_llm,
            }
        )
    return turns
