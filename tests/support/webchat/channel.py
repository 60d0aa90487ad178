"""The webchat channel: verify (HMAC header), parse (JSON), render (numbered text), send (signed
JSON POST to the widget)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from shared.botkit.spec import ChannelAdapter, ChannelSpec, PartCallback, part_tag, send_parts
from shared.botkit.text import split_text, strip_bold
from shared.channels.base import (
    AudioReply,
    CustomerRef,
    InboundMessage,
    Reply,
    SendError,
    TextReply,
    WebhookError,
)
from shared.routing import reply_options
from tests.support.webchat.manifest import MANIFEST, SIGNATURE_HEADER

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

VISITOR = "webchat_visitor"


def sign(body: bytes, secret: str) -> str:
    """The ``X-Webchat-Signature`` of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> None:
    """401 without a signature, 403 when it does not match (or no secret is set)."""
    if not header:
        raise WebhookError(401, "missing signature")
    if not secret or not hmac.compare_digest(header.strip(), sign(body, secret)):
        raise WebhookError(403, "bad signature")


def parse(body: bytes) -> InboundMessage:
    """``{"id", "visitor", "name", "text", "payload"}`` → a message (400 when malformed)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookError(400, "body is not JSON") from exc
    if not isinstance(data, dict) or not data.get("id") or not data.get("visitor"):
        raise WebhookError(400, "'id' and 'visitor' are required")
    return InboundMessage(
        provider_message_id=f"wc.{data['id']}",
        customer=CustomerRef({VISITOR: str(data["visitor"])}, profile_name=data.get("name")),
        text=str(data.get("text") or ""),
        payload=str(data["payload"]) if data.get("payload") else None,
        raw=data,
    )


def render(reply: Reply) -> list[str]:
    """Text with options as a numbered list, split at the channel's limit."""
    if isinstance(reply, AudioReply):
        raise ValueError("the widget shows no voice notes")
    text = strip_bold(reply.text).strip()
    if not isinstance(reply, TextReply):
        lines = [f"{n}. {title}" for n, (_id, title) in enumerate(reply_options(reply), 1)]
        text = "\n\n".join(p for p in (text, "\n".join(lines)) if p)
    return [c for c in split_text(text, MANIFEST.capabilities.max_text) if c.strip()]


class WebchatAdapter(ChannelAdapter):
    """Posts rendered parts to the widget."""

    def __init__(self, session: aiohttp.ClientSession, url: str, secret: str) -> None:
        self.session = session
        self.url = url.rstrip("/") + "/messages"
        self.secret = secret

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
        try:
            parts = render(reply)
        except ValueError as exc:
            raise SendError(str(exc), retryable=False) from exc
        to = customer.get(VISITOR) or customer.address()

        async def one(index: int, text: str) -> str:
            payload = {"to": to, "text": text, "tag": part_tag(tag, index) if tag else None}
            body = json.dumps(payload).encode()
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, self.secret),
            }
            try:
                async with self.session.post(self.url, data=body, headers=headers) as res:
                    if res.status >= 400:
                        raise SendError(
                            f"widget answered {res.status}", retryable=res.status >= 500
                        )
                    data = await res.json()
            except aiohttp.ClientError as exc:
                raise SendError(f"widget unreachable: {exc}", retryable=True) from exc
            return str(data.get("id") or uuid.uuid4().hex)

        return await send_parts(parts, one, skip_parts=skip_parts, on_part=on_part)


class WebchatChannel(ChannelSpec):
    """The webchat channel as the shared runtime runs it."""

    kind = MANIFEST.kind
    capabilities = MANIFEST.capabilities

    def routes(self, ctx: BotContext) -> list[web.AbstractRouteDef]:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                secret = str(ctx.config.get("webchat_secret") or "")
                verify(body, request.headers.get(SIGNATURE_HEADER), secret)
                message = parse(body)
            except WebhookError as exc:
                logger.warning("webhook refused", extra={"status": exc.status})
                return web.Response(status=exc.status, text=exc.reason)
            inbox_id = ctx.accept_inbound(message)
            return web.json_response({"ok": True, "inbox_id": inbox_id})

        return [web.post("/webhook", receive)]

    def make_adapter(
        self, config: dict[str, Any], session: aiohttp.ClientSession
    ) -> ChannelAdapter:
        return WebchatAdapter(
            session,
            str(config.get("webchat_outbound_url") or ""),
            str(config.get("webchat_secret") or ""),
        )

    def parse_simulated(self, body: dict[str, Any]) -> InboundMessage:
        visitor = str(body.get("from") or "").strip()
        if not visitor:
            raise ValueError("'from' (a visitor id) is required")
        return InboundMessage(
            provider_message_id=f"sim.{uuid.uuid4().hex}",
            customer=CustomerRef({VISITOR: visitor}, profile_name=body.get("profile_name")),
            text=str(body.get("text") or ""),
            payload=str(body["payload"]) if body.get("payload") else None,
        )

    def customer_from_address(self, address: str) -> CustomerRef:
        return CustomerRef({VISITOR: address.strip()})
