"""The durable scheduler with 10,000 jobs in one bot's store (issue 14).

    python -m bench --only scheduler     # (part of make bench) → bench/results/scheduler.json

In one process, with the bot runtime's real parts (``create_context``: the bot's SQLite store,
its scheduler and outbox worker, the WhatsApp adapter) and the sandbox Graph API in a process of
its own (``python -m shared.sandbox``, so its CPU is not counted):

1. **idle**: 10,000 jobs due in the next 30 days; the process CPU over N s with the scheduler
   loop running, beside the same N s of the same event loop with no scheduler (baseline);
2. **fire**: 1,000 of them come due at once; the time until all 1,000 are ``done``, paced by
   the WhatsApp manifest's ``messages_per_second`` (80/s: 1,000 take ≥ 12.5 s by design), and
   the same with pacing off (what the scheduler itself costs per job). Each job's action is a
   send: one outbox row committed with the job's ``done``, as a follow-up touch does (the
   follow-up's own checks — window, quiet hours, opt-out — are not in this number);
3. **outbox**: the outbox worker sends those 1,000 rows to the sandbox (real HTTP, its usual
   concurrency): the plain send rate, measured in the same run.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import REPO, free_port, goal, stop_process, wait_listening

JOBS = 10_000
DUE_AT_ONCE = 1_000
KIND = "bench_touch"
KIND_UNPACED = "bench_touch_unpaced"


def cpu_s() -> float:
    """CPU seconds (user + system) this process used so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def idle_cpu_pct(seconds: float) -> float:
    """Percent of one core this process used over ``seconds`` of wall time."""
    c0, t0 = cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    return round(100 * (cpu_s() - c0) / (time.monotonic() - t0), 3)


