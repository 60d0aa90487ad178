"""Channel-neutral replies → SMS bodies.

SMS has no buttons and no formatting: options become a numbered list in the order of
:func:`shared.routing.reply_options` (the numbering the router maps a typed digit back to),
``*bold*`` markers are dropped, and long text is split into messages of at most 1600
characters (Twilio's limit for one message; the carrier splits further into segments).
"""

from __future__ import annotations

import logging

from shared.botkit.text import split_text, strip_bold
from shared.channels.base import AudioReply, ButtonsReply, ListReply, Reply, TextReply
from shared.routing import reply_options

logger = logging.getLogger(__name__)

BODY_MAX = 1600
REPLY_HINT = "Reply with a number."


def _one_line(text: str) -> str:
    return " ".join(strip_bold(text).split())


def numbered_options(reply: Reply) -> list[str]:
    """Return the option lines (``1. DIY``...) of a reply, in the order digits select them."""
    descriptions: dict[str, str] = {}
    if isinstance(reply, ListReply):
        descriptions = {r.id: r.description for s in reply.sections for r in s.rows}
    lines = []
    for n, (callback, title) in enumerate(reply_options(reply), 1):
        line = f"{n}. {_one_line(title)}"
        description = _one_line(descriptions.get(callback, ""))
        if description:
            line = f"{line} - {description}"
        lines.append(line)
    return lines


def render_text(reply: Reply) -> str:
    """Return the whole text of a reply as the customer reads it (before splitting).

    Raises:
        ValueError: an audio reply (SMS cannot carry a voice note without a public media URL).
    """
    if isinstance(reply, AudioReply):
        raise ValueError("voice replies cannot be sent by SMS")
    text = strip_bold(reply.text).strip()
    if isinstance(reply, TextReply):
        return text
    lines = numbered_options(reply)
    if not lines:
        return text
    parts = [text] if text else []
    parts.append("\n".join(lines))
    parts.append(REPLY_HINT)
    return "\n\n".join(parts)


def render(reply: Reply) -> list[str]:
    """Return the SMS bodies for one reply, in sending order (none for blank text).

    Raises:
        ValueError: an audio reply.
    """
    text = render_text(reply)
    if not text.strip():
        return []
    if isinstance(reply, ButtonsReply | ListReply) and len(text) > BODY_MAX:
        logger.info("long SMS reply split", extra={"chars": len(text)})
    return [chunk for chunk in split_text(text, BODY_MAX) if chunk.strip()]
