"""Channel-neutral replies → WhatsApp Cloud API message payloads, always within Meta's limits.

Two steps:

* :func:`paginate` (called by the runtime before a reply is queued) splits replies with more
  choices than one message may carry: the first page gets a "More" button/row whose id is
  ``nav:more:<token>``; the runtime keeps the rest under that token.
* :func:`render` turns one (page of a) reply into one or more payloads: long text is split, long
  interactive bodies are sent as text first, titles are clipped, duplicate titles and ids are made
  unique. Whatever it is given, it never produces a payload Meta would reject.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.botkit.text import split_text as _split_text
from shared.channels.base import (
    AudioReply,
    Button,
    ButtonsReply,
    ListReply,
    ListRow,
    ListSection,
    Reply,
    TextReply,
)

logger = logging.getLogger(__name__)

TEXT_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_ROWS_MAX = 10
LIST_SECTIONS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
SECTION_TITLE_MAX = 24
LIST_BUTTON_MAX = 20
#: ``biz_opaque_callback_data``: any string up to 512 characters, echoed in status webhooks.
CALLBACK_DATA_MAX = 512

MORE_TITLE = "More ▸"
MORE_TEXT = "More options:"
DEFAULT_BODY = "Please choose:"
DEFAULT_LIST_BUTTON = "Options"
NAV_MORE = "nav:more:"


def clip(text: str, limit: int) -> str:
    """Shorten ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    text = " ".join(text.split())  # titles are one line; newlines would count but not show
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


def split_text(text: str, limit: int = TEXT_MAX) -> list[str]:
    """Split text into chunks of at most ``limit`` characters (WhatsApp's text limit by default).

    Returns:
        At least one chunk; blank text gives ``[""]``.
    """
    return _split_text(text, limit)


def _rows(reply: ListReply) -> list[tuple[str, ListRow]]:
    return [(section.title, row) for section in reply.sections for row in section.rows]


def _regroup(rows: list[tuple[str, ListRow]]) -> list[ListSection]:
    sections: list[ListSection] = []
    for title, row in rows:
        if sections and sections[-1].title == title:
            sections[-1].rows.append(row)
        else:
            sections.append(ListSection(title=title, rows=[row]))
    return sections


def paginate(reply: Reply, token: str) -> tuple[Reply, Reply | None]:
    """Split a reply into what fits one WhatsApp message and the rest.

    Args:
        reply: the full reply.
        token: names the rest; the first page's "More" choice carries ``nav:more:<token>``.

    Returns:
        ``(first page, rest or None)``.
    """
    more_id = f"{NAV_MORE}{token}"
    if isinstance(reply, ButtonsReply) and len(reply.buttons) > BUTTONS_MAX:
        keep = BUTTONS_MAX - 1
        first = ButtonsReply(
            text=reply.text, buttons=[*reply.buttons[:keep], Button(id=more_id, title=MORE_TITLE)]
        )
        return first, ButtonsReply(text=MORE_TEXT, buttons=reply.buttons[keep:])
    if isinstance(reply, ListReply):
        rows = _rows(reply)
        if len(rows) > LIST_ROWS_MAX:
            keep = LIST_ROWS_MAX - 1
            page = [*rows[:keep], (rows[keep - 1][0], ListRow(id=more_id, title=MORE_TITLE))]
            first_page = ListReply(text=reply.text, button=reply.button, sections=_regroup(page))
            rest = ListReply(text=MORE_TEXT, button=reply.button, sections=_regroup(rows[keep:]))
            return first_page, rest
    return reply, None


def _unique(values: list[str], limit: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        candidate = clip(value, limit) or "-"
        n = 2
        while candidate in seen:
            suffix = f" {n}"
            candidate = clip(value, limit - len(suffix)) + suffix
            n += 1
        seen.add(candidate)
        out.append(candidate)
    return out


def _text_payloads(text: str, *, preview_url: bool = True) -> list[dict[str, Any]]:
    if not text.strip():
        return []
    return [
        {"type": "text", "text": {"body": chunk, "preview_url": preview_url}}
        for chunk in split_text(text, TEXT_MAX)
        if chunk
    ]


def _body_and_lead(text: str) -> tuple[list[dict[str, Any]], str]:
    """Return text messages to send first and the interactive body that fits."""
    text = text.strip()
    if not text:
        return [], DEFAULT_BODY
    if len(text) <= INTERACTIVE_BODY_MAX:
        return [], text
    chunks = split_text(text, INTERACTIVE_BODY_MAX)
    return _text_payloads("\n\n".join(chunks[:-1])), chunks[-1]


def _buttons_payloads(reply: ButtonsReply) -> list[dict[str, Any]]:
    buttons = [b for b in reply.buttons if b.id and b.title]
    if not buttons:
        return _text_payloads(reply.text or DEFAULT_BODY)
    if len(buttons) > BUTTONS_MAX:
        # Not paginated by the runtime: a list shows up to 10 choices in one message.
        logger.warning("more than 3 buttons reached the renderer; sending a list")
        rows = [ListRow(id=b.id, title=b.title) for b in buttons]
        as_list = ListReply(
            text=reply.text, button=DEFAULT_LIST_BUTTON, sections=[ListSection("", rows)]
        )
        return _list_payloads(as_list)
    lead, body = _body_and_lead(reply.text)
    titles = _unique([b.title for b in buttons], BUTTON_TITLE_MAX)
    ids = _unique([b.id for b in buttons], BUTTON_ID_MAX)
    interactive = {
        "type": "button",
        "body": {"text": body},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": i, "title": t}}
                for i, t in zip(ids, titles, strict=True)
            ]
        },
    }
    return [*lead, {"type": "interactive", "interactive": interactive}]


