"""Sandbox of the WhatsApp Cloud (Graph) API, mounted under ``/graph``.

Validates outbound messages against Meta's documented limits and answers with Meta's shapes,
including its error envelope, so a bot's renderer and error handling meet the real rules.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from shared.sandbox.common import BODY_KEY, SEQ_KEY, STATE_KEY, ParsedBody
from shared.sandbox.state import FaultRule, MediaItem

logger = logging.getLogger(__name__)

PREFIX = "/graph"

TEXT_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_TEXT_MAX = 60
REPLY_BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10
SECTION_TITLE_MAX = 24
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
CAPTION_MAX = 1024
CALLBACK_DATA_MAX = 512

INVALID_PARAMETER_SUBCODE = 2494010
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
MESSAGE_TYPES = (
    "text",
    "interactive",
    "template",
    "reaction",
    "location",
    "contacts",
    *MEDIA_TYPES,
)

# Titles Meta uses for the codes tests are likely to inject with ``mode: error``.
KNOWN_ERRORS: dict[int, tuple[str, int]] = {
    1: ("An unknown error occurred", 500),
    4: ("Application request limit reached", 400),
    100: ("Invalid parameter", 400),
    190: ("Invalid OAuth access token - Cannot parse access token", 401),
    368: ("Temporarily blocked for policies violations", 400),
    80007: ("Rate limit issues", 400),
    130429: ("Rate limit hit", 429),
    131000: ("Something went wrong", 500),
    131005: ("Access denied", 403),
    131008: ("Required parameter is missing", 400),
    131009: ("Parameter value is not valid", 400),
    131026: ("Message undeliverable", 400),
    131030: ("Recipient phone number not in allowed list", 400),
    131047: ("Re-engagement message", 400),
    131048: ("Spam rate limit hit", 400),
    131051: ("Unsupported message type", 400),
    131056: ("(Business Account, Consumer Account) pair rate limit hit", 400),
    131062: ("BSUID not supported", 400),
    132001: ("Template name does not exist in the translation", 404),
    133010: ("Phone number not registered", 400),
}


@dataclass
class GraphError(Exception):
    """A Meta-shaped error: ``(#code) title`` plus ``error_data.details``."""

    details: str
    code: int = 100
    status: int = 400
    title: str | None = None
    subcode: int | None = INVALID_PARAMETER_SUBCODE
    numbered: bool = True  # Meta writes "(#100) ..." for most codes, not for 190

    def payload(self) -> dict[str, Any]:
        """Return the JSON body Meta would send."""
        title = self.title or KNOWN_ERRORS.get(self.code, ("Invalid parameter", 400))[0]
        error: dict[str, Any] = {
            "message": f"(#{self.code}) {title}" if self.numbered else title,
            "type": "OAuthException",
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        """Return the HTTP answer for this error."""
        return web.json_response(self.payload(), status=self.status, headers=headers)


def fbtrace_id() -> str:
    """A random id shaped like Meta's ``fbtrace_id``."""
    alphabet = string.ascii_letters + string.digits + "_-"
    return "A" + "".join(secrets.choice(alphabet) for _ in range(22))


def new_wamid() -> str:
    """A unique id shaped like a WhatsApp message id."""
    return "wamid." + base64.b64encode(b"\x18\x0b" + uuid.uuid4().bytes).decode().rstrip("=")


def _text_len_check(value: Any, limit: int, param: str, *, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            raise GraphError(f"Param {param} is required.")
        return
    if not isinstance(value, str):
        raise GraphError(f"Param {param} must be a string.")
    if len(value) > limit:
        raise GraphError(f"Param {param} must be at most {limit} characters long.")


def _check_header_footer(interactive: dict[str, Any]) -> None:
    header = interactive.get("header")
    if isinstance(header, dict) and header.get("type", "text") == "text":
        _text_len_check(header.get("text"), HEADER_TEXT_MAX, "interactive['header']['text']")
    footer = interactive.get("footer")
    if isinstance(footer, dict):
        _text_len_check(footer.get("text"), FOOTER_TEXT_MAX, "interactive['footer']['text']")


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        raise GraphError("Param interactive['action']['buttons'] is required.")
    if len(buttons) > REPLY_BUTTONS_MAX:
        raise GraphError(
            f"Param interactive['action']['buttons'] must contain at most "
            f"{REPLY_BUTTONS_MAX} elements."
        )
    ids: set[str] = set()
    titles: set[str] = set()
    for i, button in enumerate(buttons):
        reply = button.get("reply") if isinstance(button, dict) else None
        where = f"interactive['action']['buttons'][{i}]"
        if not isinstance(reply, dict) or button.get("type", "reply") != "reply":
            raise GraphError(f"Param {where}['reply'] is required.")
        _text_len_check(reply.get("id"), BUTTON_ID_MAX, f"{where}['reply']['id']")
        _text_len_check(reply.get("title"), BUTTON_TITLE_MAX, f"{where}['reply']['title']")
        if reply["id"] in ids:
            raise GraphError("Buttons must have unique ids.")
        if reply["title"] in titles:
            raise GraphError("Buttons must have unique titles.")
        ids.add(reply["id"])
        titles.add(reply["title"])


def _check_list(action: dict[str, Any]) -> None:
    _text_len_check(action.get("button"), LIST_BUTTON_MAX, "interactive['action']['button']")
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise GraphError("Param interactive['action']['sections'] is required.")
    if len(sections) > LIST_SECTIONS_MAX:
        raise GraphError(
            f"Param interactive['action']['sections'] must contain at most "
            f"{LIST_SECTIONS_MAX} elements."
        )
    row_ids: set[str] = set()
    total_rows = 0
    for s, section in enumerate(sections):
        where = f"interactive['action']['sections'][{s}]"
        if not isinstance(section, dict):
            raise GraphError(f"Param {where} must be an object.")
        _text_len_check(
            section.get("title"),
            SECTION_TITLE_MAX,
            f"{where}['title']",
            required=len(sections) > 1,
        )
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise GraphError(f"Param {where}['rows'] is required.")
        total_rows += len(rows)
        for r, row in enumerate(rows):
            row_where = f"{where}['rows'][{r}]"
            if not isinstance(row, dict):
                raise GraphError(f"Param {row_where} must be an object.")
            _text_len_check(row.get("id"), ROW_ID_MAX, f"{row_where}['id']")
            _text_len_check(row.get("title"), ROW_TITLE_MAX, f"{row_where}['title']")
            _text_len_check(
                row.get("description"),
                ROW_DESCRIPTION_MAX,
                f"{row_where}['description']",
                required=False,
            )
            if row["id"] in row_ids:
                raise GraphError("Row ids must be unique across sections.")
            row_ids.add(row["id"])
    if total_rows > LIST_ROWS_MAX:
        raise GraphError(f"Total row count exceed max allowed count: {LIST_ROWS_MAX}")


def _check_interactive(payload: dict[str, Any]) -> None:
    interactive = payload.get("interactive")
    if not isinstance(interactive, dict):
        raise GraphError("Param interactive is required.")
    kind = interactive.get("type")
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise GraphError("Param interactive['action'] is required.")
    body = interactive.get("body")
    body_text = body.get("text") if isinstance(body, dict) else None
    _check_header_footer(interactive)
    if kind == "button":
        _text_len_check(body_text, INTERACTIVE_BODY_MAX, "interactive['body']['text']")
        _check_buttons(action)
    elif kind == "list":
        _text_len_check(body_text, INTERACTIVE_BODY_MAX, "interactive['body']['text']")
        _check_list(action)
    elif kind in ("cta_url", "flow", "location_request_message", "product", "product_list"):
        _text_len_check(
            body_text,
            INTERACTIVE_BODY_MAX,
            "interactive['body']['text']",
            required=kind != "product",
        )
    else:
        raise GraphError(f"Param interactive['type'] has an unsupported value: {kind!r}.")


def validate_message(payload: Any) -> None:
    """Check an outbound message against Meta's rules.

    Args:
        payload: the decoded JSON body of ``POST /{phone_number_id}/messages``.

    Raises:
        GraphError: with code 100 when the message breaks a rule Meta enforces.
    """
    if not isinstance(payload, dict):
        raise GraphError("Request body must be a JSON object.")
    if payload.get("messaging_product") != "whatsapp":
        raise GraphError("The parameter messaging_product is required.")
    if not payload.get("to") and not payload.get("recipient"):
        raise GraphError("The parameter to is required.")
    callback_data = payload.get("biz_opaque_callback_data")
    if callback_data is not None:
        _text_len_check(callback_data, CALLBACK_DATA_MAX, "biz_opaque_callback_data",
                        required=False)
    context = payload.get("context")
    if context is not None:  # a reply quoting an earlier message (kept in the message log)
        quoted = context.get("message_id") if isinstance(context, dict) else None
        if not isinstance(quoted, str) or not quoted.strip():
            raise GraphError("Param context['message_id'] must be a non-empty string.")
    kind = payload.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise GraphError(f"Param type has an unsupported value: {kind!r}.")
    if kind == "text":
        text = payload.get("text")
        body = text.get("body") if isinstance(text, dict) else None
        _text_len_check(body, TEXT_BODY_MAX, "text['body']")
    elif kind == "interactive":
        _check_interactive(payload)
    elif kind == "template":
        template = payload.get("template")
        if not isinstance(template, dict) or not template.get("name"):
            raise GraphError("Param template['name'] is required.")
        language = template.get("language")
        if not isinstance(language, dict) or not language.get("code"):
            raise GraphError("Param template['language']['code'] is required.")
    elif kind in MEDIA_TYPES:
        media = payload.get(kind)
        if not isinstance(media, dict) or not (media.get("id") or media.get("link")):
            raise GraphError(f"Param {kind} must contain an id or a link.")
        if kind in ("image", "video", "document"):
            _text_len_check(
                media.get("caption"), CAPTION_MAX, f"{kind}['caption']", required=False
            )
    elif kind == "reaction":
        reaction = payload.get("reaction")
        if not isinstance(reaction, dict) or not reaction.get("message_id"):
            raise GraphError("Param reaction['message_id'] is required.")


def summarize_text(payload: dict[str, Any]) -> str | None:
    """The human-readable text of an outbound message, for ``/_sandbox/messages``."""
    kind = payload.get("type", "text")
    if kind == "text":
        return str(payload.get("text", {}).get("body"))
    if kind == "interactive":
        body = payload["interactive"].get("body")
        return str(body.get("text")) if isinstance(body, dict) else None
    if kind == "template":
        return str(payload["template"].get("name"))
    if kind in MEDIA_TYPES:
        caption = payload[kind].get("caption")
        return str(caption) if caption else None
    return None


def _check_auth(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return
    if request.query.get("access_token"):
        return
    raise GraphError(
        "An access token is required to request this resource.",
        code=190,
        status=401,
        subcode=None,
        numbered=False,
    )


def _contact(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("to"):
        to = str(payload["to"])
        return {"input": to, "wa_id": "".join(ch for ch in to if ch.isdigit())}
    recipient = str(payload["recipient"])
    return {"input": recipient, "user_id": recipient}


async def post_message(request: web.Request) -> web.Response:
    """Send a message, or mark one as read (``status: read``)."""
    body: ParsedBody = request[BODY_KEY]
    try:
        _check_auth(request)
        if body.json_error:
            raise GraphError("Request body is not valid JSON.")
        payload = body.json
        if isinstance(payload, dict) and payload.get("status") == "read":
            if payload.get("messaging_product") != "whatsapp":
                raise GraphError("The parameter messaging_product is required.")
            if not payload.get("message_id"):
                raise GraphError("The parameter message_id is required.")
            return web.json_response({"success": True})
        validate_message(payload)
    except GraphError as exc:
        return exc.response()
    wamid = new_wamid()
    message: dict[str, Any] = {"id": wamid}
    if payload.get("type") == "template":
        message["message_status"] = "accepted"
    contact = _contact(payload)
    state = request.app[STATE_KEY]
    phone_number_id = request.match_info["phone_number_id"]
    state.add_message(
        request_seq=request[SEQ_KEY],
        provider="graph",
        to=contact["input"],
        sender=phone_number_id,
        type=payload.get("type", "text"),
        text=summarize_text(payload),
        message_id=wamid,
        payload=payload,
    )
    callback_data = payload.get("biz_opaque_callback_data")
    state.webhooks.graph_message_accepted(
        phone_number_id,
        wamid=wamid,
        recipient_id=contact.get("wa_id") or contact["input"],
        biz_opaque_callback_data=callback_data if isinstance(callback_data, str) else None,
    )
    return web.json_response(
        {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}
    )


async def upload_media(request: web.Request) -> web.Response:
    """Upload a media file (multipart ``file``, ``type``, ``messaging_product``)."""
    body: ParsedBody = request[BODY_KEY]
    try:
        _check_auth(request)
        form = body.form or {}
        if form.get("messaging_product") != "whatsapp":
            raise GraphError("The parameter messaging_product is required.")
        upload = body.files.get("file")
        if upload is None or not upload.data:
            raise GraphError("The parameter file is required.")
        mime_type = str(form.get("type") or upload.content_type)
        if not mime_type:
            raise GraphError("The parameter type is required.")
    except GraphError as exc:
        return exc.response()
    state = request.app[STATE_KEY]
    media_id = str(1_000_000_000_000_000 + state.next_id())
    state.remember_media(
        MediaItem(
            id=media_id,
            mime_type=mime_type,
            filename=upload.filename,
            data=upload.data,
            sha256=hashlib.sha256(upload.data).hexdigest(),
        )
    )
    return web.json_response({"id": media_id})


async def get_media(request: web.Request) -> web.Response:
    """Retrieve a media object's URL (as Meta does before a download)."""
    try:
        _check_auth(request)
    except GraphError as exc:
        return exc.response()
    media_id = request.match_info["media_id"]
    item = request.app[STATE_KEY].media.get(media_id)
    if item is None:
        return GraphError(
            f"Unsupported get request. Object with ID '{media_id}' does not exist.",
            subcode=33,
        ).response()
    url = request.url.with_path(f"{PREFIX}/_media/{media_id}").with_query(None)
    return web.json_response(
        {
            "messaging_product": "whatsapp",
            "url": str(url),
            "mime_type": item.mime_type,
            "sha256": item.sha256,
            "file_size": len(item.data),
            "id": item.id,
        }
    )


async def download_media(request: web.Request) -> web.Response:
    """Download the bytes of an uploaded media object."""
    try:
        _check_auth(request)
    except GraphError as exc:
        return exc.response()
    item = request.app[STATE_KEY].media.get(request.match_info["media_id"])
    if item is None:
        return web.Response(status=404)
    return web.Response(body=item.data, content_type=item.mime_type)


def fault_response(rule: FaultRule) -> web.Response:
    """The Meta-shaped answer for an injected fault."""
    if rule.mode == "429":
        return GraphError(
            "Message failed to send because there were too many messages sent from this "
            "phone number in a short period of time.",
            code=130429,
            status=429,
            subcode=None,
        ).response(headers={"Retry-After": str(rule.retry_after)})
    if rule.mode == "500":
        return GraphError(
            rule.error_message
            or "An unexpected error has occurred. Please retry your request later.",
            code=rule.error_code or 1,
            status=500,
            subcode=None,
        ).response()
    code = rule.error_code or 131000
    title, status = KNOWN_ERRORS.get(code, ("Error", 400))
    return GraphError(
        rule.error_message or title, code=code, status=status, title=title, subcode=None
    ).response()


def not_found_response(request: web.Request) -> web.Response:
    """Meta's answer for a path the Graph API does not know."""
    error = {
        "message": f"Unknown path components: {request.path.removeprefix(PREFIX)}",
        "type": "OAuthException",
        "code": 2500,
        "fbtrace_id": fbtrace_id(),
    }
    return web.json_response({"error": error}, status=400)


def add_routes(app: web.Application) -> None:
    """Mount the Graph API routes under ``/graph``."""
    app.router.add_get(PREFIX + "/_media/{media_id}", download_media)
    app.router.add_post(PREFIX + "/{version}/{phone_number_id}/messages", post_message)
    app.router.add_post(PREFIX + "/{version}/{phone_number_id}/media", upload_media)
    app.router.add_get(PREFIX + "/{version}/{media_id}", get_media)
