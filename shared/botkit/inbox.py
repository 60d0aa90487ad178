"""The inbox worker: handles each persisted inbound message off the request path.

Per customer, messages are handled strictly in arrival order (one task per customer drains that
customer's queue); different customers are handled concurrently. The worker only schedules and
does the I/O; what to do is decided by :func:`shared.botkit.decide.decide` (pure, an ordered
list of policies: access lists, voice transcript, rate limit, "More" pages, the funnel).
Handling one message:

1. gather the inputs: the customer as stored (read only), its conversation state;
2. decide; while the decision asks for an input (:class:`~shared.botkit.decide.Need`: a voice
   note's transcript, the customer's message count in the rate-limit window, a kept page),
   fetch it and decide again;
3. when the decision wants the LLM, ask the orchestrator (last 20 messages), else nothing;
4. one transaction: the customer and its identities, the inbound message, the new state,
   customer fields, events, outbox rows, inbox row ``done`` (with the decision's note).

Because step 4 is atomic, a crash anywhere before it leaves the inbox row open and the message is
handled again on the next start; a crash after it cannot produce a second set of replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.botkit import desk, followups
from shared.botkit.decide import (
    NAV_MORE_PREFIX,
    NEED_CONTINUATION,
    NEED_INBOUND_SINCE,
    NEED_TRANSCRIPT,
    CustomerState,
    Decision,
    HandoffChange,
    Inbound,
    Need,
    Rules,
    decide,
)
from shared.botkit.handoff import FRUSTRATION_WINDOW, ack_text, settings_of
from shared.botkit.spec import VOICE_MIME, DownloadsMedia, SendsVoice, UploadsMedia
from shared.channels.base import (
    AudioReply,
    CustomerRef,
    InboundMessage,
    Reply,
    SendError,
    TextReply,
)
from shared.funnel import load_funnel
from shared.logging import request_id_var
from shared.orchestrator_client import OrchestratorUnavailable
from shared.routing.types import RouteEvent
from shared.store import InboxRow, User, handovers

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
#: Earlier messages sent to the LLM with a reply request: the bot's ``llm_history`` setting
#: (default ``HISTORY_LIMIT``, at most ``HISTORY_MAX``; 0 sends none).
HISTORY_LIMIT = 20
HISTORY_MAX = 50
ORCHESTRATOR_WAIT_S = 600.0
ORCHESTRATOR_RETRY_MAX_S = 5.0
TTS_MAX_CHARS = 1000
MAX_DECIDE_ROUNDS = 8

__all__ = ["FETCHERS", "NAV_MORE_PREFIX", "InboxWorker", "history_limit"]


def history_limit(config: Mapping[str, Any]) -> int:
    """How many earlier messages the LLM sees: the ``llm_history`` setting, clamped to
    ``0..HISTORY_MAX``; missing or not a number → ``HISTORY_LIMIT``."""
    raw = config.get("llm_history")
    if raw is None or isinstance(raw, bool):
        return HISTORY_LIMIT
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return HISTORY_LIMIT
    return max(0, min(HISTORY_MAX, value))


def _rules(ctx: BotContext) -> Rules:
    """The bot's settings for the decision step (the funnel is loaded once per config)."""
    funnel = ctx.funnel_cache.get("funnel")
    if funnel is None:
        funnel = load_funnel(ctx.config.get("funnel"))
        ctx.funnel_cache["funnel"] = funnel  # apply_config() clears it
    return Rules.from_config(
        ctx.config,
        funnel=funnel,
        fallback_text=ctx.fallback_text,
        rate_limit_text=ctx.rate_limit_text,
    )


