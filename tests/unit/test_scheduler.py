"""The durable scheduler (shared.botkit.scheduler) over a real SQLite file and a fake clock:
due, early, late, stale, restart, crash recovery, two jobs due together, retries with back-off,
dedupe, deferral, and the loop's sleeping (no busy polling)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.botkit.scheduler import FakeClock, JobKind, OffsetClock, Outcome, Scheduler
from shared.channels.base import CustomerRef
from shared.store import BotStore
from shared.store.jobs import Job, job_request_id

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Recorder:
    """A job kind whose action records each run and sends through the outbox when asked."""

    def __init__(self, store: BotStore, *, fail_times: int = 0, send: bool = True) -> None:
        self.store = store
        self.fail_times = fail_times
        self.send = send
        self.runs: list[tuple[int, datetime]] = []
        self.clock: FakeClock | None = None

    async def __call__(self, job: Job) -> Outcome:
        assert self.clock is not None
        self.runs.append((job.id, self.clock()))
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("provider down")
        if not self.send:
            return Outcome.done()

        def apply() -> int:
            return self.store.outbox_add(
                customer=CustomerRef({"phone": "15550001"}),
                reply={"type": "text", "text": f"job {job.id}"},
                request_id=job_request_id(job.id),
                origin="followup",
            )

        return Outcome.done(apply)


def make(
    path: Path, clock: FakeClock, recorder: Recorder | None = None, **kind: object
) -> tuple[BotStore, Scheduler, Recorder]:
    store = BotStore.open(path)
    rec = recorder or Recorder(store)
    rec.store = store
    rec.clock = clock
    scheduler = Scheduler(store, clock, rng=random.Random(7))
    scheduler.register(JobKind("ping", rec, **kind))  # type: ignore[arg-type]
    return store, scheduler, rec


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "bot.db"


async def test_job_fires_when_due_not_before(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, rec = make(db, clock)
    job_id = scheduler.add("ping", T0 + timedelta(hours=24), {"n": 1})
    assert job_id is not None

    clock.advance(timedelta(hours=23, minutes=59))
    assert await scheduler.run_due() == 0  # early: nothing
    assert store.job_get(job_id).status == "pending"  # type: ignore[union-attr]

    clock.advance(timedelta(minutes=1))
    assert await scheduler.run_due() == 1  # due
    job = store.job_get(job_id)
    assert job is not None
    assert job.status == "done"
    assert job.attempts == 1
    assert rec.runs == [(job_id, T0 + timedelta(hours=24))]
    # the send is an outbox row committed with "done", tagged with the job
    rows = store.outbox_all()
    assert len(rows) == 1
    assert rows[0].request_id == job_request_id(job_id)
    assert job.outbox_id == rows[0].id
    assert await scheduler.run_due() == 0  # never twice


async def test_late_job_within_staleness_fires(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, rec = make(db, clock, stale_after=timedelta(hours=48))
    job_id = scheduler.add("ping", T0 + timedelta(hours=1))
    clock.advance(timedelta(hours=40))  # 39 h late: still fine
    assert await scheduler.run_due() == 1
    assert store.job_get(job_id).status == "done"  # type: ignore[union-attr, arg-type]
    assert len(store.outbox_all()) == 1


async def test_stale_job_is_skipped_with_reason(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, rec = make(db, clock, stale_after=timedelta(hours=48))
    job_id = scheduler.add("ping", T0 + timedelta(hours=1))
    clock.advance(timedelta(days=7))  # the bot was stopped for a week
    assert await scheduler.run_due() == 1
    job = store.job_get(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.status == "skipped"
    assert job.last_error is not None
    assert job.last_error.startswith("stale:")
    assert "167.0 h late" in job.last_error
    assert "limit 48.0 h" in job.last_error
    assert rec.runs == []
    assert store.outbox_all() == []


async def test_two_jobs_due_together_both_fire_once_in_order(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, rec = make(db, clock)
    second = scheduler.add("ping", T0 + timedelta(minutes=5))
    first = scheduler.add("ping", T0 + timedelta(minutes=5) - timedelta(seconds=1))
    clock.advance(timedelta(minutes=10))
    assert await scheduler.run_due() == 2
    assert [r[0] for r in rec.runs] == [first, second]
    assert {j.status for j in store.jobs()} == {"done"}
    assert len(store.outbox_all()) == 2


async def test_restart_picks_up_pending_jobs(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, _ = make(db, clock)
    job_id = scheduler.add("ping", T0 + timedelta(hours=1))
    store.close()  # the bot stops before the job is due

    clock.advance(timedelta(hours=2))  # comes back after the due time
    store2, scheduler2, rec2 = make(db, clock)
    assert scheduler2.recover() == {"requeued": 0, "done": 0, "failed": 0}
    assert await scheduler2.run_due() == 1
    assert store2.job_get(job_id).status == "done"  # type: ignore[union-attr, arg-type]
    assert len(rec2.runs) == 1
    assert len(store2.outbox_all()) == 1


async def test_crash_between_claim_and_commit_reruns_once_without_doubling(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, _ = make(db, clock)
    job_id = scheduler.add("ping", T0)
    job = store.job_get(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert store.job_claim(job.id, now=clock())  # claimed, then the process dies (kill -9)
    store.close()

    store2, scheduler2, rec2 = make(db, clock)
    assert scheduler2.recover() == {"requeued": 1, "done": 0, "failed": 0}
    assert await scheduler2.run_due() == 1
    done = store2.job_get(job.id)
    assert done is not None
    assert done.status == "done"
    assert done.attempts == 2
    assert len(rec2.runs) == 1
    assert len(store2.outbox_all()) == 1
    store2.close()

    # a third start finds nothing to do: the job ran exactly once more
    store3, scheduler3, rec3 = make(db, clock)
    assert scheduler3.recover() == {"requeued": 0, "done": 0, "failed": 0}
    assert await scheduler3.run_due() == 0
    assert rec3.runs == []
    assert len(store3.outbox_all()) == 1


async def test_running_job_whose_outbox_row_exists_is_not_rerun(db: Path) -> None:
    """The outbox row is the proof: a job found running whose send was committed is done."""
    clock = FakeClock(T0)
    store, scheduler, _ = make(db, clock)
    job_id = scheduler.add("ping", T0)
    assert job_id is not None
    assert store.job_claim(job_id, now=clock())
    outbox_id = store.outbox_add(
        customer=CustomerRef({"phone": "15550001"}),
        reply={"type": "text", "text": "sent before the crash"},
        request_id=job_request_id(job_id),
    )
    store.close()

    store2, scheduler2, rec2 = make(db, clock)
    assert scheduler2.recover() == {"requeued": 0, "done": 1, "failed": 0}
    assert await scheduler2.run_due() == 0
    job = store2.job_get(job_id)
    assert job is not None
    assert job.status == "done"
    assert job.outbox_id == outbox_id
    assert rec2.runs == []
    assert len(store2.outbox_all()) == 1


async def test_job_that_keeps_crashing_the_bot_stops_after_max_attempts(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, _ = make(db, clock, max_attempts=2)
    job_id = scheduler.add("ping", T0)
    assert job_id is not None
    for _ in range(2):  # claimed and killed twice
        assert store.job_claim(job_id, now=clock())
        store.close()
        store, scheduler, _ = make(db, clock, max_attempts=2)
        counts = scheduler.recover()
    assert counts == {"requeued": 0, "done": 0, "failed": 1}
    job = store.job_get(job_id)
    assert job is not None
    assert job.status == "failed"
    assert job.last_error == "interrupted by a crash 2 times"


async def test_failing_action_is_retried_with_exponential_backoff(db: Path) -> None:
    clock = FakeClock(T0)
    store = BotStore.open(db)
    rec = Recorder(store, fail_times=2)
    store, scheduler, rec = make(db, clock, rec, base_delay_s=60.0, max_delay_s=3600.0)
    job_id = scheduler.add("ping", T0)
    assert job_id is not None

    assert await scheduler.run_due() == 1
    job = store.job_get(job_id)
    assert job is not None
    assert job.status == "pending"
    assert job.attempts == 1
    assert job.last_error == "RuntimeError: provider down"
    first_delay = (job.due_at - T0).total_seconds()
    assert 30.0 <= first_delay <= 60.0  # base 60 s with equal jitter

    clock.advance(timedelta(seconds=first_delay - 1))
    assert await scheduler.run_due() == 0  # not before the back-off
    clock.advance(timedelta(seconds=1))
    assert await scheduler.run_due() == 1
    job = store.job_get(job_id)
    assert job is not None
    assert job.status == "pending"
    assert job.attempts == 2
    second_delay = (job.due_at - clock()).total_seconds()
    assert 60.0 <= second_delay <= 120.0  # doubled

    clock.advance(timedelta(seconds=second_delay))
    assert await scheduler.run_due() == 1
    job = store.job_get(job_id)
    assert job is not None
    assert job.status == "done"
    assert job.attempts == 3
    assert len(rec.runs) == 3
    assert len(store.outbox_all()) == 1


async def test_failing_action_gives_up_after_max_attempts(db: Path) -> None:
    clock = FakeClock(T0)
    store = BotStore.open(db)
    store, scheduler, rec = make(
        db,
        clock,
        Recorder(store, fail_times=99),
        max_attempts=3,
        base_delay_s=1.0,
        max_delay_s=1.0,
    )
    job_id = scheduler.add("ping", T0)
    for _ in range(3):
        assert await scheduler.run_due() == 1
        clock.advance(timedelta(seconds=2))
    job = store.job_get(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.status == "failed"
    assert job.last_error == "gave up after 3 attempts: RuntimeError: provider down"
    assert await scheduler.run_due() == 0
    assert store.outbox_all() == []


async def test_apply_failure_rolls_back_the_send(db: Path) -> None:
    """The send and "done" are one transaction: if writing fails, neither is kept."""
    clock = FakeClock(T0)
    store = BotStore.open(db)

    async def broken(job: Job) -> Outcome:
        def apply() -> int:
            store.outbox_add(
                customer=CustomerRef({"phone": "1555"}),
                reply={"type": "text", "text": "x"},
                request_id=job_request_id(job.id),
            )
            raise RuntimeError("disk full")

        return Outcome.done(apply)

    scheduler = Scheduler(store, clock)
    scheduler.register(JobKind("ping", broken, max_attempts=1))
    job_id = scheduler.add("ping", T0)
    assert await scheduler.run_due() == 1
    job = store.job_get(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.status == "failed"
    assert "disk full" in (job.last_error or "")
    assert store.outbox_all() == []


async def test_dedupe_key_creates_a_job_once(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, _ = make(db, clock)
    first = scheduler.add("ping", T0, dedupe_key="followup:1:1")
    again = scheduler.add("ping", T0 + timedelta(hours=1), dedupe_key="followup:1:1")
    assert first is not None
    assert again is None
    assert store.count_jobs() == 1


async def test_deferred_job_moves_without_counting_an_attempt(db: Path) -> None:
    clock = FakeClock(T0)
    store = BotStore.open(db)
    morning = T0 + timedelta(hours=9)
    calls: list[datetime] = []

    async def quiet(job: Job) -> Outcome:
        calls.append(clock())
        if clock() < morning:
            return Outcome.defer(morning, "quiet hours in Asia/Almaty")
        return Outcome.done()

    scheduler = Scheduler(store, clock)
    scheduler.register(JobKind("ping", quiet))
    job_id = scheduler.add("ping", T0)
    assert await scheduler.run_due() == 1
    job = store.job_get(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.status == "pending"
    assert job.due_at == morning
    assert job.attempts == 0
    assert job.last_error == "quiet hours in Asia/Almaty"
    clock.advance(timedelta(hours=9))
    assert await scheduler.run_due() == 1
    assert store.job_get(job_id).status == "done"  # type: ignore[union-attr, arg-type]
    assert len(calls) == 2


async def test_unknown_kind_fails_clearly(db: Path) -> None:
    clock = FakeClock(T0)
    store, scheduler, _ = make(db, clock)
    job_id = store.job_add("nonsense", T0, {})
    assert await scheduler.run_due() == 1
    job = store.job_get(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.status == "failed"
    assert job.last_error == "unknown job kind 'nonsense'"


async def test_loop_sleeps_until_due_and_wakes_on_add(db: Path) -> None:
    """The running loop fires a job added while it sleeps, without polling in between."""
    store = BotStore.open(db)
    fired = asyncio.Event()

    async def action(job: Job) -> Outcome:
        fired.set()
        return Outcome.done()

    scheduler = Scheduler(store)  # the real clock
    scheduler.register(JobKind("ping", action))
    passes = 0
    real_run_due = scheduler.run_due

    async def counting(**kw: object) -> int:
        nonlocal passes
        passes += 1
        return await real_run_due()

    scheduler.run_due = counting  # type: ignore[method-assign]
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0.3)
    assert passes == 1  # one pass at start, then asleep (no jobs: no polling)
    scheduler.add("ping", datetime.now(UTC) + timedelta(milliseconds=200))
    await asyncio.wait_for(fired.wait(), 5)
    assert passes <= 4  # woken by add, slept until due, fired
    await scheduler.stop()
    await asyncio.wait_for(task, 2)
    assert store.count_jobs("done") == 1


def test_offset_clock_only_moves_forward() -> None:
    clock = OffsetClock()
    before = clock()
    after = clock.advance(timedelta(hours=24))
    assert after - before >= timedelta(hours=24)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(timedelta(seconds=-1))


def test_payload_is_stored_as_json(db: Path) -> None:
    store = BotStore.open(db)
    job_id = store.job_add("ping", T0, {"text": "привет", "n": 2})
    raw = store.conn.execute("SELECT payload FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    assert json.loads(raw) == {"text": "привет", "n": 2}
    with pytest.raises(ValueError, match="aware"):
        Scheduler(store).add("ping", datetime(2026, 1, 1))  # noqa: DTZ001 - the point


async def test_give_up_hook_commits_with_the_final_status(db: Path) -> None:
    """A job that will not run again (stale, or failed on its last attempt) lets its kind clean
    up in the same transaction (a follow-up ends its sequence)."""
    clock = FakeClock(T0)
    store = BotStore.open(db)
    seen: list[tuple[int, str]] = []

    def give_up(job: Job, why: str) -> None:
        seen.append((job.id, why))
        store.job_add("marker", T0, {"for": job.id, "why": why}, dedupe_key=f"m:{job.id}")

    async def failing(job: Job) -> Outcome:
        raise RuntimeError("always")

    scheduler = Scheduler(store, clock)
    scheduler.register(
        JobKind(
            "ping", failing, max_attempts=1, stale_after=timedelta(hours=1), on_give_up=give_up
        )
    )
    failed = scheduler.add("ping", T0)
    stale = scheduler.add("ping", T0 - timedelta(hours=2))
    assert await scheduler.run_due() == 4  # the two jobs, then their markers (unknown kind)
    assert sorted(seen) == sorted([(failed, "failed"), (stale, "stale")])
    assert store.job_by_key(f"m:{failed}") is not None
    assert store.job_by_key(f"m:{stale}") is not None


async def test_paced_kind_fires_no_faster_than_its_rate(db: Path) -> None:
    """``per_second`` (the channel's sending pace) spreads jobs due together over time."""
    import time

    clock = FakeClock(T0)
    store = BotStore.open(db)
    fired_at: list[float] = []

    async def action(job: Job) -> Outcome:
        fired_at.append(time.monotonic())
        return Outcome.done()

    scheduler = Scheduler(store, clock)
    scheduler.register(JobKind("paced", action, per_second=5.0))
    scheduler.register(JobKind("free", action))
    for _ in range(5):
        scheduler.add("paced", T0)
    assert await scheduler.run_due() == 5
    gaps = [b - a for a, b in zip(fired_at, fired_at[1:], strict=False)]
    # 1/5 s apart; some slack for the claim's commit time on a busy machine
    assert min(gaps) >= 0.15, gaps
    assert fired_at[-1] - fired_at[0] >= 0.79, gaps
    fired_at.clear()
    for _ in range(5):
        scheduler.add("free", T0)
    started = time.monotonic()
    assert await scheduler.run_due() == 5
    assert time.monotonic() - started < 0.5  # an unpaced kind is not slowed down (0.8 s)
