"""Sandbox of the Telegram Bot API, mounted under ``/telegram``.

A bot configured with ``base_url = f"{sandbox_url}/telegram/bot"`` calls
``{base_url}{token}/{method}`` with JSON, form-encoded or multipart parameters, or a query string,
exactly as it would call ``https://api.telegram.org/bot{token}/{method}``.

Files uploaded with ``sendVoice``/``sendPhoto`` (multipart) are kept (bounded, like Graph media):
``getFile`` returns their ``file_path`` and ``GET /telegram/file/bot{token}/{file_path}`` serves
the bytes, as Telegram does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
import zlib
from typing import Any

from aiohttp import web

from shared.sandbox.common import BODY_KEY, SEQ_KEY, STATE_KEY, ParsedBody
from shared.sandbox.state import FaultRule, MediaItem, SandboxState, TelegramBotState

logger = logging.getLogger(__name__)

PREFIX = "/telegram"
TEXT_MAX = 4096
CAPTION_MAX = 1024
CALLBACK_DATA_MAX_BYTES = 64
CALLBACK_ANSWER_MAX = 200
TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]{1,}$")


class BotApiError(Exception):
    """An error the Bot API reports as ``{"ok": false, ...}``."""

    def __init__(self, description: str, error_code: int = 400, **parameters: Any) -> None:
        super().__init__(description)
        self.description = description
        self.error_code = error_code
        self.parameters = parameters

    def response(self) -> web.Response:
        """Return the HTTP answer for this error."""
        payload: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            payload["parameters"] = self.parameters
        return web.json_response(payload, status=self.error_code)


def bad_request(detail: str) -> BotApiError:
    """A 400 with Telegram's ``Bad Request: ...`` description."""
    return BotApiError(f"Bad Request: {detail}")


def _bot_user(bot_id: int) -> dict[str, Any]:
    return {
        "id": bot_id,
        "is_bot": True,
        "first_name": "Sandbox Bot",
        "username": f"sandbox_{bot_id}_bot",
    }


