"""Conversations of a bot (read-only from its SQLite), operator messages and the test chat.

History is read from the bot's own database opened read-only (``shared.store.reader``), so it
works while the bot is stopped; every write goes through the running bot's control API (one
writer per database).
The test chat reads what the bot sent from the sandbox providers' message log.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from orchestrator import crud
from orchestrator.api.deps import BoxDep, CurrentUser, SessionDep, SupervisorDep
from orchestrator.api.routes.instances import ManagedInstance, VisibleInstance
from orchestrator.models import BotInstance
from orchestrator.settings import Settings
from orchestrator.supervisor import Supervisor
from shared.channels import registry
from shared.channels.registry import SandboxPreview
from shared.phones import looks_like_phone, phone_digits
from shared.store.files import bot_db_filename
from shared.store.reader import (
    conversation_messages,
    count_messages_since,
    customer_followups,
    list_conversations,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["conversations"])

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MAX_WAIT_S = 10.0
_TAG_RE = re.compile(r"<[^>]+>")


# ---------------------------------------------------------------- bodies


class OperatorMessage(BaseModel):
    """``POST .../messages``: an operator's text to a customer."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=128, description="phone, BSUID or chat id")
    text: str = Field(min_length=1, max_length=4096)


class SimulatedMessage(BaseModel):
    """``POST .../simulate``: a customer message as if the provider delivered it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=128)
    text: str | None = Field(default=None, max_length=4096)
    payload: str | None = Field(default=None, max_length=256, description="button or row id")
    profile_name: str | None = Field(default=None, max_length=200)


# ---------------------------------------------------------------- the bot's database


def bot_db_path(settings: Settings, kind: str, instance_id: str) -> Path:
    """The bot's own SQLite file in the data dir."""
    return settings.data_dir / bot_db_filename(kind, instance_id)


# ---------------------------------------------------------------- the running bot


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def _control(
    sup: Supervisor, instance: BotInstance, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST to the running bot's control API; 409 when it does not run, 502 when it refuses."""
    watcher = sup.watchers.get(instance.id)
    if watcher is None or watcher.state != "running":
        state = watcher.state if watcher is not None else "stopped"
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"bot {instance.id!r} is {state}; start it to send messages",
        )
    result = await sup.control_call(watcher, "POST", path, json_body=body)
    if result is None:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY,
            f"bot {instance.id!r} did not accept the message; see its logs",
        )
    return result


# ---------------------------------------------------------------- sandbox replies


def sandbox_preview(kind: str) -> SandboxPreview:
    """How the test chat of ``kind`` reads the sandbox (its manifest's ``sandbox``); 409 for a
    channel without one."""
    preview = registry.get(kind).sandbox if registry.is_kind(kind) else None
    if preview is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{kind} bots have no sandbox test chat; use the provider"
        )
    return preview


def _sandbox_base(request: Request, instance: BotInstance, box: Any) -> str:
    """The sandbox the bot sends to, from its provider base URL (loopback only)."""
    preview = sandbox_preview(instance.kind)
    settings = crud.instance_settings(instance, box, reveal=False)
    base = str(settings.get(preview.base_url_field) or "")
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if (
        parts.scheme != "http"
        or parts.hostname not in LOOPBACK_HOSTS
        or not path.endswith(preview.path)
    ):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"the test chat needs the bot's {preview.base_url_field} to point at the "
            f"sandbox providers (e.g. http://127.0.0.1:{_settings(request).sandbox_port}"
            f"{preview.path})",
        )
    prefix = path[: -len(preview.path)]
    return f"{parts.scheme}://{parts.netloc}{prefix}"


def sandbox_address(kind: str, customer: str) -> str:
    """How the sandbox records the recipient (the manifest's ``sandbox.address``): Graph takes
    phone digits, Twilio E.164, others the id as given."""
    customer = customer.strip()
    preview = registry.get(kind).sandbox if registry.is_kind(kind) else None
    address = preview.address if preview is not None else "raw"
    if address == "digits" and looks_like_phone(customer):
        return phone_digits(customer)
    if address == "e164" and looks_like_phone(customer):
        return "+" + phone_digits(customer)
    return customer


def _buttons_of(payload: dict[str, Any]) -> list[dict[str, str]]:
    action = (payload.get("interactive") or {}).get("action") or {}
    out = []
    for b in action.get("buttons") or []:
        reply = b.get("reply") or {}
        if reply.get("id"):
            out.append({"id": str(reply["id"]), "title": str(reply.get("title") or reply["id"])})
    return out


