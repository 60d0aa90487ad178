"""The outbox worker: sends queued replies exactly once each, with retries.

Each row is claimed (``pending`` → ``sending``, committed) before the provider call and settled
after it: ``sent`` with the provider ids, ``pending`` again with a back-off for retryable errors
(429/5xx/network; a provider's ``retry_after`` is honoured), or ``failed`` with the error and its
code. A reply may render to several provider messages ("parts"): each part's provider id is
committed as soon as the provider returns it, before the next part is sent (the last part is
recorded in the same transaction that marks the row sent, so a one-part reply costs no extra
commit). Every part is tagged ``ob:{outbox id}:{part}`` where the channel can have the provider
echo it (WhatsApp, SMS); a later attempt sends only the parts not yet recorded or confirmed. What
happens to a row found in ``sending`` at start is decided in
:meth:`shared.store.BotStore.outbox_recover`.

Replies to one customer leave in order: only the oldest open row of a customer is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.channels.base import AudioReply, Reply, SendError, reply_from_dict
from shared.logging import request_id_var
from shared.store import BotStore, OutboxRow

if TYPE_CHECKING:
    from shared.botkit.context import BotContext

logger = logging.getLogger(__name__)


def backoff_delay(
    attempt: int,
    *,
    base_s: float = 1.0,
    cap_s: float = 300.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the next attempt.

    Args:
        attempt: attempts made so far (1 after the first failure).
        base_s: delay after the first failure.
        cap_s: longest delay.
        retry_after: what the provider asked for; never waited less than this.
        rng: random source (tests pass a seeded one).

    Returns:
        ``retry_after`` plus up to 10% jitter when the provider said; otherwise exponential
        back-off with "equal jitter" (half fixed, half random).
    """
    r = rng or random.Random()  # noqa: S311 - jitter, not crypto
    if retry_after is not None and retry_after >= 0:
        return min(cap_s, retry_after) + r.uniform(0, 0.1 * max(retry_after, 0.1))
    delay = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return delay / 2 + r.uniform(0, delay / 2)


TAG_PREFIX = "ob"
#: How much of a send error is stored and logged (the provider's answer is part of it).
ERROR_TEXT_MAX = 300


def outbox_tag(outbox_id: int) -> str:
    """The opaque tag of an outbox row given to the adapter (``ob:{id}``)."""
    return f"{TAG_PREFIX}:{outbox_id}"


def parse_part_tag(value: str | None) -> tuple[int, int] | None:
    """Read ``ob:{outbox id}:{part}`` (a status's echoed tag) as ``(outbox id, part)``.

    Returns:
        ``None`` for anything else (another system's callback data, a malformed value).
    """
    if not value:
        return None
    prefix, _, rest = value.partition(":")
    outbox_id, _, part = rest.partition(":")
    if prefix != TAG_PREFIX or not outbox_id.isdigit() or not part.isdigit():
        return None
    return int(outbox_id), int(part)


class PartRecorder:
    """The outbox's ``on_part``: commits each accepted part at once, except the last one.

    The last part (known from :meth:`expect`) is only kept in memory: the worker records it in
    the same transaction that marks the row sent, so the common one-part reply costs no extra
    commit. Without a part count every part is committed.

    Args:
        store: the bot's database.
        outbox_id: the row being sent.
        clock: time source.
        recorded: parts recorded before this attempt.
    """

    def __init__(
        self,
        store: BotStore,
        outbox_id: int,
        clock: Callable[[], datetime],
        recorded: dict[int, str],
    ) -> None:
        self.store = store
        self.outbox_id = outbox_id
        self.clock = clock
        self.parts: dict[int, str] = dict(recorded)
        self.total: int | None = None

    def expect(self, total: int) -> None:
        """Learn how many parts the reply rendered to."""
        self.total = total

    def __call__(self, index: int, provider_id: str, /) -> None:
        """Record one accepted part (durably, unless it is the last one)."""
        self.parts[index] = provider_id
        if self.total is not None and len(self.parts) >= self.total:
            return  # the last part: recorded with the row's completion
        self.store.outbox_record_part(
            self.outbox_id, index, provider_id, total=self.total, now=self.clock()
        )


def _reply_text(reply: Reply) -> str:
    return "" if isinstance(reply, AudioReply) else reply.text


