"""The durable scheduler: jobs in the bot's own SQLite file, fired by the running bot.

A job (``jobs`` table, :mod:`shared.store.jobs`) has a due time in UTC, a kind, a JSON payload,
a status (``pending`` / ``running`` / ``done`` / ``failed`` / ``skipped``), attempts, the last
error and an optional unique ``dedupe_key`` (so "schedule touch 2 of sequence 7" happens once
however often it is asked for). Each kind is registered with its action and limits
(:class:`JobKind`).

Firing one job:

1. **claim** it: ``pending`` → ``running``, attempts + 1, committed before the action runs, so
   two loops (or a loop and a test) never run it twice;
2. **stale?** when it starts later than the kind's ``stale_after`` (the bot was stopped for a
   week), it is ``skipped`` with the reason instead of sending something out of date;
3. run the **action** (async; may read, call the LLM, ...). It returns an :class:`Outcome`:
   ``done`` / ``skipped`` (with a reason) — each with an optional ``apply`` callback whose writes
   (an outbox row, the next job) commit **in the same transaction** as the job's final status —
   or ``defer`` (quiet hours: move the due time, not counted as an attempt);
4. an exception → back to ``pending`` with exponential back-off, ``failed`` after
   ``max_attempts``.

Crash recovery (:meth:`Scheduler.recover`, on start): a job left ``running`` was interrupted
between its claim and its commit. Because a send is only the outbox row, committed together
with ``done``, such a job provably has no outbox row and is simply run again; the outbox is the
proof (rows carry ``request_id = "job:{id}"``, and a job whose row exists is marked ``done``
without running). A job that kills the bot every time stops after ``max_attempts`` runs.
Delivery is then the outbox's exactly-once guarantee.

The clock is injectable (:class:`Clock`: anything returning an aware UTC ``datetime``). The
loop sleeps until the next due job or a :meth:`Scheduler.wake` (a job added, the test clock
moved); it never polls while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.botkit.outbox import backoff_delay
from shared.logging import request_id_var
from shared.store import BotStore, utcnow
from shared.store.jobs import JOB_ERROR_MAX, Job, job_request_id

logger = logging.getLogger(__name__)

#: Longest single sleep of the loop (guards against a wall clock that jumps; not a poll).
MAX_SLEEP_S = 300.0
#: Jobs claimed per pass of the loop.
BATCH = 100
#: Environment switch that makes a bot's clock movable through ``/control/clock``.
TEST_CLOCK_ENV = "FLOTILLA_TEST_CLOCK"


class Clock(Protocol):
    """A time source: returns the current aware UTC time."""

    def __call__(self) -> datetime:
        """Now."""
        ...


class SystemClock:
    """The real clock."""

    def __call__(self) -> datetime:
        """Now (UTC)."""
        return utcnow()


class FakeClock:
    """A clock that stands still until moved (unit tests).

    Args:
        start: the initial time (aware).
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        """The fake now."""
        return self.now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds); return the new now."""
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self.now


class OffsetClock:
    """The real clock plus an offset that only moves forward (a bot started with
    ``FLOTILLA_TEST_CLOCK=1``: subprocess tests move it through ``/control/clock``)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        """How far ahead of real time this clock is."""
        return self._offset

    def __call__(self) -> datetime:
        """Real now + offset."""
        return utcnow() + self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Move forward (never back: a negative delta is refused)."""
        if delta < timedelta(0):
            raise ValueError("the test clock only moves forward")
        with self._lock:
            self._offset += delta
        return self()


@dataclass(slots=True)
class Outcome:
    """What a job's action decided.

    Attributes:
        status: ``done``, ``skipped`` or ``defer``.
        reason: why it was skipped or deferred (stored as the job's ``last_error``).
        until: the new due time of a deferred job.
        apply: writes to commit together with the job's final status (returns the outbox id
            of a send, or ``None``); runs inside the store's transaction.
    """

    status: str
    reason: str | None = None
    until: datetime | None = None
    apply: Callable[[], int | None] | None = None

    @classmethod
    def done(cls, apply: Callable[[], int | None] | None = None) -> Outcome:
        """Finished; ``apply`` (an outbox row, the next job) commits with ``done``."""
        return cls("done", apply=apply)

    @classmethod
    def skipped(cls, reason: str, apply: Callable[[], int | None] | None = None) -> Outcome:
        """Not done on purpose (``reason`` is stored); ``apply`` commits with it."""
        return cls("skipped", reason=reason, apply=apply)

    @classmethod
    def defer(cls, until: datetime, reason: str) -> Outcome:
        """Run again at ``until`` (not an attempt): quiet hours, pacing."""
        return cls("defer", reason=reason, until=until)


Action = Callable[[Job], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class JobKind:
    """A registered kind of job.

    Attributes:
        name: the ``jobs.kind`` value.
        action: what firing a job does.
        stale_after: a job starting later than this after its due time is skipped.
        max_attempts: runs before a failing job is ``failed``.
        base_delay_s: back-off after the first failure (doubles each attempt).
        max_delay_s: longest back-off.
        on_give_up: writes to commit with a job's end when it will not run any more: skipped
            as stale (``why = "stale"``) or failed after its last attempt (``"failed"``); the
            follow-ups end the sequence, so nothing waits for a touch that will never come.
        per_second: at most this many jobs of the kind fired per second (the channel's
            sending pace from its manifest, so 1,000 touches due at once do not hit the
            provider's rate limit); ``None``: no pacing.
    """

    name: str
    action: Action
    stale_after: timedelta | None = None
    max_attempts: int = 5
    base_delay_s: float = 60.0
    max_delay_s: float = 3600.0
    on_give_up: Callable[[Job, str], None] | None = None
    per_second: float | None = None


class Scheduler:
    """Fires due jobs of one bot's database.

    Args:
        store: the bot's database.
        clock: the time source.
        rng: jitter source for the back-off (tests pass a seeded one).
    """

    def __init__(
        self,
        store: BotStore,
        clock: Clock | Callable[[], datetime] = utcnow,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.kinds: dict[str, JobKind] = {}
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._wake = asyncio.Event()
        self._stopping = False
        self.fired = 0
        self._next_slot: dict[str, float] = {}
        #: Called after each job's final status is committed (the bot wakes its outbox).
        self.after_commit: Callable[[], None] | None = None

    # -- set-up -----------------------------------------------------------------------------

    def register(self, kind: JobKind) -> JobKind:
        """Register (or replace) a kind of job."""
        self.kinds[kind.name] = kind
        return kind

    def add(
        self,
        kind: str,
        due_at: datetime,
        payload: dict[str, Any] | None = None,
        *,
        dedupe_key: str | None = None,
        user_id: int | None = None,
    ) -> int | None:
        """Schedule a job (joins the caller's transaction, if any) and wake the loop.

        Returns:
            The job id, or ``None`` when ``dedupe_key`` was used before.
        """
        if due_at.tzinfo is None:
            raise ValueError("due_at must be an aware datetime")
        job_id = self.store.job_add(
            kind, due_at, payload, dedupe_key=dedupe_key, user_id=user_id, now=self.clock()
        )
        self.wake()
        return job_id

    def recover(self) -> dict[str, int]:
        """Settle jobs a crash left ``running`` (see the module doc); call once on start."""
        counts = self.store.jobs_recover(
            max_attempts={k.name: k.max_attempts for k in self.kinds.values()},
            default_max=JobKind("", _never).max_attempts,
            now=self.clock(),
        )
        if any(counts.values()):
            logger.warning("scheduler jobs interrupted by a crash settled", extra=counts)
        return counts

    # -- the loop ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the due jobs now (a job was added, the clock moved)."""
        self._wake.set()

    async def run(self) -> None:
        """Fire jobs as they come due until :meth:`stop`."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("scheduler pass failed")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_s())

    def _sleep_s(self) -> float:
        next_at = self.store.job_next_due()
        if next_at is None:
            return MAX_SLEEP_S
        return min(MAX_SLEEP_S, max(0.0, (next_at - self.clock()).total_seconds()))

    async def stop(self) -> None:
        """Stop after the job in hand (an interrupted one is recovered on the next start)."""
        self._stopping = True
        self.wake()

    async def run_due(self, *, limit: int | None = None) -> int:
        """Fire every job due now, earliest first (also what tests call directly).

        Returns:
            How many jobs were fired.
        """
        fired = 0
        while not self._stopping:
            batch = self.store.jobs_due(now=self.clock(), limit=BATCH)
            progressed = 0
            for job in batch:
                if (limit is not None and fired >= limit) or self._stopping:
                    return fired
                await self._pace(job.kind)
                if await self.fire(job):
                    fired += 1
                    progressed += 1
                await asyncio.sleep(0)  # let webhooks and the outbox run between jobs
            if not progressed:
                break
        return fired

    async def _pace(self, name: str) -> None:
        """Wait for the kind's next sending slot (``JobKind.per_second``; real time)."""
        kind = self.kinds.get(name)
        if kind is None or not kind.per_second or kind.per_second <= 0:
            return
        now = time.monotonic()
        slot = self._next_slot.get(name, now)
        if slot > now:
            await asyncio.sleep(slot - now)
        # The next slot follows this one's slot, not the moment the sleep really ended: a
        # busy event loop wakes each sleep a little late, and counting from the wake-up made
        # 80/s run at ~70/s (bench/scheduler_bench.py). A job that found its slot already past
        # (idle for a while) counts from now, so being late is no reason for a burst.
        self._next_slot[name] = max(slot, now) + 1.0 / kind.per_second

    # -- one job ----------------------------------------------------------------------------

    async def fire(self, job: Job) -> bool:
        """Claim and run one job; return False when it was not claimable."""
        store = self.store
        now = self.clock()
        if not store.job_claim(job.id, now=now):
            return False
        self.fired += 1
        job.attempts += 1
        job.status = "running"
        extra = {"job_id": job.id, "kind": job.kind, "attempt": job.attempts}
        kind = self.kinds.get(job.kind)
        if kind is None:
            store.job_finish(job.id, "failed", error=f"unknown job kind {job.kind!r}", now=now)
            logger.error("job of an unknown kind", extra=extra)
            return True
        late = now - job.due_at
        if kind.stale_after is not None and late > kind.stale_after:
            reason = (
                f"stale: due {job.due_at.isoformat()}, started {_hours(late)} late "
                f"(limit {_hours(kind.stale_after)})"
            )
            with store.transaction():
                if kind.on_give_up is not None:
                    kind.on_give_up(job, "stale")
                store.job_finish(job.id, "skipped", error=reason, now=now)
            logger.warning("stale job skipped", extra={**extra, "reason": reason})
            return True
        token = request_id_var.set(job_request_id(job.id))
        try:
            outcome = await kind.action(job)
            if outcome.status == "defer":
                until = outcome.until or now
                store.job_defer(job.id, until=until, reason=outcome.reason or "deferred",
                                now=self.clock())
                logger.info("job deferred", extra={**extra, "until": until.isoformat(),
                                                    "reason": outcome.reason})
                return True
            with store.transaction():
                outbox_id = outcome.apply() if outcome.apply is not None else None
                store.job_finish(
                    job.id,
                    "done" if outcome.status == "done" else "skipped",
                    error=outcome.reason,
                    outbox_id=outbox_id,
                    now=self.clock(),
                )
            if self.after_commit is not None:
                self.after_commit()
            logger.info("job finished", extra={**extra, "status": outcome.status,
                                                "reason": outcome.reason,
                                                "outbox_id": outbox_id})
        except asyncio.CancelledError:
            raise  # stays running; recovered on the next start
        except Exception as exc:
            self._failed(job, kind, exc, extra)
        finally:
            request_id_var.reset(token)
        return True

    def _failed(self, job: Job, kind: JobKind, exc: Exception, extra: dict[str, Any]) -> None:
        error = f"{type(exc).__name__}: {exc}"[:JOB_ERROR_MAX]
        now = self.clock()
        if job.attempts >= kind.max_attempts:
            with self.store.transaction():
                if kind.on_give_up is not None:
                    kind.on_give_up(job, "failed")
                self.store.job_finish(
                    job.id, "failed", error=f"gave up after {job.attempts} attempts: {error}",
                    now=now,
                )
            logger.error("job failed permanently", extra={**extra, "error": error})
            return
        delay = backoff_delay(job.attempts, base_s=kind.base_delay_s, cap_s=kind.max_delay_s,
                              rng=self.rng)
        self.store.job_retry(job.id, at=now + timedelta(seconds=delay), error=error, now=now)
        logger.warning("job failed, will retry",
                       extra={**extra, "error": error, "delay_s": round(delay, 3)})


async def _never(job: Job) -> Outcome:  # pragma: no cover - only its defaults are read
    raise NotImplementedError


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h"