def _list_payloads(reply: ListReply) -> list[dict[str, Any]]:
    rows = [(title, row) for title, row in _rows(reply) if row.id and row.title]
    if not rows:
        return _text_payloads(reply.text or DEFAULT_BODY)
    if len(rows) > LIST_ROWS_MAX:
        logger.warning("list with %d rows reached the renderer; clipping to 10", len(rows))
        rows = rows[:LIST_ROWS_MAX]
    sections = _regroup(rows)[:LIST_SECTIONS_MAX]
    lead, body = _body_and_lead(reply.text)
    row_ids = _unique([r.id for s in sections for r in s.rows], ROW_ID_MAX)
    multi = len(sections) > 1
    section_titles = _unique(
        [s.title or f"Options {n}" for n, s in enumerate(sections, 1)], SECTION_TITLE_MAX
    )
    out_sections: list[dict[str, Any]] = []
    index = 0
    for section, title in zip(sections, section_titles, strict=True):
        out_rows = []
        for row in section.rows:
            title_text = clip(row.title, ROW_TITLE_MAX) or "-"
            item: dict[str, Any] = {"id": row_ids[index], "title": title_text}
            description = clip(row.description, ROW_DESCRIPTION_MAX)
            if description:
                item["description"] = description
            out_rows.append(item)
            index += 1
        out_section: dict[str, Any] = {"rows": out_rows}
        if multi or section.title:
            out_section["title"] = title
        out_sections.append(out_section)
    interactive = {
        "type": "list",
        "body": {"text": body},
        "action": {
            "button": clip(reply.button.strip() or DEFAULT_LIST_BUTTON, LIST_BUTTON_MAX),
            "sections": out_sections,
        },
    }
    return [*lead, {"type": "interactive", "interactive": interactive}]


def render(
    reply: Reply, recipient: dict[str, str], *, reply_to: str | None = None
) -> list[dict[str, Any]]:
    """Build the Graph API request bodies for one reply.

    Args:
        reply: a reply (an :class:`AudioReply` must already carry a ``media_id``).
        recipient: ``{"to": phone}`` or ``{"recipient": bsuid}``.
        reply_to: a WhatsApp message id to quote (``context``) on the first message.

    Returns:
        The ``POST /messages`` bodies, in sending order (none for a blank text reply).

    Raises:
        ValueError: an audio reply without a media id.
    """
    if isinstance(reply, TextReply):
        bodies = _text_payloads(reply.text)  # blank text: nothing to send
    elif isinstance(reply, ButtonsReply):
        bodies = _buttons_payloads(reply)
    elif isinstance(reply, ListReply):
        bodies = _list_payloads(reply)
    elif isinstance(reply, AudioReply):
        if not reply.media_id:
            raise ValueError("audio reply needs a media id (upload first)")
        bodies = [{"type": "audio", "audio": {"id": reply.media_id}}]
    else:  # pragma: no cover - Reply is a closed union
        raise ValueError(f"unknown reply {reply!r}")
    payloads = []
    for n, body in enumerate(bodies):
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **recipient,
            **body,
        }
        if n == 0 and reply_to:
            payload["context"] = {"message_id": reply_to}
        payloads.append(payload)
    return payloads


def template_payload(
    recipient: dict[str, str], name: str, language: str, params: list[str] | None = None
) -> dict[str, Any]:
    """Build a template message body (``params`` fill the body's ``{{1}}``, ``{{2}}``...)."""
    template: dict[str, Any] = {"name": name, "language": {"code": language or "en_US"}}
    if params:
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
        ]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **recipient,
        "type": "template",
        "template": template,
    }