class OutboxWorker:
    """Sends due outbox rows.

    Args:
        ctx: the running bot.
        max_attempts: attempts before a retryable error becomes a failure.
        base_delay_s: first back-off delay.
        max_delay_s: longest back-off delay.
        concurrency: sends in flight at once (different customers).
    """

    def __init__(
        self,
        ctx: BotContext,
        *,
        max_attempts: int = 8,
        base_delay_s: float = 1.0,
        max_delay_s: float = 300.0,
        concurrency: int = 16,
    ) -> None:
        self.ctx = ctx
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._stopping = False

    def wake(self) -> None:
        """Look for due rows now."""
        self._wake.set()

    async def run(self) -> None:
        """Send rows as they become due until :meth:`stop`."""
        while not self._stopping:
            self._wake.clear()
            try:
                self._dispatch_due()
            except Exception:
                logger.exception("outbox dispatch failed")
            await self._sleep_until_due()

    def _dispatch_due(self) -> None:
        for row in self.ctx.store.outbox_due(now=self.ctx.clock()):
            if row.id in self._in_flight or self._stopping:
                continue
            task = asyncio.create_task(self._send_guarded(row), name=f"outbox:{row.id}")
            self._in_flight[row.id] = task
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for row_id, running in list(self._in_flight.items()):
            if running is task:
                del self._in_flight[row_id]

    async def _sleep_until_due(self) -> None:
        next_at = self.ctx.store.outbox_next_attempt()
        timeout = 1.0
        if next_at is not None:
            timeout = min(1.0, max(0.01, (next_at - self.ctx.clock()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _send_guarded(self, row: OutboxRow) -> None:
        async with self._slots:
            try:
                await self.send_row(row)
            finally:
                self.wake()  # the customer's next row may be due now

    async def stop(self, grace_s: float) -> None:
        """Stop dispatching; give in-flight sends ``grace_s`` seconds, then cancel them.

        A cancelled send leaves its row in ``sending``; the next start settles it.
        """
        self._stopping = True
        self.wake()
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def send_row(self, row: OutboxRow) -> None:
        """Claim, send and settle one row (public so tests can drive it directly)."""
        ctx = self.ctx
        store = ctx.store
        if not store.outbox_mark_sending(row.id, now=ctx.clock()):
            return
        attempt = row.attempts + 1
        token = request_id_var.set(row.request_id)
        extra = {"outbox_id": row.id, "attempt": attempt, "customer": row.customer}
        recorded = row.parts_sent
        if row.attempts:
            # a status webhook may have confirmed parts since the row was read
            recorded = store.outbox_parts(row.id)
        recorder = PartRecorder(store, row.id, ctx.clock, recorded)
        try:
            reply = reply_from_dict(row.reply)
            kind: str = reply.type
            if self._outside_window(row):
                kind = "template"
                ids = await ctx.channel.send_outside_window(ctx, row.recipient, reply)
                recorder.parts.update(enumerate(ids))
            else:
                await ctx.adapter.send(
                    row.recipient,
                    reply,
                    reply_to=row.reply_to,
                    tag=outbox_tag(row.id),
                    skip_parts=frozenset(recorded),
                    on_part=recorder,
                )
        except SendError as exc:
            self._settle_error(row, attempt, exc, kind_of(row))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("unexpected send error", extra=extra)
            self._settle_error(
                row, attempt, SendError(f"{type(exc).__name__}: {exc}", retryable=True),
                kind_of(row),
            )
            return
        finally:
            request_id_var.reset(token)
        now = ctx.clock()
        parts = recorder.parts
        ids = [parts[i] for i in sorted(parts)]
        with store.transaction():
            store.outbox_mark_sent(row.id, ids, parts=parts, now=now)
            store.add_sent_parts(
                outbox_id=row.id,
                customer=row.customer,
                user_id=row.user_id,
                kind=kind,
                text=_reply_text(reply),
                parts=parts,
                now=now,
            )
        logger.info(
            "reply sent",
            extra={
                **extra,
                "provider_message_id": ids[0] if ids else None,
                "parts": len(ids),
                "parts_skipped": len(recorded),
            },
        )

    def _outside_window(self, row: OutboxRow) -> bool:
        window = self.ctx.channel.customer_service_window
        if window is None:
            return False
        user = self.ctx.store.get_user(row.user_id) if row.user_id is not None else None
        if user is None:
            user = self.ctx.store.find_user(row.recipient)
        last = user.last_inbound_at if user else None
        return last is None or self.ctx.clock() - last > window

    def _settle_error(self, row: OutboxRow, attempt: int, exc: SendError, kind: str) -> None:
        store = self.ctx.store
        # A provider's answer may be anything (an SSRF probe's target included): keep little.
        error = str(exc)[:ERROR_TEXT_MAX]
        extra = {
            "outbox_id": row.id,
            "attempt": attempt,
            "customer": row.customer,
            "error": error,
            "error_code": exc.code,
            "retry_after": exc.retry_after,
        }
        if exc.retryable and attempt < self.max_attempts:
            delay = backoff_delay(
                attempt,
                base_s=self.base_delay_s,
                cap_s=self.max_delay_s,
                retry_after=exc.retry_after,
            )
            store.outbox_retry_later(
                row.id,
                at=self.ctx.clock() + timedelta(seconds=delay),
                error=error,
                error_code=exc.code,
            )
            logger.warning("send failed, will retry", extra={**extra, "delay_s": round(delay, 3)})
            return
        now = self.ctx.clock()
        reason = error if not exc.retryable else f"gave up after {attempt} attempts: {error}"
        with store.transaction():
            store.outbox_mark_failed(row.id, error=reason, error_code=exc.code, now=now)
            store.add_message(
                direction="out",
                customer=row.customer,
                type_=kind,
                text=str(row.reply.get("text") or ""),
                user_id=row.user_id,
                status="failed",
                error=reason,
                error_code=exc.code,
                outbox_id=row.id,
                now=now,
            )
        logger.error("send failed permanently", extra=extra)


def kind_of(row: OutboxRow) -> str:
    """Return the reply type stored in an outbox row."""
    return str(row.reply.get("type") or "text")