class InboxWorker:
    """Handles inbox rows, in order per customer.

    Args:
        ctx: the running bot.
        concurrency: how many customers are handled at the same time.
    """

    def __init__(self, ctx: BotContext, *, concurrency: int = 32) -> None:
        self.ctx = ctx
        self._queues: dict[str, deque[int]] = {}
        self._fresh: dict[int, InboxRow] = {}
        self._waits: dict[int, int] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._side_tasks: set[asyncio.Task[None]] = set()

    # -- scheduling -------------------------------------------------------------------------

    def submit(self, inbox_id: int, customer: str, fresh: InboxRow | None = None) -> None:
        """Queue an inbox row for handling after the customer's earlier messages.

        ``fresh`` is the row just inserted by the webhook, so handling it needs no re-read.
        """
        if self._closing:
            return  # stays in the inbox; replayed on the next start
        if fresh is not None:
            self._fresh[inbox_id] = fresh
        self._queues.setdefault(customer, deque()).append(inbox_id)
        if customer not in self._runners:
            self._idle.clear()
            self._runners[customer] = asyncio.create_task(
                self._run_customer(customer), name=f"inbox:{customer}"
            )

    def replay(self) -> int:
        """Queue every row received but not handled (call once on start).

        Returns:
            How many rows were queued.
        """
        rows = self.ctx.store.inbox_open()
        for row in rows:
            self.submit(row.id, row.customer)
        if rows:
            logger.info("replaying unhandled inbox rows", extra={"count": len(rows)})
        return len(rows)

    async def _run_customer(self, customer: str) -> None:
        queue = self._queues[customer]
        try:
            while queue and not self._closing:
                inbox_id = queue[0]
                async with self._slots:
                    retry_in = await self.process(inbox_id)
                if retry_in is None:
                    queue.popleft()
                else:
                    # The orchestrator is unreachable: keep this customer's order and try the
                    # same message again later, without holding a slot other customers need.
                    await asyncio.sleep(retry_in)
        finally:
            self._runners.pop(customer, None)
            if not queue:
                self._queues.pop(customer, None)
            if not self._runners:
                self._idle.set()

    async def wait_idle(self, grace_s: float) -> bool:
        """Wait until nothing is being handled; return False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, grace_s: float) -> None:
        """Stop taking rows; give in-flight handling ``grace_s`` seconds, then cancel it.

        Cancelled rows stay open in the inbox and are handled again on the next start.
        """
        self._closing = True
        if not await self.wait_idle(grace_s):
            runners = list(self._runners.values())
            for task in runners:
                task.cancel()
            for task in runners:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            logger.warning("inbox handling interrupted by shutdown", extra={"tasks": len(runners)})

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a best-effort side call (mark as read) without delaying the reply."""
        task = asyncio.create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("side call failed", extra={"error": str(task.exception())})

    # -- handling ---------------------------------------------------------------------------

    async def process(self, inbox_id: int) -> float | None:
        """Handle one inbox row; errors are logged and retried up to 3 attempts.

        Returns:
            ``None`` when the row is settled, or seconds after which to handle it again because
            it needs the orchestrator and the orchestrator cannot be reached.
        """
        store = self.ctx.store
        fresh = self._fresh.pop(inbox_id, None)
        row = fresh or store.inbox_get(inbox_id)
        if row is None or row.state not in ("received", "processing"):
            return None
        token = request_id_var.set(row.request_id)
        try:
            if fresh is None:
                # Count attempts of rows read back from the store (replays after a crash, retries):
                # a message that kills the bot is tried a bounded number of times. A row this
                # process just received skips that write; if it crashes the bot, the replay
                # counts from there.
                store.inbox_mark_processing(inbox_id)
            await self.handle(row)
        except OrchestratorUnavailable as exc:
            waits = self._waits.get(inbox_id, 0) + 1
            self._waits[inbox_id] = waits
            self._fresh[inbox_id] = row  # again later, without another read or attempt count
            delay = min(ORCHESTRATOR_RETRY_MAX_S, 0.25 * 2 ** (waits - 1))
            logger.warning(
                "orchestrator unreachable; the reply waits for it",
                extra={"provider_message_id": row.provider_message_id, "retry_in_s": delay,
                       "error": str(exc)},
            )
            return delay
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempts = row.attempts + 1
            logger.exception(
                "inbox handling failed",
                extra={"provider_message_id": row.provider_message_id, "attempt": attempts},
            )
            if attempts >= MAX_ATTEMPTS:
                store.inbox_finish(inbox_id, state="failed", note=f"{type(exc).__name__}: {exc}")
            else:
                store.inbox_requeue(inbox_id)
                asyncio.get_running_loop().call_later(
                    float(attempts), self.submit, inbox_id, row.customer
                )
        finally:
            request_id_var.reset(token)
        self._waits.pop(inbox_id, None)
        return None

    async def handle(self, row: InboxRow) -> None:
        """Gather the inputs, decide, persist the decision (see the module docstring)."""
        ctx = self.ctx
        store = ctx.store
        message = row.message
        now = ctx.clock()
        extra = {"provider_message_id": row.provider_message_id}

        known = store.find_user(message.customer)
        customer = CustomerState()
        if known is not None:
            customer = CustomerState(
                user_id=known.id,
                identities={**known.identities, **message.customer.identities},
                state=store.load_state(known),
                rate_notice_at=known.rate_notice_at,
            )
            # Who answers (issue 13): while a person has the conversation the bot is silent.
            customer.ownership = handovers.ownership(store, known.id)
            current = handovers.open_for(store, known.id)
            if current is not None:
                customer.handover_id = current.id
                customer.handover_acked = current.acked_at is not None
            elif message.kind == "text" and settings_of(ctx.config).on("frustration"):
                # The latest messages, newest first, for the frustration check.
                customer.recent = handovers.recent_inbound_texts(
                    store, known.id, FRUSTRATION_WINDOW
                )
        else:
            customer.identities = dict(message.customer.identities)
        # The name the provider sends now (stored with the message, see resolve_user); a first
        # message is greeted by it too, not as "there".
        customer.state.profile_name = (
            message.customer.profile_name or customer.state.profile_name
        )
        inbound = Inbound(message=message, customer=customer, now=now)
        rules = _rules(ctx)
        decision = decide(inbound, rules)
        received = False
        rounds = 0
        while decision.needs:
            rounds += 1
            if rounds > MAX_DECIDE_ROUNDS:
                raise RuntimeError(f"the decision still needs {decision.needs} after fetching")
            if not received:
                # Taken for handling (WhatsApp marks it read) once no access list refused it.
                self._background(ctx.channel.on_received(ctx, message))
                received = True
            for need in decision.needs:
                inbound.inputs[need] = await self._fetch(need, inbound)
            decision = decide(inbound, rules)

        if not decision.record:
            store.inbox_finish(row.id, note=decision.note, now=now)
            logger.info("message dropped", extra={**extra, "reason": decision.note})
            return
        if not received:
            self._background(ctx.channel.on_received(ctx, message))

        replies = list(decision.replies)
        if decision.needs_llm:
            text, escalate, why = await self.llm_answer(
                customer.user_id,
                decision.text,
                received_at=row.received_at,
                address=CustomerRef(customer.identities).address(),
            )
            handoff = settings_of(ctx.config)
            # The LLM says a person should answer (extractive: low retrieval confidence), or
            # the orchestrator's embedding model recognised a request for a person: a handover
            # opens and the customer gets the one acknowledgement instead.
            reason = "ask_for_person" if why == "ask_for_person" else "llm_escalate"
            if escalate and decision.handoff is None and handoff.on(reason):
                decision.handoff = HandoffChange("open", reason=reason, question=decision.text)
                event = RouteEvent("handover_requested", {"reason": reason})
                decision.events.append(event)
                text = ack_text(handoff, now)
            replies.append(TextReply(text))
        user = self._persist(row, decision, replies, now=now)
        ctx.wake_outbox()
        logger.info(
            "message handled",
            extra={**extra, "handler": decision.handler, "replies": len(replies),
                   "llm": decision.needs_llm, "note": decision.note},
        )
        if decision.reply_origin == "bot":
            await self.speak(user, replies, source_inbox_id=row.id)

    async def _fetch(self, need: Need, inbound: Inbound) -> Any:
        """Fetch one input the decision asked for (through :data:`FETCHERS`)."""
        fetcher = FETCHERS.get(need.kind)
        if fetcher is None:
            raise ValueError(f"the inbox cannot fetch {need.kind!r}")
        return await fetcher(self, need, inbound)

    def _persist(
        self, row: InboxRow, decision: Decision, replies: list[Reply], *, now: datetime
    ) -> User:
        """Write the decision in one transaction; return the customer."""
        ctx = self.ctx
        store = ctx.store
        with store.transaction():
            user = store.resolve_user(row.message.customer, now=now)
            self._record_inbound(row, user, decision.text, counted=decision.counted)
            handovers.set_conversation(store, user.id, "open", now=now)  # lifecycle: reopened
            if decision.handoff is not None:
                self._apply_handoff(row, user, decision.handoff, now=now)
            followups.on_inbound(ctx, user, decision.text, now=now)
            if decision.state is not None:
                store.save_state(user.id, decision.state, now=now)
            if decision.user_fields:
                store.update_user(user.id, decision.user_fields)
            for event in decision.events:
                store.add_event(user.id, event.type, event.data, now=now)
            quote = self._quote(row, user) if replies else None
            for n, reply in enumerate(replies):
                ctx.enqueue_reply(
                    user.ref(), reply, user_id=user.id, source_inbox_id=row.id,
                    origin=decision.reply_origin, reply_to=quote if n == 0 else None,
                )
            if replies and decision.reply_origin == "bot":
                followups.on_bot_replied(ctx, user, now=now)
            store.inbox_finish(row.id, note=decision.note, now=now)
        return user

    def _quote(self, row: InboxRow, user: User) -> str | None:
        """The message id the reply quotes, or ``None``.

        Rule: quote when the customer sent several messages the bot has not answered yet (this
        one and earlier unanswered ones or newer ones still waiting), so it is clear which one
        the reply is for; a plain back-and-forth is not quoted. ``quote_replies: false`` in the
        bot's config switches quoting off; channels that cannot quote (SMS) never do.
        """
        if self.ctx.config.get("quote_replies", True) is False:
            return None
        quote = self.ctx.channel.quote_id(row.message)
        if quote is None:
            return None
        if self.ctx.store.unanswered_count(row.id, row.customer, user.ref().address()) < 2:
            return None
        return quote

    def _apply_handoff(
        self, row: InboxRow, user: User, change: HandoffChange, *, now: datetime
    ) -> None:
        """Apply the decision's ownership change (inside :meth:`_persist`'s transaction)."""
        store = self.ctx.store
        if change.op == "open":
            handover, created = handovers.open_handover(
                store, user.id, reason=change.reason, question=change.question,
                customer=row.customer, now=now, acked=True,
            )
            if created:
                desk.schedule_timeouts(self.ctx, handover)
            logger.info(
                "handover opened" if created else "handover already open",
                extra={"handover_id": handover.id, "reason": change.reason},
            )
        elif change.op == "ack" and change.handover_id is not None:
            handovers.mark_acked(store, change.handover_id, now=now)

    def _record_inbound(self, row: InboxRow, user: User, text: str, *, counted: bool) -> None:
        store = self.ctx.store
        message = row.message
        now = self.ctx.clock()
        store.add_message(
            direction="in",
            customer=row.customer,
            type_=message.kind,
            text=text,
            user_id=user.id,
            provider_message_id=message.provider_message_id,
            rate_counted=counted,
            now=now,
        )
        sent_at = datetime.fromtimestamp(message.timestamp, UTC) if message.timestamp else None
        store.touch_inbound(user.id, now=now, sent_at=sent_at)

    async def llm_text(
        self,
        user: User | int | None,
        text: str,
        *,
        received_at: datetime | None = None,
        address: str | None = None,
    ) -> str:
        """The LLM's answer text (see :meth:`llm_answer`)."""
        text, _, _ = await self.llm_answer(
            user, text, received_at=received_at, address=address
        )
        return text

    async def llm_answer(
        self,
        user: User | int | None,
        text: str,
        *,
        received_at: datetime | None = None,
        address: str | None = None,
    ) -> tuple[str, bool, str]:
        """Ask the orchestrator's LLM; fall back to the configured text when it has no answer.

        Returns:
            ``(text, escalate, reason)``: ``escalate`` is the backend's "a person should
            answer"; ``reason`` is ``ask_for_person`` when the orchestrator recognised a
            request for a person, else empty.

        Raises:
            OrchestratorUnavailable: the orchestrator cannot be reached and the message is
                younger than ``orchestrator_wait_s`` (config, default 600 s): the caller tries
                again later, so the customer gets the real answer once it is back. Past that
                age the fallback text is sent instead.
        """
        client = self.ctx.client
        if client is None or not text.strip():
            return self.ctx.fallback_text, False, ""
        user_id = user.id if isinstance(user, User) else user
        limit = history_limit(self.ctx.config)
        history = self.ctx.store.history(user_id, limit=limit) if user_id and limit else []
        if address is None:
            address = user.ref().address() if isinstance(user, User) else ""
        try:
            answer = await client.llm_reply(text, history, address)
        except OrchestratorUnavailable:
            wait_s = float(self.ctx.config.get("orchestrator_wait_s") or ORCHESTRATOR_WAIT_S)
            age = (self.ctx.clock() - received_at).total_seconds() if received_at else 0.0
            if age < wait_s:
                raise
            logger.warning("orchestrator unreachable for too long; fallback text sent")
            return self.ctx.fallback_text, False, ""
        if answer is None:
            return self.ctx.fallback_text, False, ""
        return str(answer["text"]), bool(answer.get("escalate")), str(answer.get("reason") or "")

    async def transcribe(self, message: InboundMessage) -> str | None:
        """Speech-to-text for a message's voice note (see :meth:`transcribe_media`)."""
        return await self.transcribe_media(message.media_id, message.media_mime)

    async def transcribe_media(
        self, media_id: str | None, media_mime: str | None = None
    ) -> str | None:
        """Speech-to-text for a voice note: download it from the provider, post it to
        ``/internal/stt``; the caller marks the transcript ``[voice]`` and routes it as text.

        Returns:
            The transcript, or ``None`` (no client, a channel that cannot download media,
            download or transcription failed): the note is answered with the fallback text.
        """
        client = self.ctx.client
        adapter = self.ctx.adapter
        if client is None or not isinstance(adapter, DownloadsMedia) or not media_id:
            return None
        try:
            audio, mime = await adapter.download_media(media_id)
        except SendError as exc:
            logger.warning("voice note download failed", extra={"error": str(exc)})
            return None
        mime = str(mime or media_mime or "audio/ogg").split(";")[0].strip()
        transcript: str | None = await client.post_stt(audio, mime or "audio/ogg")
        return transcript

    async def speak(self, user: User, replies: list[Reply], *, source_inbox_id: int) -> None:
        """With ``tts_enabled``, follow the text replies with a voice note saying them.

        Only on a channel whose :class:`~shared.botkit.spec.Capabilities` has ``voice_notes``
        and whose adapter :class:`~shared.botkit.spec.SendsVoice` OGG/Opus; elsewhere (SMS)
        the voice reply is skipped and logged. The OGG/Opus comes from ``/internal/tts``. An
        adapter that :class:`~shared.botkit.spec.UploadsMedia` (WhatsApp) gets it first, so the
        outbox row holds only a media id; otherwise (Telegram ``sendVoice``) the outbox row
        keeps the audio itself. Best effort: any failure leaves the text alone.
        """
        ctx = self.ctx
        if not ctx.config.get("tts_enabled") or ctx.client is None:
            return
        text = "\n".join(
            r.text.strip() for r in replies if isinstance(r, TextReply) and r.text.strip()
        )
        if not text:
            return
        adapter = ctx.adapter
        if not ctx.channel.capabilities.voice_notes or not (
            isinstance(adapter, SendsVoice) and VOICE_MIME in adapter.voice_formats
        ):
            logger.info(
                "voice reply skipped: this channel sends no voice notes; text only",
                extra={"kind": ctx.channel.kind},
            )
            return
        audio = await ctx.client.post_tts(text[:TTS_MAX_CHARS])
        if audio is None:
            return
        reply = AudioReply(audio=audio, mime=VOICE_MIME)
        if isinstance(adapter, UploadsMedia):
            try:
                reply = AudioReply(media_id=await adapter.upload_media(audio, VOICE_MIME))
            except SendError as exc:
                logger.warning("voice reply upload failed", extra={"error": str(exc)})
                return
        ctx.enqueue_reply(
            user.ref(),
            reply,
            user_id=user.id,
            source_inbox_id=source_inbox_id,
        )
        ctx.wake_outbox()
        logger.info(
            "voice reply queued", extra={"media_id": reply.media_id, "bytes": len(audio)}
        )


# ------------------------------------------------------------------------------ inputs

Fetcher = Callable[[InboxWorker, Need, Inbound], Awaitable[Any]]


async def _fetch_transcript(worker: InboxWorker, need: Need, inbound: Inbound) -> Any:
    return await worker.transcribe_media(need.arg, inbound.message.media_mime)


async def _fetch_inbound_since(worker: InboxWorker, need: Need, inbound: Inbound) -> Any:
    user_id = inbound.customer.user_id
    return 0 if user_id is None else worker.ctx.store.count_inbound_since(user_id, need.arg)


async def _fetch_continuation(worker: InboxWorker, need: Need, inbound: Inbound) -> Any:
    return worker.ctx.store.get_continuation(str(need.arg))


#: How the worker fetches each kind of :class:`~shared.botkit.decide.Need`. A policy that needs
#: a new kind of input adds its fetcher here (one line), like the policy itself.
FETCHERS: dict[str, Fetcher] = {
    NEED_TRANSCRIPT: _fetch_transcript,
    NEED_INBOUND_SINCE: _fetch_inbound_since,
    NEED_CONTINUATION: _fetch_continuation,
}
