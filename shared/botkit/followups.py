"""Follow-up sequences: a silent lead gets up to N touches, stopped at once by any answer.

Settings live in the instance config's ``followups`` section (:class:`FollowupSettings`):
``enabled`` (default false), ``touches`` (``[{after_hours, text}]``, default 24/72/168/336/720
hours after the bot's last unanswered message, with plain neutral texts), ``quiet_start`` /
``quiet_end`` (local hours with no proactive message, default 21:00–09:00) and ``timezone`` (the
bot's zone, for customers whose number names none).

Life of a sequence (one ``followups`` row per sequence, :mod:`shared.store.jobs`):

- the bot answers a customer (a reply of the decision step) → a sequence starts, anchored at
  that moment; touch 1 is a scheduler job (kind ``followup``) due at anchor + touch 1's hours;
- a touch fires (:func:`touch_action`): opt-out / a human owning the conversation
  (:func:`may_send_proactive`) / follow-ups switched off → skipped, sequence stopped with the
  reason; quiet hours in the customer's zone → deferred to the morning; WhatsApp outside the
  24-hour window without a template → skipped ``window closed`` (with a template configured,
  the outbox sends it); otherwise the touch's text goes to the outbox **in the same
  transaction** that marks the job done, records the touch and schedules the next touch (at
  anchor + its hours); after the last touch the sequence is ``completed``;
- any inbound message stops it (``answered``; ``opted_out`` for STOP / unsubscribe / стоп,
  which also records an opt-out: that customer never gets a proactive message again);
- an operator stops it by hand (``stopped_by_operator``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.botkit.quiet import (
    DEFAULT_QUIET_END,
    DEFAULT_QUIET_START,
    customer_zone,
    parse_hhmm,
    quiet_until,
)
from shared.botkit.scheduler import JobKind, Outcome
from shared.channels.base import TextReply
from shared.store import User, handovers
from shared.store.jobs import Job

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

KIND = "followup"
#: A touch that could not go out for this long after its due time (the bot was stopped) is
#: skipped as stale rather than sent out of context.
STALE_AFTER = timedelta(hours=48)
DEFAULT_TOUCHES: list[dict[str, Any]] = [
    {"after_hours": 24, "text": "Hello! Just checking in: do you have any questions I can help "
                                "with?"},
    {"after_hours": 72, "text": "Hi again! If anything is still unclear, I'm happy to help."},
    {"after_hours": 168, "text": "Hello! Is this still of interest to you? Reply any time."},
    {"after_hours": 336, "text": "Hi! Just a short reminder that we're here if you need us."},
    {"after_hours": 720, "text": "Hello! This is our last reminder. Write to us whenever it "
                                 "suits you."},
]
DEFAULT_FOLLOWUPS: dict[str, Any] = {
    "enabled": False,
    "touches": DEFAULT_TOUCHES,
    "quiet_start": DEFAULT_QUIET_START,
    "quiet_end": DEFAULT_QUIET_END,
    "timezone": "UTC",
}
OPT_OUT_TEXT = "You won't get any more reminders from us. Write to us any time if you need us."
#: Messages that mean "stop writing to me" (the whole message, any case, punctuation ignored).
OPT_OUT_WORDS = frozenset({
    "stop", "stopall", "unsubscribe", "opt out", "optout", "стоп", "отписаться", "отписка",
    "не пишите", "хватит",
})
STOP_ANSWERED = "answered"
STOP_OPTED_OUT = "opted_out"
STOP_OPERATOR = "stopped_by_operator"
STOP_COMPLETED = "completed"
#: A touch came due while the bot was stopped for longer than :data:`STALE_AFTER`.
STOP_STALE = "stale"
#: A touch failed on every attempt (see the job's last error).
STOP_FAILED = "failed"

_PUNCT_RE = re.compile(r"[^\w\s]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Touch:
    """One touch: hours after the bot's last message, and the text."""

    after_hours: float
    text: str


