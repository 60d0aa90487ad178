"""The bot's side of the human-handoff desk: control routes and timeouts (issue 13).

The orchestrator's ``/admin/handovers`` routes (the admin UI's Desk page) read handovers from
the bot's database read-only and change them through these control routes, so the bot stays the
database's one writer:

* ``POST /control/handovers/{id}/take``    ``{"assignee"}`` → ``active``, ownership ``human``;
* ``POST /control/handovers/{id}/reply``   ``{"assignee", "text"}`` → an operator message to the
  customer through the outbox (a ``pending`` handover is taken by the one who replies);
* ``POST /control/handovers/{id}/resolve`` ``{"assignee"}`` → ``resolved``, ownership ``bot``.

Every ownership change goes through :mod:`shared.store.handovers` (one transaction with the
handover row, here also with the outbox row it sends).

Timeouts are jobs on the durable scheduler (:mod:`shared.botkit.scheduler`, kind
``handover_timeout``), added in the transaction that opens the handover
(:func:`schedule_timeouts`): a ``pending`` handover nobody took within ``renotify_minutes`` is
re-notified once (event ``handover_renotified``; the Desk shows it); after
``pending_timeout_minutes`` the customer is told (``expired_text``, through the outbox, committed
with the job) and the conversation returns to the bot (``expired``). A job whose handover was
taken or resolved meanwhile is skipped. Idle open conversations are closed after
``idle_close_minutes`` by :func:`run_lifecycle` (never one with an open handover).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shared.botkit.control import CTX_KEY
from shared.botkit.handoff import settings_of
from shared.botkit.scheduler import JobKind, Outcome
from shared.channels.base import CustomerRef, TextReply
from shared.store import handovers
from shared.store.handovers import Handover, HandoverError
from shared.store.jobs import Job

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

#: How often the running bot looks for idle conversations to close.
CHECK_INTERVAL_S = 60.0
#: The scheduler job kind of handover timeouts.
TIMEOUT_KIND = "handover_timeout"
MAX_TEXT = 4096


def _error(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "body must be an object")
    return body


def _handover_id(request: web.Request) -> int | None:
    raw = request.match_info.get("handover_id", "")
    if not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def _assignee(body: dict[str, Any]) -> str:
    value = body.get("assignee")
    return value.strip()[: handovers.MAX_ASSIGNEE] if isinstance(value, str) else ""


def send_as_person(
    ctx: BotContext, user_id: int, text: str, *, reply_to: str | None = None
) -> int:
    """Queue a person's message to a customer (outbox origin ``operator``)."""
    user = ctx.store.get_user(user_id)
    if user is None:
        raise HandoverError(f"no customer {user_id}", status=404)
    return ctx.enqueue_reply(
        user.ref(), TextReply(text), user_id=user.id, origin="operator", reply_to=reply_to
    )


async def _person_request(
    request: web.Request,
) -> tuple[BotContext, dict[str, Any], int, str] | web.Response:
    """What take / reply / resolve share: the bot, the JSON body, the handover id and the
    person acting, or the error answer (404 unknown id, 422 no assignee)."""
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    handover_id, assignee = _handover_id(request), _assignee(body)
    if handover_id is None:
        return _error(404, "no such handover")
    if not assignee:
        return _error(422, "'assignee' is required")
    return request.app[CTX_KEY], body, handover_id, assignee


async def take(request: web.Request) -> web.Response:
    """A person takes a handover."""
    parts = await _person_request(request)
    if isinstance(parts, web.Response):
        return parts
    ctx, body, handover_id, assignee = parts
    try:
        handover = handovers.take(ctx.store, handover_id, assignee=assignee, now=ctx.clock())
    except HandoverError as exc:
        return _error(exc.status, str(exc))
    ctx.store.add_event(handover.user_id, "handover_taken", {"id": handover_id})
    logger.info("handover taken", extra={"handover_id": handover_id})
    return web.json_response(handover.to_dict())


async def reply(request: web.Request) -> web.Response:
    """A person answers the customer of a handover (taking it if it is still pending)."""
    parts = await _person_request(request)
    if isinstance(parts, web.Response):
        return parts
    ctx, body, handover_id, assignee = parts
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return _error(422, f"'text' must be 1 to {MAX_TEXT} characters")
    now = ctx.clock()
    try:
        with ctx.store.transaction():
            handover = handovers.get(ctx.store, handover_id)
            if handover is None:
                raise HandoverError("no such handover", status=404)
            if not handover.is_open:
                raise HandoverError(f"handover {handover_id} is {handover.status}")
            if handover.status == "pending":
                handover = handovers.take(ctx.store, handover_id, assignee=assignee, now=now)
            outbox_id = send_as_person(ctx, handover.user_id, text)
    except HandoverError as exc:
        return _error(exc.status, str(exc))
    ctx.wake_outbox()
    logger.info(
        "handover reply queued", extra={"handover_id": handover_id, "outbox_id": outbox_id}
    )
    return web.json_response({"outbox_id": outbox_id, "handover": handover.to_dict()}, status=202)


async def resolve(request: web.Request) -> web.Response:
    """A person gives the conversation back to the bot."""
    parts = await _person_request(request)
    if isinstance(parts, web.Response):
        return parts
    ctx, body, handover_id, assignee = parts
    try:
        handover = handovers.resolve(ctx.store, handover_id, by=assignee, now=ctx.clock())
    except HandoverError as exc:
        return _error(exc.status, str(exc))
    ctx.store.add_event(handover.user_id, "handover_resolved", {"id": handover_id})
    logger.info("handover resolved", extra={"handover_id": handover_id})
    return web.json_response(handover.to_dict())