def render_graph(payload: dict[str, Any]) -> dict[str, Any]:
    """A Graph API message body as WhatsApp shows it: text, reply buttons, list rows, media."""
    kind = str(payload.get("type") or "text")
    out: dict[str, Any] = {"type": kind, "text": "", "buttons": [], "list": None, "media": None}
    if kind == "text":
        out["text"] = str((payload.get("text") or {}).get("body") or "")
    elif kind == "interactive":
        inter = payload.get("interactive") or {}
        out["type"] = str(inter.get("type") or "interactive")
        out["text"] = str((inter.get("body") or {}).get("text") or "")
        header = inter.get("header") or {}
        out["header"] = str(header.get("text") or "") if isinstance(header, dict) else ""
        footer = inter.get("footer") or {}
        out["footer"] = str(footer.get("text") or "") if isinstance(footer, dict) else ""
        if inter.get("type") == "button":
            out["buttons"] = _buttons_of(payload)
        elif inter.get("type") == "list":
            action = inter.get("action") or {}
            out["list"] = {
                "button": str(action.get("button") or "Options"),
                "sections": [
                    {
                        "title": str(s.get("title") or ""),
                        "rows": [
                            {
                                "id": str(r.get("id") or ""),
                                "title": str(r.get("title") or ""),
                                "description": str(r.get("description") or ""),
                            }
                            for r in s.get("rows") or []
                        ],
                    }
                    for s in action.get("sections") or []
                ],
            }
    elif kind == "template":
        tpl = payload.get("template") or {}
        out["text"] = f"[template {tpl.get('name', '')}]"
    elif kind in ("audio", "image", "video", "document", "sticker"):
        media = payload.get(kind) or {}
        out["media"] = {"kind": kind, "id": media.get("id"), "link": media.get("link")}
        out["text"] = str(media.get("caption") or "")
    else:
        out["text"] = f"[{kind}]"
    return out


def render_telegram(payload: dict[str, Any], text: str | None) -> dict[str, Any]:
    """A Bot API call as Telegram shows it: text with inline keyboard buttons."""
    text = text or ""
    if str(payload.get("parse_mode") or "").upper() == "HTML":
        text = html.unescape(_TAG_RE.sub("", text))
    out: dict[str, Any] = {"type": "text", "text": text, "buttons": [], "list": None}
    markup = payload.get("reply_markup") or {}
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            markup = {}
    for row in (markup or {}).get("inline_keyboard") or []:
        for b in row:
            if b.get("callback_data"):
                out["buttons"].append({"id": str(b["callback_data"]), "title": str(b["text"])})
    if out["buttons"]:
        out["type"] = "button"
    out["media"] = None
    voice = payload.get("voice")
    if isinstance(voice, dict):  # a voice note the bot sent (sendVoice with an upload)
        out["type"] = "audio"
        out["media"] = {"kind": "audio", "id": voice.get("file_id"), "link": None}
    return out


def render_sandbox_message(kind: str, message: dict[str, Any]) -> dict[str, Any]:
    """One recorded outbound message, rendered for the channel of ``kind``."""
    payload = message.get("payload") or {}
    preview = registry.get(kind).sandbox if registry.is_kind(kind) else None
    style = preview.render if preview is not None else "text"
    if style == "graph" and isinstance(payload, dict):
        rendered = render_graph(payload)
    elif style == "telegram" and isinstance(payload, dict):
        rendered = render_telegram(payload, message.get("text"))
    else:
        rendered = {
            "type": str(message.get("type") or "sms"),
            "text": str(message.get("text") or ""),
            "buttons": [],
            "list": None,
            "media": None,
        }
    rendered.setdefault("header", "")
    rendered.setdefault("footer", "")
    stamp = float(message.get("ts") or 0)
    rendered.update(
        seq=int(message.get("seq") or 0),
        ts=datetime.fromtimestamp(stamp, UTC).isoformat(),
        ts_unix=stamp,
        message_id=message.get("message_id"),
    )
    return rendered


async def sandbox_messages(
    request: Request, base: str, provider: str, to: str, since: int, wait: float
) -> list[dict[str, Any]]:
    """Accepted outbound messages from the sandbox (in-process when it is ours, else HTTP)."""
    local = getattr(request.app.state, "sandbox", None)
    if local is not None and str(local.url).rstrip("/") == base.rstrip("/").replace(
        "localhost", "127.0.0.1"
    ):
        found = await local.state.wait_for_messages(
            provider=provider, to=to, since=since, wait_s=wait
        )
        return [m.to_dict() for m in found]
    try:
        async with httpx.AsyncClient(timeout=wait + 5.0) as client:
            res = await client.get(
                f"{base}/_sandbox/messages",
                params={"provider": provider, "to": to, "since": since, "wait": wait},
            )
            res.raise_for_status()
            data = res.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"the sandbox providers at {base} do not answer"
        ) from exc
    return list(data.get("messages") or [])