@dataclass(frozen=True, slots=True)
class FollowupSettings:
    """The ``followups`` section of an instance config."""

    enabled: bool
    touches: tuple[Touch, ...]
    quiet_start: str
    quiet_end: str
    timezone: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FollowupSettings:
        """Read (defaults for anything missing or malformed; touches sorted by hours)."""
        raw = config.get("followups")
        section: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        touches: list[Touch] = []
        for item in section.get("touches") or DEFAULT_TOUCHES:
            if not isinstance(item, Mapping):
                continue
            try:
                hours = float(item.get("after_hours"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            text = str(item.get("text") or "").strip()
            if hours > 0 and text:
                touches.append(Touch(hours, text))
        touches.sort(key=lambda t: t.after_hours)
        return cls(
            enabled=section.get("enabled") is True,
            touches=tuple(touches),
            quiet_start=str(section.get("quiet_start") or DEFAULT_QUIET_START),
            quiet_end=str(section.get("quiet_end") or DEFAULT_QUIET_END),
            timezone=str(section.get("timezone") or "UTC"),
        )


def is_opt_out(text: str) -> bool:
    """Whether a message is an opt-out (``STOP``, ``unsubscribe``, ``стоп``...)."""
    words = " ".join(_PUNCT_RE.sub(" ", text or "").lower().split())
    return words in OPT_OUT_WORDS


# -- the hook other parts use -------------------------------------------------------------

#: Extra checks before any proactive message: ``(ctx, user) -> reason or None``. The handoff
#: adds "a human owns this conversation" here; a campaign may add its own.
PROACTIVE_GUARDS: list[Callable[[BotContext, User], str | None]] = []


def _human_owns(ctx: BotContext, user: User) -> str | None:
    """A person has (or is about to take) the conversation: the bot stays silent
    (:func:`shared.store.handovers.proactive_allowed`)."""
    if handovers.proactive_allowed(ctx.store, user.id):
        return None
    return f"conversation owned by a human ({handovers.ownership(ctx.store, user.id)})"


def may_send_proactive(ctx: BotContext, user: User) -> tuple[bool, str | None]:
    """Whether the bot may write to ``user`` on its own (a follow-up, a reminder).

    Returns:
        ``(True, None)`` or ``(False, reason)``: opted out, a human owns the conversation, or
        a guard in :data:`PROACTIVE_GUARDS` said no.
    """
    if ctx.store.opted_out(user.id) is not None:
        return False, STOP_OPTED_OUT
    for guard in (_human_owns, *PROACTIVE_GUARDS):
        reason = guard(ctx, user)
        if reason:
            return False, reason
    return True, None


# -- the inbox's hooks (inside its persisting transaction) ---------------------------------


def on_inbound(ctx: BotContext, user: User, text: str, *, now: datetime) -> bool:
    """A customer wrote: stop their active sequence; record an opt-out when it is one.

    Returns:
        Whether the message was an opt-out.
    """
    store = ctx.store
    opted = is_opt_out(text)
    if opted:
        store.opt_out(user.id, "keyword", text=text, now=now)
    active = store.followup_active(user.id)
    if active is not None:
        store.followup_stop(active.id, STOP_OPTED_OUT if opted else STOP_ANSWERED, now=now)
        logger.info("follow-up sequence stopped by the customer",
                    extra={"sequence_id": active.id, "opt_out": opted})
    return opted


def on_bot_replied(ctx: BotContext, user: User, *, now: datetime) -> int | None:
    """The bot answered: start a sequence (touch 1 scheduled) when follow-ups are on.

    Returns:
        The new sequence's id, or ``None``.
    """
    settings = FollowupSettings.from_config(ctx.config)
    if not settings.enabled or not settings.touches:
        return None
    store = ctx.store
    if store.opted_out(user.id) is not None or store.followup_active(user.id) is not None:
        return None
    first = settings.touches[0]
    due = now + timedelta(hours=first.after_hours)
    sequence_id = store.followup_start(user.id, total=len(settings.touches), next_due_at=due,
                                       now=now)
    _schedule_touch(ctx, sequence_id, 1, due, user.id)
    return sequence_id


def stop_by_hand(ctx: BotContext, user: User, *, now: datetime) -> bool:
    """Stop the customer's active sequence (an operator's Stop button)."""
    active = ctx.store.followup_active(user.id)
    if active is None:
        return False
    return ctx.store.followup_stop(active.id, STOP_OPERATOR, now=now)


def _schedule_touch(ctx: BotContext, sequence_id: int, touch: int, due: datetime,
                    user_id: int) -> None:
    payload = {"sequence_id": sequence_id, "touch": touch, "user_id": user_id}
    key = f"{KIND}:{sequence_id}:{touch}"
    if ctx.scheduler is not None:
        ctx.scheduler.add(KIND, due, payload, dedupe_key=key, user_id=user_id)
    else:
        ctx.store.job_add(KIND, due, payload, dedupe_key=key, user_id=user_id, now=ctx.clock())


# -- the job --------------------------------------------------------------------------------


def job_kind(ctx: BotContext) -> JobKind:
    """The ``followup`` job kind of a running bot (paced by the channel's
    ``messages_per_second``)."""

    async def action(job: Job) -> Outcome:
        return touch_action(ctx, job)

    def give_up(job: Job, why: str) -> None:
        sequence_id = int(job.payload.get("sequence_id") or 0)
        reason = STOP_STALE if why == "stale" else STOP_FAILED
        ctx.store.followup_stop(sequence_id, reason, now=ctx.clock())

    return JobKind(KIND, action, stale_after=STALE_AFTER, max_attempts=5,
                   base_delay_s=60.0, max_delay_s=3600.0, on_give_up=give_up,
                   per_second=ctx.channel.capabilities.messages_per_second)


def touch_action(ctx: BotContext, job: Job) -> Outcome:
    """Send touch ``job.payload["touch"]`` of a sequence (see the module doc)."""
    store = ctx.store
    now = ctx.clock()
    sequence_id = int(job.payload.get("sequence_id") or 0)
    touch = int(job.payload.get("touch") or 0)
    sequence = store.followup_get(sequence_id)
    if sequence is None:
        return Outcome.skipped("sequence not found")
    if sequence.status != "active":
        return Outcome.skipped(f"sequence {sequence.status}: {sequence.stop_reason}")
    if sequence.touches_sent >= touch:
        return Outcome.skipped(f"touch {touch} already sent")
    user = store.get_user(sequence.user_id)

    def stop(reason: str) -> Callable[[], int | None]:
        def apply() -> None:
            store.followup_stop(sequence_id, reason, now=now)
        return apply

    if user is None:
        return Outcome.skipped("customer not found", apply=stop("customer_gone"))
    settings = FollowupSettings.from_config(ctx.config)
    if not settings.enabled:
        return Outcome.skipped("follow-ups are switched off", apply=stop("disabled"))
    if touch > len(settings.touches):
        return Outcome.skipped("no such touch any more", apply=stop(STOP_COMPLETED))
    allowed, why = may_send_proactive(ctx, user)
    if not allowed:
        reason = why or "not allowed"
        return Outcome.skipped(reason, apply=stop(reason))
    tz = customer_zone(user.identities.get("phone"), settings.timezone)
    morning = quiet_until(now, tz, parse_hhmm(settings.quiet_start, DEFAULT_QUIET_START),
                          parse_hhmm(settings.quiet_end, DEFAULT_QUIET_END))
    if morning is not None:
        store.followup_reschedule(sequence_id, morning)
        return Outcome.defer(morning, f"quiet hours in {tz.key}")
    window = ctx.channel.customer_service_window
    last_in = user.last_inbound_at
    closed = window is not None and (last_in is None or now - last_in > window)
    if closed and not str(ctx.config.get("wa_template_name") or "").strip():
        return Outcome.skipped("window closed", apply=stop("window_closed"))
    text = settings.touches[touch - 1].text
    anchor = sequence.started_at
    next_due: datetime | None = None
    if touch < len(settings.touches):
        next_due = max(anchor + timedelta(hours=settings.touches[touch].after_hours), now)

    def send() -> int | None:
        outbox_id = ctx.enqueue_reply(user.ref(), TextReply(text), user_id=user.id,
                                      origin="followup")
        store.followup_touched(sequence_id, touch, next_due_at=next_due, now=now)
        if next_due is not None:
            _schedule_touch(ctx, sequence_id, touch + 1, next_due, user.id)
        return outbox_id

    return Outcome.done(send)