def desk_routes() -> list[web.AbstractRouteDef]:
    """The ``/control/handovers/*`` routes."""
    return [
        web.post("/control/handovers/{handover_id}/take", take),
        web.post("/control/handovers/{handover_id}/reply", reply),
        web.post("/control/handovers/{handover_id}/resolve", resolve),
    ]


# ------------------------------------------------------------------------------ echoes

#: The assignee of a conversation the business took by answering from its own phone.
ECHO_ASSIGNEE = "business phone"


def record_echo(
    ctx: BotContext,
    *,
    provider_message_id: str,
    customer: CustomerRef,
    kind: str,
    text: str,
) -> bool:
    """A message the business sent from its own phone (WhatsApp ``smb_message_echoes``): kept
    in the conversation as sent, and, with the ``message_echoes`` trigger on, the business has
    the conversation (the bot stops answering that customer until it is resolved). One
    transaction; a redelivered echo changes nothing.

    Returns:
        Whether the echo was new.
    """
    store = ctx.store
    now = ctx.clock()
    with store.transaction():
        if store.message_by_provider_id(provider_message_id) is not None:
            return False
        user = store.resolve_user(customer, now=now)
        store.add_message(
            direction="out", customer=customer.address(), type_=kind, text=text,
            user_id=user.id, provider_message_id=provider_message_id, status="sent", now=now,
        )
        if settings_of(ctx.config).on("message_echoes"):
            handovers.take_customer(
                store, user.id, assignee=ECHO_ASSIGNEE, reason="message_echoes",
                customer=customer.address(), now=now,
            )
    logger.info("message echo recorded", extra={"provider_message_id": provider_message_id})
    return True


# ------------------------------------------------------------------------------ timeouts


def schedule_timeouts(ctx: BotContext, handover: Handover) -> None:
    """Schedule a new ``pending`` handover's re-notification and expiry on the durable
    scheduler (joins the caller's transaction, so they exist exactly when the handover does)."""
    settings = settings_of(ctx.config)
    steps = (("renotify", settings.renotify_after), ("expire", settings.pending_timeout))
    for step, after in steps:
        if step == "renotify" and after >= settings.pending_timeout:
            continue  # expires first: nothing to re-notify
        payload = {"handover_id": handover.id, "step": step}
        key = f"{TIMEOUT_KIND}:{handover.id}:{step}"
        due = handover.created_at + after
        if ctx.scheduler is not None:
            ctx.scheduler.add(TIMEOUT_KIND, due, payload, dedupe_key=key, user_id=handover.user_id)
        else:
            ctx.store.job_add(
                TIMEOUT_KIND,
                due,
                payload,
                dedupe_key=key,
                user_id=handover.user_id,
                now=ctx.clock(),
            )


def timeout_action(ctx: BotContext, job: Job) -> Outcome:
    """Re-notify or expire a handover that is still ``pending`` (see the module doc)."""
    store = ctx.store
    handover_id = int(job.payload.get("handover_id") or 0)
    step = str(job.payload.get("step") or "")
    handover = handovers.get(store, handover_id)
    if handover is None or handover.status != "pending":
        status = handover.status if handover is not None else "gone"
        return Outcome.skipped(f"handover {handover_id} is {status}")
    now = ctx.clock()
    if step == "renotify":

        def renotify() -> int | None:
            if handovers.mark_renotified(store, handover_id, now=now):
                store.add_event(
                    handover.user_id, "handover_renotified", {"id": handover_id}, now=now
                )
                logger.warning(
                    "handover still pending: desk re-notified", extra={"handover_id": handover_id}
                )
            return None

        return Outcome.done(renotify)
    if step != "expire":
        return Outcome.skipped(f"unknown step {step!r}")
    text = settings_of(ctx.config).expired_text

    def expire() -> int | None:
        handovers.expire(store, handover_id, now=now)
        store.add_event(handover.user_id, "handover_expired", {"id": handover_id}, now=now)
        logger.warning("handover expired: nobody took it", extra={"handover_id": handover_id})
        user = store.get_user(handover.user_id)
        if user is None:
            return None
        return ctx.enqueue_reply(user.ref(), TextReply(text), user_id=user.id, origin="system")

    return Outcome.done(expire)


def job_kind(ctx: BotContext) -> JobKind:
    """The ``handover_timeout`` job kind of a running bot (never stale: a handover left pending
    while the bot was stopped still expires)."""

    async def action(job: Job) -> Outcome:
        return timeout_action(ctx, job)

    return JobKind(TIMEOUT_KIND, action, stale_after=None, max_attempts=5)


# ------------------------------------------------------------------------------ lifecycle


def close_idle(ctx: BotContext, now: datetime | None = None) -> int:
    """Close conversations idle for ``idle_close_minutes`` (never one with an open handover);
    the next inbound message reopens them. Returns how many were closed."""
    now = now or ctx.clock()
    idle = settings_of(ctx.config).idle_close
    if idle is None:
        return 0
    return len(handovers.close_idle(ctx.store, idle_before=now - idle, now=now))


async def run_lifecycle(ctx: BotContext, stop: asyncio.Event) -> None:
    """Call :func:`close_idle` every :data:`CHECK_INTERVAL_S` until ``stop`` is set."""
    while not stop.is_set():
        try:
            close_idle(ctx)
        except Exception:
            logger.exception("closing idle conversations failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECK_INTERVAL_S)
