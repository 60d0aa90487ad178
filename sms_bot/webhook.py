"""The Twilio webhooks: small pure checks over ``(url, form, header)`` and the aiohttp handlers.

``POST /webhook`` (incoming SMS/MMS) and ``POST /status`` (delivery status callbacks): verify
``X-Twilio-Signature`` with the ``twilio`` library's ``RequestValidator`` over the URL Twilio
called (missing → 401, wrong → 403) → decode the form (malformed → 400) → persist → 200 with
empty TwiML. A sender that is not a phone number is kept as a dead letter (still 200, so Twilio
does not retry). Twilio is never answered 429: throttling happens after persisting.

The URL Twilio signed is the public one configured in its console (or sent as
``StatusCallback``), not the address the bot listens on: it is rebuilt from
:func:`shared.botkit.public.public_base_url` plus the route and the request's query string.
Only when no public URL is known does the bot fall back to the URL the request arrived on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from shared.botkit.public import public_base_url
from shared.channels.base import WebhookError
from shared.logging import current_request_id
from sms_bot.parse import FormError, SenderError, parse_inbound, parse_status

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def decode_form(raw: bytes) -> MultiDict[str]:
    """Decode an ``application/x-www-form-urlencoded`` body, keeping repeated fields.

    Raises:
        WebhookError: 400 when the body is not UTF-8 form data.
    """
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookError(400, "body is not form data") from exc
    return MultiDict(pairs)


def sign(url: str, form: Mapping[str, Any], auth_token: str) -> str:
    """Return the ``X-Twilio-Signature`` Twilio would send for ``form`` posted to ``url``."""
    return str(RequestValidator(auth_token).compute_signature(url, form))


def verify_signature(
    url: str,
    form: Mapping[str, Any],
    header: str | None,
    auth_token: str,
    settings_header: str | None = None,
) -> None:
    """Check Twilio's signature of a form post.

    Args:
        url: the full URL Twilio called, query string included.
        form: the decoded form fields.
        header: the ``X-Twilio-Signature`` value, or ``None``.
        auth_token: the account's auth token (or the signing key's secret).
        settings_header: ``X-Twilio-Webhooks-Signature-Settings`` when Twilio sent it (names
            the algorithm, HMAC-SHA1 otherwise).

    Raises:
        WebhookError: 401 when the header is missing, 403 when it does not match (or no token
            is configured, so nothing can match).
    """
    if not header:
        raise WebhookError(401, "missing signature")
    if not auth_token:
        raise WebhookError(403, "no auth token configured")
    validator = RequestValidator(auth_token)
    algorithm = get_signature_algorithm(settings_header)
    if not validator.validate(url, form, header.strip(), algorithm=algorithm):
        raise WebhookError(403, "bad signature")


def signed_url(ctx: BotContext, request: web.Request) -> str:
    """Return the URL Twilio signed for this request (see the module docstring)."""
    base = public_base_url(ctx.config, kind=ctx.channel.kind, instance_id=ctx.instance_id)
    if base is None:
        return str(request.url)
    query = request.query_string
    return f"{base}{request.path}" + (f"?{query}" if query else "")


def validation_enabled(config: Mapping[str, Any]) -> bool:
    """``twilio_validate_signature`` (default true); only local tests may turn it off."""
    value = config.get("twilio_validate_signature", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off")
    return value is not False


def twiml() -> web.Response:
    """The empty TwiML answer: nothing for Twilio to do (replies go through the REST API)."""
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


def refusal_reason(exc: WebhookError, config: Mapping[str, Any]) -> str:
    """Why webhooks are refused, in words for the bot's owner ("needs attention")."""
    if not (config.get("twilio_webhook_secret") or config.get("auth_token")):
        return "no Auth token is set on this bot, so every message Twilio posts is refused"
    if exc.status == 401:
        return "messages arrive without Twilio's signature (X-Twilio-Signature)"
    return (
        "Twilio's signatures do not match: check the bot's Auth token, and that its public URL "
        "is exactly the address Twilio posts to"
    )


def make_routes(ctx: BotContext) -> list[web.AbstractRouteDef]:
    """Return ``POST /webhook`` and ``POST /status`` bound to the running bot."""

    async def read_verified(request: web.Request) -> tuple[bytes, MultiDict[str]]:
        raw = await request.read()  # over client_max_size → 413 from aiohttp
        header = request.headers.get(SIGNATURE_HEADER)
        if validation_enabled(ctx.config):
            if not header:
                raise WebhookError(401, "missing signature")
            form = decode_form(raw)
            verify_signature(
                signed_url(ctx, request),
                form,
                header,
                str(ctx.config.get("twilio_webhook_secret") or ctx.config.get("auth_token") or ""),
                request.headers.get(SIGNATURE_SETTINGS_HEADER),
            )
        else:
            form = decode_form(raw)  # check off: logged once at start
        return raw, form

    async def receive(request: web.Request) -> web.Response:
        """Verify, parse, persist, answer empty TwiML."""
        try:
            raw, form = await read_verified(request)
        except WebhookError as exc:
            logger.warning("webhook refused", extra={"status": exc.status, "reason": exc.reason})
            if exc.status in (401, 403):
                ctx.webhook_health.refused(ctx.client, refusal_reason(exc, ctx.config))
            return web.Response(status=exc.status, text=exc.reason)
        ctx.webhook_health.accepted(ctx.client)
        try:
            message = parse_inbound(form)
        except FormError as exc:
            logger.warning("webhook refused", extra={"status": 400, "reason": str(exc)})
            return web.Response(status=400, text=str(exc))
        except SenderError as exc:
            ctx.dead_letter(raw, str(exc), request_id=current_request_id())
            return twiml()
        inbox_id = ctx.accept_inbound(message)
        logger.info(
            "message received",
            extra={
                "provider_message_id": message.provider_message_id,
                "inbox_id": inbox_id,
                "kind": message.kind,
            },
        )
        return twiml()

    async def status(request: web.Request) -> web.Response:
        """Verify, apply the delivery status, answer empty TwiML."""
        try:
            _raw, form = await read_verified(request)
            update = parse_status(form, request.query)
        except WebhookError as exc:
            logger.warning("status refused", extra={"status": exc.status, "reason": exc.reason})
            return web.Response(status=exc.status, text=exc.reason)
        except FormError as exc:
            logger.warning("status refused", extra={"status": 400, "reason": str(exc)})
            return web.Response(status=400, text=str(exc))
        if update is not None:
            ctx.apply_status(update)
        return twiml()

    return [web.post("/webhook", receive), web.post("/status", status)]