# ---------------------------------------------------------------- routes

KEY_PATH = "/admin/{kind}/instances/{instance_id}"


@router.get(f"{KEY_PATH}/conversations")
async def get_conversations(
    request: Request,
    instance: VisibleInstance,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Customers of the bot with their last message, time, direction and message count."""
    path = bot_db_path(_settings(request), instance.kind, instance.id)
    return await asyncio.to_thread(list_conversations, path, limit=limit)


@router.get(f"{KEY_PATH}/conversations/{{customer_key}}")
async def get_conversation(
    request: Request,
    instance: VisibleInstance,
    customer_key: str,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """One customer's messages (direction, text, type, delivery status, times), oldest first."""
    path = bot_db_path(_settings(request), instance.kind, instance.id)
    customer, messages = await asyncio.to_thread(
        conversation_messages, path, customer_key, limit=limit
    )
    return {"customer_key": customer_key, "customer": customer, "messages": messages}


CustomerKey = Annotated[str, PathParam(min_length=1, max_length=128)]


@router.get(f"{KEY_PATH}/conversations/{{customer_key}}/followups")
async def get_followups(
    request: Request, instance: VisibleInstance, customer_key: CustomerKey
) -> dict[str, Any]:
    """A customer's follow-up sequence (status, touches sent, next due time, stop reason),
    earlier sequences and opt-out (404 for an unknown customer)."""
    path = bot_db_path(_settings(request), instance.kind, instance.id)
    found = await asyncio.to_thread(customer_followups, path, customer_key)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such customer of this bot")
    return {"customer_key": customer_key, **found}


@router.post(f"{KEY_PATH}/conversations/{{customer_key}}/followups/stop")
async def stop_followups(
    request: Request, sup: SupervisorDep, instance: ManagedInstance, customer_key: CustomerKey
) -> dict[str, Any]:
    """Stop a customer's active follow-up sequence by hand (the running bot does it; 409 when
    it is stopped, 404 for an unknown customer)."""
    path = bot_db_path(_settings(request), instance.kind, instance.id)
    found = await asyncio.to_thread(customer_followups, path, customer_key)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such customer of this bot")
    result = await _control(sup, instance, "/control/followups/stop", {"to": customer_key})
    logger.info("follow-up stopped by hand", extra={"bot_id": instance.id,
                                                     "stopped": result.get("stopped")})
    return {"customer_key": customer_key, "stopped": bool(result.get("stopped")),
            "sequence": result.get("sequence")}


@router.post(f"{KEY_PATH}/messages", status_code=status.HTTP_202_ACCEPTED)
async def send_message(
    sup: SupervisorDep, body: OperatorMessage, instance: ManagedInstance, user: CurrentUser
) -> dict[str, Any]:
    """Send an operator's message through the running bot (not running → 409); the operator
    takes the conversation (the bot stops answering that customer; issue 13)."""
    if not body.text.strip():
        raise crud.FieldError(["body", "text"], "the message is empty")
    result = await _control(
        sup,
        instance,
        "/control/send",
        {"to": body.to.strip(), "text": body.text, "assignee": user.username},
    )
    logger.info("operator message queued", extra={"bot_id": instance.id})
    return {"ok": True, "outbox_id": result.get("outbox_id")}


@router.post(f"{KEY_PATH}/simulate", status_code=status.HTTP_202_ACCEPTED)
async def simulate_message(
    sup: SupervisorDep, body: SimulatedMessage, instance: ManagedInstance
) -> dict[str, Any]:
    """Test chat: deliver a customer message (text or a button/row id) to the running bot."""
    if not (body.text or "").strip() and not body.payload:
        raise crud.FieldError(["body", "text"], "type a message or pick a button")
    result = await _control(
        sup,
        instance,
        "/control/simulate",
        {
            "from": body.from_.strip(),
            "text": body.text or "",
            "payload": body.payload,
            "profile_name": body.profile_name,
        },
    )
    return {"ok": True, "inbox_id": result.get("inbox_id")}


@router.get(f"{KEY_PATH}/simulate/replies")
async def simulate_replies(
    request: Request,
    instance: VisibleInstance,
    box: BoxDep,
    to: Annotated[str, Query(min_length=1, max_length=128)],
    since: Annotated[int, Query(ge=0)] = 0,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0.0,
) -> dict[str, Any]:
    """What the bot sent to a test customer (sandbox log), rendered as its channel shows it."""
    base = _sandbox_base(request, instance, box)
    provider = sandbox_preview(instance.kind).provider
    found = await sandbox_messages(
        request, base, provider, sandbox_address(instance.kind, to), since, wait
    )
    messages = [render_sandbox_message(instance.kind, m) for m in found]
    last = max([since, *(m["seq"] for m in messages)])
    return {"provider": provider, "to": to, "since": since, "last_seq": last, "messages": messages}


#: The largest sandbox media object the test chat plays (a voice note is tens of kB).
MAX_MEDIA_BYTES = 16 * 1024 * 1024
#: Media types served as themselves; anything else is a download (``octet-stream``).
SAFE_MEDIA_TYPES = frozenset(
    {
        "audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/wav",
        "audio/webm", "audio/x-wav", "image/jpeg", "image/png", "image/webp", "video/mp4",
    }
)  # fmt: skip


def _too_large() -> HTTPException:
    return HTTPException(
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        f"the media is larger than the {MAX_MEDIA_BYTES} byte limit",
    )


async def _sandbox_media(request: Request, base: str, media_id: str) -> tuple[bytes, str]:
    """A kept media object's bytes and type, from the in-process sandbox or over HTTP
    (``/_sandbox/media/{id}``, read up to :data:`MAX_MEDIA_BYTES`)."""
    local = getattr(request.app.state, "sandbox", None)
    if local is not None and str(local.url).rstrip("/") == base.rstrip("/").replace(
        "localhost", "127.0.0.1"
    ):
        item = local.state.media.get(media_id)
        if item is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "the sandbox no longer keeps it")
        if len(item.data) > MAX_MEDIA_BYTES:
            raise _too_large()
        return bytes(item.data), str(item.mime_type or "")
    try:
        async with (
            httpx.AsyncClient(timeout=10.0) as client,
            client.stream("GET", f"{base}/_sandbox/media/{media_id}") as res,
        ):
            if res.status_code == 404:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "the sandbox no longer keeps it")
            res.raise_for_status()
            chunks: list[bytes] = []
            size = 0
            async for chunk in res.aiter_bytes():
                size += len(chunk)
                if size > MAX_MEDIA_BYTES:
                    raise _too_large()
                chunks.append(chunk)
            return b"".join(chunks), res.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"the sandbox providers at {base} do not answer"
        ) from exc


