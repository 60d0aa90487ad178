"""The WhatsApp webhook: small pure checks over ``(raw body, header)`` and the aiohttp handlers.

POST: verify ``X-Hub-Signature-256`` (missing → 401, wrong → 403) → parse (not JSON → 400;
JSON the bot cannot interpret → 200 and a dead letter) → persist each message to the inbox
(duplicates ignored), apply statuses and record message echoes (the business answering from
its own phone: the bot pauses for that customer) → 200. Bodies over 3 MB are answered 413
by aiohttp.
GET: Meta's subscription challenge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shared.botkit.desk import record_echo
from shared.channels.base import WebhookError
from shared.logging import current_request_id
from whatsapp_bot.parse import PayloadError, parse_echoes, parse_payload

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"


def sign(raw: bytes, app_secret: str) -> str:
    """Return the ``X-Hub-Signature-256`` value Meta would send for ``raw``."""
    digest = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(raw: bytes, header: str | None, app_secret: str) -> None:
    """Check Meta's HMAC-SHA256 signature of the raw body.

    Args:
        raw: the body exactly as received.
        header: the ``X-Hub-Signature-256`` value (``sha256=<hex>``), or ``None``.
        app_secret: the Meta app secret.

    Raises:
        WebhookError: 401 when the header is missing, 403 when it does not match (or the bot
            has no app secret configured, so nothing can match).
    """
    if not header:
        raise WebhookError(401, "missing signature")
    if not app_secret:
        raise WebhookError(403, "no app secret configured")
    expected = sign(raw, app_secret)
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise WebhookError(403, "bad signature")


def decode_json(raw: bytes) -> Any:
    """Decode the body.

    Raises:
        WebhookError: 400 when it is not JSON.
    """
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookError(400, "body is not JSON") from exc


def verify_challenge(query: Mapping[str, str], verify_token: str) -> str:
    """Answer Meta's subscription check.

    Returns:
        The ``hub.challenge`` text to echo.

    Raises:
        WebhookError: 403 unless ``hub.mode=subscribe`` and ``hub.verify_token`` matches.
    """
    mode = query.get("hub.mode", "")
    token = query.get("hub.verify_token", "")
    if (
        mode != "subscribe"
        or not verify_token
        or not hmac.compare_digest(token.encode(), verify_token.encode())
    ):
        raise WebhookError(403, "verification failed")
    return query.get("hub.challenge", "")


def refusal_reason(exc: WebhookError, app_secret: str) -> str:
    """Why webhooks are refused, in words for the bot's owner ("needs attention")."""
    if not app_secret:
        return "no App secret is set on this bot, so every webhook Meta sends is refused"
    if exc.status == 401:
        return "webhooks arrive without Meta's signature (X-Hub-Signature-256)"
    return (
        "webhooks are signed with a different App secret than this bot's: copy the App "
        "secret from the Meta app's Basic settings"
    )


def make_routes(ctx: BotContext) -> list[web.AbstractRouteDef]:
    """Return ``GET /webhook`` and ``POST /webhook`` bound to the running bot."""

    async def challenge(request: web.Request) -> web.Response:
        """Echo Meta's challenge when the verify token matches."""
        try:
            text = verify_challenge(request.query, str(ctx.config.get("verify_token") or ""))
        except WebhookError as exc:
            logger.warning("webhook verification refused")
            return web.Response(status=exc.status, text=exc.reason)
        return web.Response(text=text)

    async def receive(request: web.Request) -> web.Response:
        """Verify, parse, persist, answer."""
        raw = await request.read()  # over client_max_size → 413 from aiohttp
        app_secret = str(ctx.config.get("app_secret") or "")
        try:
            verify_signature(raw, request.headers.get(SIGNATURE_HEADER), app_secret)
        except WebhookError as exc:
            logger.warning("webhook refused", extra={"status": exc.status, "reason": exc.reason})
            ctx.webhook_health.refused(ctx.client, refusal_reason(exc, app_secret))
            return web.Response(status=exc.status, text=exc.reason)
        ctx.webhook_health.accepted(ctx.client)
        try:
            data = decode_json(raw)
        except WebhookError as exc:
            logger.warning("webhook refused", extra={"status": exc.status, "reason": exc.reason})
            return web.Response(status=exc.status, text=exc.reason)
        try:
            messages, statuses = parse_payload(data)
            echoes = parse_echoes(data)
        except PayloadError as exc:
            ctx.dead_letter(raw, f"unparseable: {exc}", request_id=current_request_id())
            return web.Response(text="ok")
        for message in messages:
            inbox_id = ctx.accept_inbound(message)
            logger.debug(
                "message received",
                extra={
                    "provider_message_id": message.provider_message_id,
                    "inbox_id": inbox_id,
                    "kind": message.kind,
                },
            )
        for status in statuses:
            ctx.apply_status(status)
        for echo in echoes:  # the business wrote from its own phone: a person has it
            record_echo(
                ctx, provider_message_id=echo.provider_message_id, customer=echo.customer,
                kind=echo.kind, text=echo.text,
            )
        return web.Response(text="ok")

    return [web.get("/webhook", challenge), web.post("/webhook", receive)]
