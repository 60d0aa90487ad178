"""The Telegram webhook: a constant-time secret check and the aiohttp handler.

POST: compare ``X-Telegram-Bot-Api-Secret-Token`` with the configured ``webhook_secret``
(missing → 401, wrong → 403; no secret configured → 403 for everything, since an unverifiable
update must not be trusted) → parse → persist to the inbox (``update:{update_id}`` dedupes
redeliveries) → 200. Refusals and acceptances feed the bot's "needs attention" state
(:class:`shared.botkit.attention.WebhookHealth`). Telegram stops delivering behind an update
it cannot deliver, so an authentic update the bot cannot interpret (not JSON, unknown shape)
is answered 200 and kept as a dead letter instead of an error.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shared.channels.base import WebhookError
from shared.logging import current_request_id
from telegram_bot.parse import UpdateError, parse_update

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret


def verify_secret(header: str | None, webhook_secret: str) -> None:
    """Check the secret token Telegram echoes from ``setWebhook``.

    Raises:
        WebhookError: 401 when the header is missing, 403 when it does not match or no
            ``webhook_secret`` is configured.
    """
    if not header:
        raise WebhookError(401, "missing secret token")
    if not webhook_secret:
        raise WebhookError(403, "no webhook_secret configured")
    if not hmac.compare_digest(header.encode(), webhook_secret.encode()):
        raise WebhookError(403, "bad secret token")


def decode_update(raw: bytes) -> Any:
    """Decode the body.

    Raises:
        UpdateError: the body is not JSON.
    """
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpdateError("body is not JSON") from exc


def _refusal_reason(exc: WebhookError, secret: str) -> str:
    """Why updates are refused, in words for the bot's owner."""
    if not secret:
        return "no Webhook secret is set on this bot, so every update is refused"
    if exc.status == 401:
        return (
            "updates arrive without a secret token (the webhook was registered without "
            "this bot's Webhook secret)"
        )
    return "updates carry a different secret token than this bot's Webhook secret"


def make_routes(ctx: BotContext) -> list[web.AbstractRouteDef]:
    """Return ``POST /webhook`` bound to the running bot."""

    async def receive(request: web.Request) -> web.Response:
        """Verify, parse, persist, answer."""
        raw = await request.read()  # over client_max_size → 413 from aiohttp
        secret = str(ctx.config.get("webhook_secret") or "")
        try:
            verify_secret(request.headers.get(SECRET_HEADER), secret)
        except WebhookError as exc:
            log = logger.error if not secret else logger.warning
            log(
                "webhook refused"
                + ("; set webhook_secret on this bot (signatures are always checked)"
                   if not secret else ""),
                extra={"status": exc.status, "reason": exc.reason},
            )
            ctx.webhook_health.refused(ctx.client, _refusal_reason(exc, secret))
            return web.Response(status=exc.status, text=exc.reason)
        ctx.webhook_health.accepted(ctx.client)
        try:
            message = parse_update(decode_update(raw))
        except UpdateError as exc:
            ctx.dead_letter(raw, f"unparseable: {exc}", request_id=current_request_id())
            return web.Response(text="ok")
        if message is None:
            return web.Response(text="ok")
        inbox_id = ctx.accept_inbound(message)
        logger.info(
            "message received",
            extra={
                "provider_message_id": message.provider_message_id,
                "inbox_id": inbox_id,
                "kind": message.kind,
            },
        )
        return web.Response(text="ok")

    return [web.post("/webhook", receive)]
