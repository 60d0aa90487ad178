"""Telegram Bot API client (aiohttp): sends rendered replies, answers button presses, sets the
webhook.

Calls ``{telegram_api_base_url}/bot{token}/{method}``. Errors become
:class:`~shared.channels.base.SendError`: 429 (with ``parameters.retry_after`` honoured), 5xx and
network errors are retryable; everything else is permanent (400 bad request, 403 the customer
blocked the bot).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from shared.botkit.spec import VOICE_MIME, ChannelAdapter, PartCallback, send_parts
from shared.channels.base import CustomerRef, Reply, SendError
from telegram_bot.render import ApiCall, RenderError, render

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org"
#: The Bot API serves files up to 20 MB to bots (``getFile``).
MAX_FILE_BYTES = 20 * 1024 * 1024
#: How much of Telegram's error text is kept (it is stored and shown to the bot's owner).
ERROR_TEXT_MAX = 300


def _retry_after(body: dict[str, Any], header: str | None) -> float | None:
    parameters = body.get("parameters")
    value: Any = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if value is None:
        value = header
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def error_from_response(
    method: str, status: int, body: Any, retry_after_header: str | None = None
) -> SendError:
    """Map a Bot API error answer (``{"ok": false, ...}``) to a :class:`SendError`."""
    body = body if isinstance(body, dict) else {}
    code = body.get("error_code") if isinstance(body.get("error_code"), int) else status
    description = str(body.get("description") or f"HTTP {status}")[:ERROR_TEXT_MAX]
    retryable = code == 429 or status == 429 or status >= 500 or code >= 500
    return SendError(
        f"Telegram {method} {code}: {description}",
        retryable=retryable,
        retry_after=_retry_after(body, retry_after_header) if retryable else None,
        code=code,
    )


class TelegramAdapter(ChannelAdapter):
    """Sends through one Telegram bot.

    Args:
        session: the bot's shared aiohttp session.
        token: the bot token from BotFather.
        base_url: ``telegram_api_base_url`` (``https://api.telegram.org`` or the sandbox's
            ``/telegram``).
        timeout_s: per-request timeout.
    """

    #: :class:`~shared.botkit.spec.SendsVoice`: audio replies go out with ``sendVoice``.
    voice_formats: tuple[str, ...] = (VOICE_MIME,)

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 15.0,
    ) -> None:
        self.session = session
        self.token = token
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def call(
        self,
        method: str,
        params: dict[str, Any],
        files: dict[str, tuple[bytes, str, str]] | None = None,
    ) -> Any:
        """Call a Bot API method and return its ``result``.

        Raises:
            SendError: no token, Telegram refused, or it could not be reached.
        """
        if not self.token:
            raise SendError("no bot_token configured", retryable=False)
        url = f"{self.base_url}/bot{self.token}/{method}"
        kwargs: dict[str, Any]
        if files:
            form = aiohttp.FormData()
            for key, value in params.items():
                form.add_field(key, value if isinstance(value, str) else json.dumps(value))
            for key, (data, filename, mime) in files.items():
                form.add_field(key, data, filename=filename, content_type=mime)
            kwargs = {"data": form}
        else:
            kwargs = {"json": params}
        try:
            async with self.session.post(url, timeout=self.timeout, **kwargs) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                if resp.status != 200 or not isinstance(body, dict) or not body.get("ok"):
                    raise error_from_response(
                        method, resp.status, body, resp.headers.get("Retry-After")
                    )
                return body.get("result")
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The token is part of the URL: never put the URL in the message.
            raise SendError(
                f"Telegram {method} unreachable: {type(exc).__name__}", retryable=True
            ) from exc

    async def _send_call(self, call: ApiCall) -> str:
        result = await self.call(call.method, call.params, call.files or None)
        if not isinstance(result, dict) or "message_id" not in result:
            raise SendError(f"Telegram {call.method} answered without a message", retryable=False)
        chat_id = (result.get("chat") or {}).get("id", call.params.get("chat_id"))
        return f"{chat_id}:{result['message_id']}"

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
        """Render and send one reply; return ``{chat_id}:{message_id}`` per part sent.

        ``tag`` is ignored: the Bot API reports no delivery status, so nothing can confirm a
        part the bot did not see accepted (see ``BotStore.outbox_recover``).

        Raises:
            SendError: no Telegram id, a reply that cannot be rendered (never retried), or the
                Bot API refused (parts accepted before were reported to ``on_part``; the next
                attempt skips them).
        """
        if not customer.telegram_id:
            raise SendError("customer has no Telegram id", retryable=False)
        try:
            calls = render(reply, customer.telegram_id, reply_to=reply_to)
        except RenderError as exc:
            raise SendError(f"not sent: {exc}", retryable=False) from exc

        async def send_one(_index: int, call: ApiCall) -> str:
            return await self._send_call(call)

        return await send_parts(calls, send_one, skip_parts=skip_parts, on_part=on_part)

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        """Fetch a customer's file (a voice note for speech-to-text): ``getFile``, then
        ``{base_url}/file/bot{token}/{file_path}``; return ``(bytes, mime)`` (``mime`` is empty
        when Telegram only says ``application/octet-stream``: the message's own type counts).

        Raises:
            SendError: Telegram refused, the file is over 20 MB, or its path is not a plain
                relative path.
        """
        result = await self.call("getFile", {"file_id": media_id})
        path = str(result.get("file_path") or "") if isinstance(result, dict) else ""
        if not path or path.startswith("/") or ".." in path.split("/") or "\\" in path:
            raise SendError("Telegram getFile gave no usable file_path", retryable=False)
        size = result.get("file_size")
        if isinstance(size, int) and size > MAX_FILE_BYTES:
            raise SendError(f"file larger than {MAX_FILE_BYTES} bytes", retryable=False)
        url = f"{self.base_url}/file/bot{self.token}/{quote(path, safe='/')}"
        try:
            async with self.session.get(url, timeout=self.timeout, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise SendError(
                        f"Telegram file download HTTP {resp.status}", retryable=resp.status >= 500
                    )
                if resp.content_length is not None and resp.content_length > MAX_FILE_BYTES:
                    raise SendError(f"file larger than {MAX_FILE_BYTES} bytes", retryable=False)
                data = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_FILE_BYTES:
                        raise SendError(
                            f"file larger than {MAX_FILE_BYTES} bytes", retryable=False
                        )
                mime = resp.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The token is part of the URL: never put the URL in the message.
            raise SendError(
                f"Telegram file download failed: {type(exc).__name__}", retryable=True
            ) from exc
        return bytes(data), "" if mime == "application/octet-stream" else mime

    async def answer_callback(self, callback_query_id: str, text: str | None = None) -> bool:
        """Stop the button's loading spinner (``answerCallbackQuery``); best effort."""
        params: dict[str, Any] = {"callback_query_id": callback_query_id}
        if text:
            params["text"] = text[:200]
        try:
            await self.call("answerCallbackQuery", params)
        except SendError as exc:
            logger.debug("answerCallbackQuery failed", extra={"error": str(exc)})
            return False
        return True

    async def set_webhook(self, url: str, secret_token: str) -> None:
        """Register the webhook with its secret token (message and callback_query updates).

        Raises:
            SendError: Telegram refused it.
        """
        await self.call(
            "setWebhook",
            {
                "url": url,
                "secret_token": secret_token,
                "allowed_updates": ["message", "callback_query"],
            },
        )