@router.get(f"{KEY_PATH}/simulate/media/{{media_id}}", response_model=None)
async def simulate_media(
    request: Request,
    instance: VisibleInstance,
    box: BoxDep,
    media_id: Annotated[str, PathParam(max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")],
    to: Annotated[str, Query(min_length=1, max_length=128)],
) -> Response:
    """Test chat: the bytes of a voice note (or other media) the bot sent to the test
    customer ``to``, for the admin UI's player. Only media of a message this bot's test chat
    shows (the same sandbox log as ``simulate/replies``), at most 16 MiB; an audio or image
    type is served as itself, anything else as a download."""
    base = _sandbox_base(request, instance, box)
    provider = sandbox_preview(instance.kind).provider
    found = await sandbox_messages(
        request, base, provider, sandbox_address(instance.kind, to), 0, 0.0
    )
    shown = {
        str((render_sandbox_message(instance.kind, m).get("media") or {}).get("id"))
        for m in found
    }
    if media_id not in shown:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such media in this test chat")
    data, mime = await _sandbox_media(request, base, media_id)
    mime = mime.split(";")[0].strip().lower()
    safe = mime in SAFE_MEDIA_TYPES
    return Response(
        content=data,
        media_type=mime if safe else "application/octet-stream",
        headers={
            "Content-Disposition": "inline" if safe else "attachment",
            "Cache-Control": "private, max-age=300",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/admin/conversations/stats")
async def conversation_stats(
    request: Request, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    """Messages today (UTC, in and out) for every bot the caller may see."""
    owner = user.id if user.role == "user" else None
    settings = _settings(request)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for instance in crud.list_instances(session=session, owner_id=owner):
        path = bot_db_path(settings, instance.kind, instance.id)
        counts = await asyncio.to_thread(count_messages_since, path, today)
        out.append(
            {
                "id": instance.id,
                "kind": instance.kind,
                "messages_today": counts["in"] + counts["out"],
                "in_today": counts["in"],
                "out_today": counts["out"],
            }
        )
    return out