async def wait_for(check: Any, timeout: float = 300.0, every: float = 0.02) -> float:
    """Poll ``check()`` until true; return the seconds waited."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not done in {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def measure(quick: bool, root: Path, sandbox_url: str) -> dict[str, Any]:
    from shared.botkit import BotSettings, create_context
    from shared.botkit.scheduler import JobKind, Outcome
    from shared.channels.base import CustomerRef, TextReply
    from shared.store import BotStore, utcnow
    from shared.store.jobs import Job
    from whatsapp_bot.channel import WhatsAppChannel
    from whatsapp_bot.manifest import MANIFEST

    idle_s = 3.0 if quick else 10.0
    per_second = MANIFEST.capabilities.messages_per_second
    assert per_second, "the WhatsApp manifest declares its sending pace"
    settings = BotSettings(
        instance_id="bench-bot",
        kind="whatsapp",
        internal_token="unused",  # noqa: S106
        orchestrator_url="http://127.0.0.1:9",
        control_key="ab" * 32,
        data_dir=root,
        port=None,
        host="127.0.0.1",
        log_level="WARNING",
    )
    config = {
        "id": "bench-bot",
        "kind": "whatsapp",
        "name": "Bench",
        "phone_number_id": "106540352242922",
        "access_token": "bench-access-token",
        "app_secret": "bench-secret",
        "verify_token": "bench-verify",
        "graph_api_base_url": f"{sandbox_url}/graph",
        "graph_api_version": "v21.0",
        "wa_mark_read": False,
        "fallback_text": "",
    }
    async with aiohttp.ClientSession() as http:
        store = BotStore.open(root / "bench.db")
        ctx = create_context(
            WhatsAppChannel(), settings, config, http=http, client=None, store=store
        )
        assert ctx.scheduler is not None
        assert ctx.outbox is not None
        scheduler = ctx.scheduler
        now = utcnow()
        customers: list[tuple[int, CustomerRef]] = []
        with store.transaction():
            for i in range(DUE_AT_ONCE):
                ref = CustomerRef(phone=f"+1555{i:07d}")
                user = store.resolve_user(ref, now=now)
                store.touch_inbound(user.id, now=now)  # the 24-hour window is open
                customers.append((user.id, ref))

        def action_for(job: Job) -> Outcome:
            user_id, ref = customers[int(job.payload["c"])]
            return Outcome.done(
                lambda: ctx.enqueue_reply(
                    ref, TextReply(f"touch {job.id}"), user_id=user_id, origin="followup"
                )
            )

        async def paced(job: Job) -> Outcome:
            return action_for(job)

        scheduler.register(JobKind(KIND, paced, per_second=per_second))
        scheduler.register(JobKind(KIND_UNPACED, paced))

        # 10,000 jobs spread over the next 30 days
        t0 = time.monotonic()
        ids: list[int] = []
        with store.transaction():
            for i in range(JOBS):
                due = now + timedelta(days=1) + timedelta(seconds=i * 29 * 86400 / JOBS)
                job_id = store.job_add(KIND, due, {"c": i % DUE_AT_ONCE}, now=now)
                assert job_id is not None
                ids.append(job_id)
        add_s = time.monotonic() - t0

        baseline_pct = await idle_cpu_pct(idle_s)  # the same loop, no scheduler yet
        outbox_task = asyncio.create_task(ctx.outbox.run())
        await asyncio.sleep(0.5)
        outbox_idle_pct = await idle_cpu_pct(idle_s)  # the outbox worker alone (it polls 1/s)
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0.5)
        idle_pct = await idle_cpu_pct(idle_s)  # scheduler + outbox, 10,000 jobs pending

        def done_count(kind: str) -> int:
            row = store.conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE kind = ? AND status = 'done'", (kind,)
            ).fetchone()
            return int(row[0])

        def pending_outbox() -> int:
            row = store.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
            ).fetchone()
            return int(row[0])

        # keep the outbox out of the firing numbers: it would send while jobs fire
        outbox_task.cancel()
        await asyncio.gather(outbox_task, return_exceptions=True)

        # 1,000 of the 10,000 come due at once (paced by the channel)
        due_now = utcnow()
        store.conn.execute(
            f"UPDATE jobs SET due_at = ? WHERE id IN ({','.join('?' * DUE_AT_ONCE)})",  # noqa: S608
            (due_now.isoformat(), *ids[:DUE_AT_ONCE]),
        )
        store.conn.commit()
        c0 = cpu_s()
        scheduler.wake()
        paced_s = await wait_for(lambda: done_count(KIND) >= DUE_AT_ONCE)
        paced_cpu_ms_per_job = 1000 * (cpu_s() - c0) / DUE_AT_ONCE

        # the same with pacing off: what the scheduler itself costs
        with store.transaction():
            for i in range(DUE_AT_ONCE):
                store.job_add(KIND_UNPACED, utcnow(), {"c": i}, now=utcnow())
        c0 = cpu_s()
        scheduler.wake()
        unpaced_s = await wait_for(lambda: done_count(KIND_UNPACED) >= DUE_AT_ONCE)
        unpaced_cpu_ms_per_job = 1000 * (cpu_s() - c0) / DUE_AT_ONCE
        rows_queued = pending_outbox()

        # the outbox's plain send rate: the 2,000 rows those jobs queued, to the sandbox
        c0 = cpu_s()
        outbox_task = asyncio.create_task(ctx.outbox.run())
        send_s = await wait_for(lambda: pending_outbox() == 0)
        send_cpu_ms = 1000 * (cpu_s() - c0) / max(rows_queued, 1)
        sent = store.conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'sent'").fetchone()

        await scheduler.stop()
        await ctx.outbox.stop(5)
        for t in (task, outbox_task):
            t.cancel()
        await asyncio.gather(task, outbox_task, return_exceptions=True)
        store.close()

    paced_rate = DUE_AT_ONCE / paced_s
    return {
        "jobs": JOBS,
        "due_at_once": DUE_AT_ONCE,
        "channel_per_second": per_second,
        "add_10k_s": round(add_s, 3),
        "idle_seconds": idle_s,
        "idle_cpu_pct_baseline": baseline_pct,
        "idle_cpu_pct_outbox_only": outbox_idle_pct,
        "idle_cpu_pct_scheduler": idle_pct,
        "fire_paced_s": round(paced_s, 3),
        "fire_paced_per_s": round(paced_rate, 1),
        "fire_paced_floor_s": round(DUE_AT_ONCE / per_second, 3),
        "fire_paced_cpu_ms_per_job": round(paced_cpu_ms_per_job, 3),
        "fire_unpaced_s": round(unpaced_s, 3),
        "fire_unpaced_per_s": round(DUE_AT_ONCE / unpaced_s, 1),
        "fire_unpaced_cpu_ms_per_job": round(unpaced_cpu_ms_per_job, 3),
        "outbox_rows": rows_queued,
        "outbox_sent": int(sent[0]),
        "outbox_send_s": round(send_s, 3),
        "outbox_send_per_s": round(rows_queued / send_s, 1) if send_s else None,
        "outbox_cpu_ms_per_send": round(send_cpu_ms, 3),
    }


def run(quick: bool) -> dict[str, Any]:
    """Run the benchmark; return the body of ``bench/results/scheduler.json``."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-sched-") as tmp:
        root = Path(tmp)
        log = (root / "sandbox.log").open("ab")
        sandbox = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shared.sandbox",
                "--port",
                str(port),
                "--max-requests",
                "300000",
                "--log-level",
                "WARNING",
            ],
            cwd=REPO,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            wait_listening(port, sandbox)
            r = asyncio.run(measure(quick, root, f"http://127.0.0.1:{port}"))
        finally:
            stop_process(sandbox)
            log.close()
    floor = r["fire_paced_floor_s"]
    goals = [
        goal(
            "scheduler CPU while idle with 10,000 jobs (above the same loop without it)",
            round(r["idle_cpu_pct_scheduler"] - r["idle_cpu_pct_outbox_only"], 3),
            "<=",
            1.0,
            "% of a core",
        ),
        goal(
            "1,000 jobs due at once: fired within 10 % of the channel's pace",
            r["fire_paced_s"],
            "<=",
            round(floor * 1.1 + 0.5, 2),
            "s",
        ),
        goal(
            "the channel's pace is never exceeded",
            r["fire_paced_per_s"],
            "<=",
            round(r["channel_per_second"] * 1.02, 1),
            "jobs/s",
        ),
        goal("every queued send delivered", r["outbox_sent"], ">=", r["outbox_rows"], "rows"),
    ]
    return {
        "setup": (
            "in-process bot runtime (create_context: SQLite store, scheduler, outbox worker, "
            "WhatsApp adapter); sandbox Graph API in its own process; each job queues one "
            "outbox row committed with its 'done'"
        ),
        "parameters": {"jobs": JOBS, "due_at_once": DUE_AT_ONCE, "quick": quick},
        "results": r,
        "goals": goals,
    }
