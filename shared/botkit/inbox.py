"""The inbox worker: handles each persisted inbound message off the request path.

Per customer, messages are handled strictly in arrival order (one task per customer drains that
customer's queue); different customers are handled concurrently. Handling one message:

1. access lists (blocked → nothing is sent);
2. rate limit (over the limit → one polite notice per window, then silence);
3. ``nav:more:<token>`` → the next page of a paginated reply; otherwise routing
   (``shared.routing.route``) and, when it says ``needs_llm``, the orchestrator's LLM with the
   last 20 messages, else the fallback text;
4. one transaction: inbound message, customer state, events, outbox rows, inbox row ``done``.

Because step 4 is atomic, a crash anywhere before it leaves the inbox row open and the message is
handled again on the next start; a crash after it cannot produce a second set of replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.botkit import access
from shared.channels.base import (
    AudioReply,
    InboundMessage,
    Reply,
    SendError,
    TextReply,
    reply_from_dict,
)
from shared.funnel import load_funnel
from shared.logging import request_id_var
from shared.orchestrator_client import OrchestratorUnavailable
from shared.routing import chosen_option, route
from shared.routing.types import ConversationState, RouteEvent, RouteResult
from shared.store import InboxRow, User

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
HISTORY_LIMIT = 20
ORCHESTRATOR_WAIT_S = 600.0
ORCHESTRATOR_RETRY_MAX_S = 5.0
NAV_MORE_PREFIX = "nav:more:"
TTS_MAX_CHARS = 1000


def _route(ctx: BotContext, message: InboundMessage, state: ConversationState) -> RouteResult:
    """Call the shared router with the bot's funnel (loaded once per config, not per message)."""
    funnel = ctx.funnel_cache.get("funnel")
    if funnel is None:
        funnel = load_funnel(ctx.config.get("funnel"))
        ctx.funnel_cache["funnel"] = funnel  # apply_config() clears it
    return route(message, state, funnel)