def _decode_markup(value: Any) -> Any:
    """``reply_markup`` arrives as an object (JSON body) or a JSON string (form/query)."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError as exc:
            raise bad_request("can't parse reply keyboard markup JSON object") from exc
        if isinstance(decoded, dict):
            return decoded
    raise bad_request("can't parse reply keyboard markup JSON object")


def _reply_to(params: dict[str, Any]) -> int | None:
    """The ``message_id`` a message replies to: ``reply_parameters`` (an object, or a JSON
    string in a form) or the older ``reply_to_message_id``; ``None`` when it quotes nothing."""
    raw = params.get("reply_parameters")
    if raw is None and params.get("reply_to_message_id") is not None:
        raw = {"message_id": params.get("reply_to_message_id")}
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise bad_request("can't parse reply parameters JSON object") from exc
    mid = raw.get("message_id") if isinstance(raw, dict) else None
    if isinstance(mid, str) and mid.isdigit():
        mid = int(mid)
    if isinstance(mid, bool) or not isinstance(mid, int) or mid <= 0:
        raise bad_request("message to be replied not found")
    return mid


def _check_markup(markup: dict[str, Any] | None) -> None:
    if not markup or "inline_keyboard" not in markup:
        return
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    for row in rows:
        if not isinstance(row, list):
            raise bad_request(
                "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
            )
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are "
                    "unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str) or len(data.encode()) > CALLBACK_DATA_MAX_BYTES
            ):
                raise bad_request("BUTTON_DATA_INVALID")


def _chat_id(params: dict[str, Any]) -> str:
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise bad_request("chat_id is empty")
    return str(chat_id)


def _chat(chat_id: str) -> dict[str, Any]:
    try:
        numeric = int(chat_id)
    except ValueError:
        # "@channelusername": a stable made-up channel id (crc32 is deterministic, hash() is not)
        fake_id = -1_000_000_000_000 - zlib.crc32(chat_id.encode())
        return {"id": fake_id, "type": "channel", "username": chat_id.lstrip("@")}
    return {"id": numeric, "type": "private" if numeric > 0 else "group"}


def _next_message_id(bot: TelegramBotState, chat_id: str) -> int:
    bot.next_message_id[chat_id] = bot.next_message_id.get(chat_id, 0) + 1
    return bot.next_message_id[chat_id]


def _file(prefix: str, size: int) -> dict[str, Any]:
    unique = uuid.uuid4().hex
    return {"file_id": f"{prefix}{unique}", "file_unique_id": unique[:16], "file_size": size}


def _file_size(body: ParsedBody, params: dict[str, Any], field: str) -> int:
    upload = body.files.get(field)
    if upload is not None:
        return len(upload.data)
    if not params.get(field):
        raise bad_request(f"there is no {field} in the request")
    return 0


def _keep_upload(
    state: SandboxState, body: ParsedBody, field: str, file: dict[str, Any], mime: str
) -> None:
    """Keep a multipart upload under its new ``file_id`` (for ``getFile`` and the download)."""
    upload = body.files.get(field)
    if upload is None:
        return
    state.remember_media(
        MediaItem(
            id=str(file["file_id"]),
            mime_type=mime,
            filename=upload.filename,
            data=upload.data,
            sha256=hashlib.sha256(upload.data).hexdigest(),
        )
    )


def _file_path(file_id: str) -> str:
    return f"files/{file_id}"


def _get_file(state: SandboxState, params: dict[str, Any]) -> dict[str, Any]:
    file_id = str(params.get("file_id") or "")
    item = state.media.get(file_id)
    if item is None:
        raise bad_request("invalid file_id")
    return {
        "file_id": file_id,
        "file_unique_id": item.sha256[:16],
        "file_size": len(item.data),
        "file_path": _file_path(file_id),
    }


async def download_file(request: web.Request) -> web.Response:
    """Serve a kept file: ``GET /telegram/file/bot{token}/{file_path}`` (Telegram's file URL)."""
    if TOKEN_RE.match(request.match_info["token"]) is None:
        return BotApiError("Unauthorized", error_code=401).response()
    path = request.match_info["file_path"]
    prefix = _file_path("")
    media = request.app[STATE_KEY].media
    item = media.get(path[len(prefix) :]) if path.startswith(prefix) else None
    if item is None:
        return BotApiError("Not Found", error_code=404).response()
    return web.Response(body=item.data, content_type=item.mime_type)


def _text_param(params: dict[str, Any], field: str, limit: int, *, required: bool) -> str | None:
    value = params.get(field)
    if value is None or value == "":
        if required:
            raise bad_request("message text is empty")
        return None
    text = str(value)
    if len(text) > limit:
        raise bad_request(
            "message is too long" if field == "text" else "message caption is too long"
        )
    return text


def _send(
    request: web.Request,
    token: str,
    bot_id: int,
    method: str,
    params: dict[str, Any],
    body: ParsedBody,
) -> dict[str, Any]:
    state: SandboxState = request.app[STATE_KEY]
    bot = state.telegram_bot(token)
    chat_id = _chat_id(params)
    markup = _decode_markup(params.get("reply_markup"))
    _check_markup(markup)
    reply_to = _reply_to(params)
    message: dict[str, Any] = {
        "message_id": 0,
        "from": _bot_user(bot_id),
        "chat": _chat(chat_id),
        "date": int(time.time()),
    }
    text: str | None
    if method == "sendMessage":
        text = _text_param(params, "text", TEXT_MAX, required=True)
        message["text"] = text
        kind = "text"
    elif method == "sendVoice":
        text = _text_param(params, "caption", CAPTION_MAX, required=False)
        voice = _file("AwACAgIAAxkBAAI", _file_size(body, params, "voice"))
        voice.update({"duration": int(params.get("duration") or 1), "mime_type": "audio/ogg"})
        _keep_upload(state, body, "voice", voice, "audio/ogg")
        message["voice"] = voice
        kind = "voice"
    else:  # sendPhoto
        text = _text_param(params, "caption", CAPTION_MAX, required=False)
        size = _file_size(body, params, "photo")
        message["photo"] = [
            {**_file("AgACAgIAAxkBAAI", size // 4), "width": 90, "height": 90},
            {**_file("AgACAgIAAxkBAAI", size), "width": 800, "height": 800},
        ]
        _keep_upload(state, body, "photo", message["photo"][-1], "image/jpeg")
        kind = "photo"
    if text is not None and kind != "text":
        message["caption"] = text
    if markup:
        message["reply_markup"] = markup
    if reply_to is not None:  # the quoted message (the sandbox keeps no chat history)
        message["reply_to_message"] = {"message_id": reply_to, "chat": _chat(chat_id)}
    message["message_id"] = _next_message_id(bot, chat_id)
    logged = {k: v for k, v in params.items() if k not in body.files}
    for name in ("voice", "photo"):
        if name in body.files and name in message:
            sent = message[name] if name == "voice" else message[name][-1]
            logged[name] = {"file_id": sent["file_id"], "file_size": sent["file_size"]}
    state.add_message(
        request_seq=request[SEQ_KEY],
        provider="telegram",
        to=chat_id,
        sender=str(bot_id),
        type=kind,
        text=text,
        message_id=str(message["message_id"]),
        payload=logged,
    )
    return message


def _edit_message_text(
    request: web.Request, token: str, bot_id: int, params: dict[str, Any]
) -> Any:
    text = _text_param(params, "text", TEXT_MAX, required=True)
    markup = _decode_markup(params.get("reply_markup"))
    _check_markup(markup)
    if params.get("inline_message_id"):
        return True
    chat_id = _chat_id(params)
    message_id = params.get("message_id")
    if not message_id:
        raise bad_request("message identifier is not specified")
    bot = request.app[STATE_KEY].telegram_bot(token)
    if int(message_id) > bot.next_message_id.get(chat_id, 0):
        raise bad_request("message to edit not found")
    now = int(time.time())
    edited: dict[str, Any] = {
        "message_id": int(message_id),
        "from": _bot_user(bot_id),
        "chat": _chat(chat_id),
        "date": now,
        "edit_date": now,
        "text": text,
    }
    if markup:
        edited["reply_markup"] = markup
    return edited


def _get_updates(request: web.Request, token: str, params: dict[str, Any]) -> Any:
    bot = request.app[STATE_KEY].telegram_bot(token)
    if bot.webhook_url:
        raise BotApiError(
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
            "to delete the webhook first",
            error_code=409,
        )
    offset = int(params.get("offset") or 0)
    limit = min(int(params.get("limit") or 100), 100)
    if offset:
        while bot.updates and bot.updates[0]["update_id"] < offset:
            bot.updates.popleft()
    return list(bot.updates)[:limit]


def _call(
    request: web.Request, token: str, bot_id: int, method: str, params: dict[str, Any]
) -> Any:
    body: ParsedBody = request[BODY_KEY]
    state: SandboxState = request.app[STATE_KEY]
    bot = state.telegram_bot(token)
    if method in ("sendMessage", "sendVoice", "sendPhoto"):
        return _send(request, token, bot_id, method, params, body)
    if method == "answerCallbackQuery":
        if not params.get("callback_query_id"):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text") or "")) > CALLBACK_ANSWER_MAX:
            raise bad_request("MESSAGE_TOO_LONG")
        return True
    if method == "editMessageText":
        return _edit_message_text(request, token, bot_id, params)
    if method == "setWebhook":
        bot.webhook_url = str(params.get("url") or "")
        bot.webhook_secret = str(params.get("secret_token") or "")
        return True
    if method == "deleteWebhook":
        bot.webhook_url = ""
        if str(params.get("drop_pending_updates")).lower() == "true":
            bot.updates.clear()
        return True
    if method == "getWebhookInfo":
        return {
            "url": bot.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(bot.updates),
        }
    if method == "getMe":
        return {
            **_bot_user(bot_id),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
    if method == "getUpdates":
        return _get_updates(request, token, params)
    if method == "getFile":
        return _get_file(state, params)
    raise BotApiError("Not Found", error_code=404)


_DESCRIPTIONS = {
    "setWebhook": "Webhook was set",
    "deleteWebhook": "Webhook was deleted",
}


async def call_method(request: web.Request) -> web.Response:
    """Call a Bot API method: ``/telegram/bot{token}/{method}``."""
    token = request.match_info["token"]
    method = request.match_info["method"]
    match = TOKEN_RE.match(token)
    if match is None:
        return BotApiError("Unauthorized", error_code=401).response()
    body: ParsedBody = request[BODY_KEY]
    if body.json_error:
        return bad_request("can't parse JSON object").response()
    params = body.params(request.query)
    try:
        result = _call(request, token, int(match.group(1)), method, params)
    except BotApiError as exc:
        return exc.response()
    except (TypeError, ValueError) as exc:
        return bad_request(f"invalid parameter: {exc}").response()
    payload: dict[str, Any] = {"ok": True, "result": result}
    if method in _DESCRIPTIONS:
        payload["description"] = _DESCRIPTIONS[method]
    return web.json_response(payload)


def enqueue_update(state: SandboxState, token: str, update: dict[str, Any]) -> dict[str, Any]:
    """Queue an update for ``getUpdates`` (assigning ``update_id`` when missing)."""
    bot = state.telegram_bot(token)
    if "update_id" not in update:
        update = {"update_id": bot.next_update_id, **update}
    bot.next_update_id = max(bot.next_update_id, int(update["update_id"])) + 1
    bot.updates.append(update)
    return update


def fault_response(rule: FaultRule) -> web.Response:
    """The Bot API answer for an injected fault."""
    if rule.mode == "429":
        response = BotApiError(
            f"Too Many Requests: retry after {rule.retry_after}",
            error_code=429,
            retry_after=rule.retry_after,
        ).response()
        response.headers["Retry-After"] = str(rule.retry_after)
        return response
    if rule.mode == "500":
        return BotApiError(
            rule.error_message or "Internal Server Error", error_code=500
        ).response()
    code = rule.error_code or 400
    default = "Forbidden: bot was blocked by the user" if code == 403 else "Bad Request: error"
    return BotApiError(rule.error_message or default, error_code=code).response()


def not_found_response(request: web.Request) -> web.Response:
    """The Bot API answer for a path it does not know."""
    return BotApiError("Not Found", error_code=404).response()


def add_routes(app: web.Application) -> None:
    """Mount the Bot API routes under ``/telegram``."""
    path = PREFIX + "/bot{token}/{method}"
    app.router.add_get(path, call_method)
    app.router.add_post(path, call_method)
    app.router.add_get(PREFIX + "/file/bot{token}/{file_path:.+}", download_file)
