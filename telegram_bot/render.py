"""Channel-neutral replies → Telegram Bot API calls.

Buttons and list rows become an inline keyboard, one button per row, in the order of
:func:`shared.routing.reply_options`. ``*bold*`` becomes ``<b>`` and everything else is
HTML-escaped (``parse_mode=HTML``). Text over 4096 characters is split; with a keyboard the
keyboard rides on the last part. A ``callback_data`` over 64 bytes is refused here, before
anything is sent (Telegram would reject it as ``BUTTON_DATA_INVALID``).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import Any

from shared.botkit.text import convert_bold, split_text, strip_bold
from shared.channels.base import AudioReply, ButtonsReply, ListReply, Reply, TextReply
from shared.routing import reply_options

logger = logging.getLogger(__name__)

TEXT_MAX = 4096
CALLBACK_DATA_MAX_BYTES = 64
BUTTON_TEXT_MAX = 64
DEFAULT_BODY = "Please choose:"
PARSE_MODE = "HTML"


class RenderError(ValueError):
    """The reply cannot be shown on Telegram (e.g. a callback id over 64 bytes)."""


@dataclass(slots=True)
class ApiCall:
    """One Bot API call: the method and its parameters (``files`` for multipart uploads)."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[bytes, str, str]] = field(default_factory=dict)


def to_html(text: str) -> str:
    """Escape text for ``parse_mode=HTML`` and turn ``*bold*`` into ``<b>bold</b>``."""

    def escape(part: str) -> str:
        return html.escape(part, quote=False)

    return convert_bold(text, lambda inner: f"<b>{escape(inner)}</b>", escape)


def html_chunks(text: str, limit: int = TEXT_MAX) -> list[str]:
    """Split text so that each chunk, once converted to HTML, is at most ``limit`` characters."""
    size = limit
    while True:
        chunks = [to_html(c) for c in split_text(text, size) if c.strip()]
        if all(len(c) <= limit for c in chunks) or size <= 64:
            return chunks
        size = int(size * 0.8)  # escaping grew a chunk (&amp;, <b>): cut smaller


def _clip(text: str, limit: int) -> str:
    text = " ".join(strip_bold(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def keyboard(reply: Reply) -> dict[str, Any] | None:
    """Return the ``InlineKeyboardMarkup`` of a reply's options, or ``None`` when it has none.

    Raises:
        RenderError: a callback id is over 64 bytes or empty.
    """
    rows = []
    for callback, title in reply_options(reply):
        size = len(callback.encode())
        if size == 0 or size > CALLBACK_DATA_MAX_BYTES:
            raise RenderError(
                f"callback_data {callback!r} is {size} bytes; Telegram allows 1-64"
            )
        rows.append([{"text": _clip(title, BUTTON_TEXT_MAX) or "-", "callback_data": callback}])
    return {"inline_keyboard": rows} if rows else None


def _text_call(chat_id: str, text: str, markup: dict[str, Any] | None = None) -> ApiCall:
    params: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": PARSE_MODE}
    if markup:
        params["reply_markup"] = markup
    return ApiCall("sendMessage", params)


def render(reply: Reply, chat_id: str, *, reply_to: str | None = None) -> list[ApiCall]:
    """Build the Bot API calls for one reply.

    Args:
        reply: the reply (audio needs ``audio`` bytes or a Telegram ``file_id`` in ``media_id``).
        chat_id: the customer's chat (their user id in a private chat).
        reply_to: a Telegram ``message_id`` to quote on the first message.

    Returns:
        The calls in sending order (none for a blank text reply).

    Raises:
        RenderError: the reply cannot be shown (callback id too long, audio without audio).
    """
    calls: list[ApiCall]
    if isinstance(reply, AudioReply):
        if reply.audio:
            calls = [
                ApiCall(
                    "sendVoice",
                    {"chat_id": chat_id},
                    files={"voice": (reply.audio, "voice.ogg", reply.mime.split(";")[0])},
                )
            ]
        elif reply.media_id:
            calls = [ApiCall("sendVoice", {"chat_id": chat_id, "voice": reply.media_id})]
        else:
            raise RenderError("audio reply without audio")
    elif isinstance(reply, TextReply):
        calls = [_text_call(chat_id, chunk) for chunk in html_chunks(reply.text)]
    elif isinstance(reply, ButtonsReply | ListReply):
        markup = keyboard(reply)
        chunks = html_chunks(reply.text) or [html.escape(DEFAULT_BODY, quote=False)]
        calls = [_text_call(chat_id, chunk) for chunk in chunks[:-1]]
        calls.append(_text_call(chat_id, chunks[-1], markup))
    else:  # pragma: no cover - Reply is a closed union
        raise RenderError(f"unknown reply {reply!r}")
    if calls and reply_to and reply_to.isdigit():
        calls[0].params["reply_parameters"] = {
            "message_id": int(reply_to),
            "allow_sending_without_reply": True,
        }
    return calls