def _reply_text(reply: Reply) -> str:
    return str(getattr(reply, "text", "") or "")


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
                store.conn.execute("UPDATE inbox SET state = 'received' WHERE id = ?", (inbox_id,))
                asyncio.get_running_loop().call_later(
                    float(attempts), self.submit, inbox_id, row.customer
                )
        finally:
            request_id_var.reset(token)
        self._waits.pop(inbox_id, None)
        return None

    async def handle(self, row: InboxRow) -> None:
        """Run the pipeline for one message (see the module docstring)."""
        ctx = self.ctx
        store = ctx.store
        message = row.message
        now = ctx.clock()
        extra = {"provider_message_id": row.provider_message_id}

        if not access.is_allowed(message.customer, ctx.config):
            store.inbox_finish(row.id, note="blocked", now=now)
            logger.info("message from a blocked or not allowed customer dropped", extra=extra)
            return

        user = store.resolve_user(message.customer, now=now)
        self._background(ctx.channel.on_received(ctx, message))

        text = message.text
        if message.kind == "audio":
            transcript = await self.transcribe(message)
            text = f"[voice] {transcript}" if transcript else "[voice]"

        state = store.load_state(user)
        # Pressing the bot's own buttons and answering its free-text funnel steps is the funnel
        # working, not a flood: those messages neither trip nor count toward the rate limit
        # (with the seed's 5 per 5 h default, a quiz alone would otherwise hit it).
        counted = not (
            message.payload
            or (message.kind == "text" and state.funnel_state)
            or (message.kind == "text" and chosen_option(message.text, state))
        )
        limit = access.rate_limit(ctx.config) if counted else None
        if limit is not None:
            count, window = limit
            window_start = now - window
            sent = store.count_inbound_since(user.id, window_start) + 1
            decision = access.rate_decision(
                sent_in_window=sent,
                limit=count,
                window_start=window_start,
                last_notice_at=user.rate_notice_at,
            )
            if decision != "ok":
                with store.transaction():
                    self._record_inbound(row, user, text, counted=counted)
                    store.add_event(user.id, "rate_limited", {"decision": decision}, now=now)
                    if decision == "notice":
                        store.set_rate_notice(user.id, now=now)
                        ctx.enqueue_reply(
                            user.ref(), TextReply(ctx.rate_limit_text),
                            user_id=user.id, source_inbox_id=row.id, origin="system",
                        )
                    store.inbox_finish(row.id, note=f"rate_limited:{decision}", now=now)
                ctx.wake_outbox()
                logger.info("rate limit applied", extra={**extra, "decision": decision})
                return

        replies: list[Reply]
        events: list[RouteEvent]
        handler: str
        rest = None
        if message.payload and message.payload.startswith(NAV_MORE_PREFIX):
            rest = store.get_continuation(message.payload[len(NAV_MORE_PREFIX) :])
        if rest is not None:
            replies, events, handler = [reply_from_dict(rest)], [], "nav_more"
            new_state, needs_llm = state, False
        elif message.kind == "audio" and text == "[voice]":
            # No transcription yet: keep the note on record and answer with the fallback.
            replies, events, handler, new_state, needs_llm = [], [], "voice", state, False
            replies.append(TextReply(ctx.fallback_text))
        else:
            routed_message = message
            if text != message.text:
                fields = {**_fields(message), "text": text, "kind": "text"}
                routed_message = InboundMessage(**fields)
            result = _route(ctx, routed_message, state)
            replies, events, handler = list(result.replies), list(result.events), result.handler
            new_state, needs_llm = result.state, result.needs_llm

        if needs_llm:
            replies.append(TextReply(await self.llm_text(user, text, received_at=row.received_at)))

        with store.transaction():
            self._record_inbound(row, user, text, counted=counted)
            store.save_state(user.id, new_state, now=now)
            for event in events:
                store.add_event(user.id, event.type, event.data, now=now)
            for reply in replies:
                ctx.enqueue_reply(user.ref(), reply, user_id=user.id, source_inbox_id=row.id)
            store.inbox_finish(row.id, now=now)
        ctx.wake_outbox()
        logger.info(
            "message handled",
            extra={**extra, "handler": handler, "replies": len(replies), "llm": needs_llm},
        )
        await self.speak(user, replies, source_inbox_id=row.id)

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

    async def llm_text(self, user: User, text: str, *, received_at: datetime | None = None) -> str:
        """Ask the orchestrator's LLM; fall back to the configured text when it has no answer.

        Raises:
            OrchestratorUnavailable: the orchestrator cannot be reached and the message is
                younger than ``orchestrator_wait_s`` (config, default 600 s): the caller tries
                again later, so the customer gets the real answer once it is back. Past that
                age the fallback text is sent instead.
        """
        client = self.ctx.client
        if client is None or not text.strip():
            return self.ctx.fallback_text
        history = self.ctx.store.history(user.id, limit=HISTORY_LIMIT)
        try:
            answer = await client.llm_reply(text, history, user.ref().address())
        except OrchestratorUnavailable:
            wait_s = float(self.ctx.config.get("orchestrator_wait_s") or ORCHESTRATOR_WAIT_S)
            age = (self.ctx.clock() - received_at).total_seconds() if received_at else 0.0
            if age < wait_s:
                raise
            logger.warning("orchestrator unreachable for too long; fallback text sent")
            return self.ctx.fallback_text
        if answer is None:
            return self.ctx.fallback_text
        return str(answer["text"])

    async def transcribe(self, message: InboundMessage) -> str | None:
        """Speech-to-text for a voice note: download it from the provider, post it to
        ``/internal/stt``; the caller marks the transcript ``[voice]`` and routes it as text.

        Returns:
            The transcript, or ``None`` (no client, a channel that cannot download media,
            download or transcription failed): the note is answered with the fallback text.
        """
        client = self.ctx.client
        download = getattr(self.ctx.adapter, "download_media", None)
        if client is None or download is None or not message.media_id:
            return None
        try:
            audio, mime = await download(message.media_id)
        except SendError as exc:
            logger.warning("voice note download failed", extra={"error": str(exc)})
            return None
        mime = str(mime or message.media_mime or "audio/ogg").split(";")[0].strip()
        transcript: str | None = await client.post_stt(audio, mime or "audio/ogg")
        return transcript

    async def speak(self, user: User, replies: list[Reply], *, source_inbox_id: int) -> None:
        """With ``tts_enabled``, follow the text replies with a voice note saying them.

        The OGG/Opus comes from ``/internal/tts`` and is uploaded to the provider first, so
        the outbox row holds only a media id. Best effort: any failure leaves the text alone.
        """
        ctx = self.ctx
        if not ctx.config.get("tts_enabled") or ctx.client is None:
            return
        text = "\n".join(
            r.text.strip() for r in replies if isinstance(r, TextReply) and r.text.strip()
        )
        if not text:
            return
        upload = getattr(ctx.adapter, "upload_media", None)
        if upload is None:
            logger.info("voice reply skipped: this channel cannot upload audio")
            return
        audio = await ctx.client.post_tts(text[:TTS_MAX_CHARS])
        if audio is None:
            return
        try:
            media_id = str(await upload(audio, "audio/ogg"))
        except SendError as exc:
            logger.warning("voice reply upload failed", extra={"error": str(exc)})
            return
        ctx.enqueue_reply(
            user.ref(),
            AudioReply(media_id=media_id),
            user_id=user.id,
            source_inbox_id=source_inbox_id,
        )
        ctx.wake_outbox()
        logger.info("voice reply queued", extra={"media_id": media_id, "bytes": len(audio)})


def _fields(message: InboundMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in message.__slots__}  # type: ignore[attr-defined]
