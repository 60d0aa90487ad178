"""The control API on the bot's own port (orchestrator → bot), see docs/internals.md."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shared.botkit import followups
from shared.botkit.handoff import settings_of
from shared.botkit.scheduler import TEST_CLOCK_ENV, OffsetClock
from shared.channels.base import TextReply
from shared.logging import new_request_id, request_id_var
from shared.store import handovers
from shared.tokens import TokenError, verify_control_token

if TYPE_CHECKING:
    from shared.botkit.context import BotContext
    from shared.store import User

logger = logging.getLogger(__name__)

CTX_KEY: web.AppKey[BotContext] = web.AppKey("flotilla_bot_context")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adopt the caller's ``X-Request-ID`` (or make one) for every log line of this request."""
    rid = request.headers.get("X-Request-ID") or new_request_id()
    token = request_id_var.set(rid[:64])
    try:
        response = await handler(request)
        response.headers["X-Request-ID"] = rid[:64]
        return response
    finally:
        request_id_var.reset(token)


@web.middleware
async def control_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a control token minted for this bot on ``/control/*`` (missing 401, bad 403)."""
    if not request.path.startswith("/control/"):
        return await handler(request)
    ctx = request.app[CTX_KEY]
    header = request.headers.get("Authorization", "")
    if not header:
        return web.json_response({"detail": "missing bearer token"}, status=401)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return web.json_response({"detail": "malformed authorization header"}, status=401)
    key = ctx.settings.control_key
    if not key:
        return web.json_response({"detail": "control API disabled"}, status=403)
    try:
        verify_control_token(token.strip(), key, ctx.instance_id)
    except TokenError as exc:
        logger.warning("control token refused", extra={"error": str(exc)})
        return web.json_response({"detail": "invalid token"}, status=403)
    return await handler(request)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text='{"detail": "body is not JSON"}',
                                 content_type="application/json") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"detail": "body must be an object"}',
                                 content_type="application/json")
    return body


async def health(request: web.Request) -> web.Response:
    """Report liveness and queue depths."""
    ctx = request.app[CTX_KEY]
    return web.json_response(
        {
            "status": "ok",
            "instance_id": ctx.instance_id,
            "kind": ctx.channel.kind,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - ctx.started_at, 3),
            "inbox_pending": ctx.store.count_inbox_open(),
            "outbox_pending": ctx.store.count_outbox_open(),
        }
    )


async def reload(request: web.Request) -> web.Response:
    """Fetch the config again and switch to it without a restart."""
    ctx = request.app[CTX_KEY]
    if ctx.client is None:
        return web.json_response({"ok": False, "detail": "no orchestrator client"}, status=503)
    try:
        config = await ctx.client.fetch_config(attempts=3)
    except Exception as exc:
        logger.warning("reload failed", extra={"error": str(exc)})
        return web.json_response({"ok": False, "detail": str(exc)}, status=502)
    ctx.apply_config(config)
    logger.info("config reloaded")
    return web.json_response({"ok": True})


async def send(request: web.Request) -> web.Response:
    """Queue an operator's manual message to a customer; with ``assignee`` (the operator) and
    the ``operator_message`` handoff trigger on, the operator takes the conversation: the bot
    stops answering that customer until the handover is resolved."""
    ctx = request.app[CTX_KEY]
    body = await _json_body(request)
    to = str(body.get("to") or "").strip()
    text = str(body.get("text") or "")
    if not to or not text.strip():
        return web.json_response({"detail": "'to' and 'text' are required"}, status=422)
    user = ctx.store.find_user_by_address(to)
    if user is None:
        ref = ctx.channel.customer_from_address(to)
        user = ctx.store.find_user(ref)
    customer = user.ref() if user is not None else ctx.channel.customer_from_address(to)
    assignee = body.get("assignee")
    takes = (
        user is not None
        and isinstance(assignee, str)
        and bool(assignee.strip())
        and settings_of(ctx.config).on("operator_message")
    )
    with ctx.store.transaction():
        if takes and user is not None and isinstance(assignee, str):
            handovers.take_customer(
                ctx.store, user.id, assignee=assignee, reason="operator_message",
                customer=customer.address(), now=ctx.clock(),
            )
        outbox_id = ctx.enqueue_reply(
            customer,
            TextReply(text),
            user_id=user.id if user is not None else None,
            origin="operator",
            reply_to=body.get("reply_to") or None,
        )
    ctx.wake_outbox()
    logger.info("operator message queued", extra={"outbox_id": outbox_id})
    return web.json_response({"outbox_id": outbox_id}, status=202)


async def simulate(request: web.Request) -> web.Response:
    """Inject a customer message as if the provider had delivered it."""
    ctx = request.app[CTX_KEY]
    body = await _json_body(request)
    try:
        message = ctx.channel.parse_simulated(body)
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response({"detail": str(exc)}, status=422)
    inbox_id = ctx.accept_inbound(message)
    if inbox_id is None:
        return web.json_response({"detail": "duplicate message id"}, status=409)
    return web.json_response({"inbox_id": inbox_id}, status=202)


#: Longest single move of the test clock (a year).
MAX_CLOCK_ADVANCE_S = 366 * 24 * 3600.0


def _bad(detail: str, status: int = 422) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


async def clock(request: web.Request) -> web.Response:
    """Test only: move the bot's clock forward (``{"advance_s": 86400}``) and fire what is due.

    Refused (403) unless the bot was started with ``FLOTILLA_TEST_CLOCK=1``.
    """
    ctx = request.app[CTX_KEY]
    if not isinstance(ctx.clock, OffsetClock):
        return _bad(f"the test clock is disabled (start the bot with {TEST_CLOCK_ENV}=1)", 403)
    body = await _json_body(request)
    value = body.get("advance_s", 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _bad("'advance_s' must be a number of seconds")
    if not 0 <= value <= MAX_CLOCK_ADVANCE_S:
        return _bad(f"'advance_s' must be between 0 and {int(MAX_CLOCK_ADVANCE_S)}")
    now = ctx.clock.advance(timedelta(seconds=float(value)))
    if ctx.scheduler is not None:
        ctx.scheduler.wake()
    ctx.wake_outbox()
    logger.warning("test clock moved", extra={"advance_s": value})
    return web.json_response(
        {"now": now.isoformat(), "offset_s": ctx.clock.offset.total_seconds()}
    )


def _customer(ctx: BotContext, to: str) -> User | None:
    user = ctx.store.find_user_by_address(to)
    if user is None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            user = ctx.store.find_user(ctx.channel.customer_from_address(to))
    return user


async def followups_get(request: web.Request) -> web.Response:
    """A customer's follow-up sequences, opt-out and follow-up jobs (``?to=<address>``)."""
    ctx = request.app[CTX_KEY]
    to = request.query.get("to", "").strip()
    if not to or len(to) > 128:
        return _bad("'to' (the customer's address) is required")
    user = _customer(ctx, to)
    if user is None:
        return _bad("unknown customer", 404)
    store = ctx.store
    return web.json_response(
        {
            "user_id": user.id,
            "sequences": [s.to_dict() for s in store.followups_of(user.id)],
            "opted_out": store.opted_out(user.id),
            "jobs": [j.to_dict() for j in store.jobs(user_id=user.id)],
        }
    )


async def followups_stop(request: web.Request) -> web.Response:
    """Stop a customer's active follow-up sequence by hand (``{"to": address}``)."""
    ctx = request.app[CTX_KEY]
    body = await _json_body(request)
    to = str(body.get("to") or "").strip()
    if not to or len(to) > 128:
        return _bad("'to' (the customer's address) is required")
    user = _customer(ctx, to)
    if user is None:
        return _bad("unknown customer", 404)
    stopped = followups.stop_by_hand(ctx, user, now=ctx.clock())
    logger.info("follow-up stopped by hand", extra={"stopped": stopped})
    latest = ctx.store.followup_latest(user.id)
    return web.json_response(
        {"stopped": stopped, "sequence": latest.to_dict() if latest else None}
    )


def control_routes() -> list[web.AbstractRouteDef]:
    """Return the ``/control/*`` routes."""
    return [
        web.get("/control/health", health),
        web.post("/control/reload", reload),
        web.post("/control/send", send),
        web.post("/control/simulate", simulate),
        web.post("/control/clock", clock),
        web.get("/control/followups", followups_get),
        web.post("/control/followups/stop", followups_stop),
    ]
