"""``kill -9`` of a bot while hundreds of follow-up touches come due: after the respawn every
customer has exactly one touch at the sandbox (none lost, none doubled).

The bot (a real WhatsApp bot under a real orchestrator, status webhooks flowing as on Meta) is
stopped, its database is given N customers with an active follow-up sequence whose touch 1 is
due now (written with the bot's own store code, as the bot writes them when it answers), and
started again: the scheduler fires the N jobs at once. The process is killed with SIGKILL once
part of the jobs are done; the supervisor respawns it. Each job is claimed before its action and
its outbox row is committed with ``done``, so a job interrupted mid-way is re-run without a
second outbox row, and the outbox settles sends that were in flight by the provider's status.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.botkit.followups import KIND
from shared.channels.base import CustomerRef
from shared.store import BotStore
from tests.faults.fleet import Bot, SandboxProcess, count_replies, customer_phone, start_bot
from tests.faults.results import record_scenario, sized
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TOUCH = "Just checking in: any questions?"


def _db(bot: Bot) -> Path:
    return bot.orch.root / "data" / f"wa_sales_{bot.id}.db"


def _seed(path: Path, phones: list[str]) -> None:
    """N customers who wrote a minute ago, each with touch 1 of a sequence due now."""
    store = BotStore.open(path)
    now = datetime.now(UTC)
    try:
        with store.transaction():
            for phone in phones:
                user = store.resolve_user(CustomerRef(phone="+" + phone), now=now)
                store.touch_inbound(user.id, now=now - timedelta(minutes=1))
                seq = store.followup_start(user.id, total=2, next_due_at=now, now=now)
                store.job_add(
                    KIND,
                    now - timedelta(seconds=1),
                    {"sequence_id": seq, "touch": 1, "user_id": user.id},
                    dedupe_key=f"{KIND}:{seq}:1",
                    user_id=user.id,
                    now=now,
                )
    finally:
        store.close()


def _jobs(path: Path) -> dict[str, int]:
    """Touch-1 jobs by status (each done one also scheduled its touch 2, due in 72 h)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return dict(
            con.execute(
                "SELECT status, COUNT(*) FROM jobs WHERE json_extract(payload, '$.touch') = 1 "
                "GROUP BY status"
            ).fetchall()
        )
    except sqlite3.Error:
        return {}
    finally:
        con.close()


def test_kill9_while_followups_come_due_sends_each_exactly_once(
    orch: OrchestratorProcess, sandbox: SandboxProcess
) -> None:
    n = sized(500, 2000)
    sandbox.reset()
    followups = {
        "enabled": True,
        "touches": [{"after_hours": 24, "text": TOUCH}, {"after_hours": 72, "text": "Bye"}],
        "quiet_start": "00:00",  # the real time of day must not defer anything
        "quiet_end": "00:00",
    }
    bot = start_bot(orch, sandbox, "Followup Kill Bot", followups=followups)
    res = orch.api("POST", f"/admin/whatsapp/instances/{bot.id}/stop")
    assert res.status_code == 200, res.text
    orch.wait_state("whatsapp", bot.id, "stopped", timeout=30)
    phones = [customer_phone(14, i) for i in range(n)]
    _seed(_db(bot), phones)

    started = time.monotonic()
    res = orch.api("POST", f"/admin/whatsapp/instances/{bot.id}/start")
    assert res.status_code == 200, res.text
    st = orch.wait_state("whatsapp", bot.id, "running", timeout=30)
    assert int(st["port"]) == bot.port
    first_pid = int(st["pid"])

    # kill once a third of the jobs are done: others are claimed, in flight or still pending
    at_kill: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        at_kill = _jobs(_db(bot))
        if at_kill.get("done", 0) >= n // 3:
            break
        time.sleep(0.005)
    os.kill(first_pid, signal.SIGKILL)
    sent_at_kill = len(sandbox.messages(bot.phone_number_id))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = bot.status()
        if st["state"] == "running" and st["pid"] != first_pid:
            break
        time.sleep(0.05)

    expected = dict.fromkeys(phones, 1)
    messages: list[dict[str, object]] = []
    deadline = time.monotonic() + sized(120, 300)
    while time.monotonic() < deadline:
        messages = [m for m in sandbox.messages(bot.phone_number_id) if m["text"] == TOUCH]
        jobs = _jobs(_db(bot))
        health = bot.health()
        if (
            len(messages) >= n
            and jobs.get("done", 0) == n
            and health
            and not health["outbox_pending"]
        ):
            break
        time.sleep(0.25)
    time.sleep(3)  # late doubles are counted too
    messages = [m for m in sandbox.messages(bot.phone_number_id) if m["text"] == TOUCH]
    messages = [{**m, "to": str(m["to"]).lstrip("+")} for m in messages]
    lost, doubled, per_customer = count_replies(messages, expected)
    jobs = _jobs(_db(bot))
    st = bot.status()
    detail = (
        f"{n} follow-up touches due at once, 1 kill -9 of the bot with jobs {at_kill} and "
        f"{sent_at_kill} touches at the sandbox; after the respawn jobs {jobs}; "
        f"restarts {st['restarts']}; {bot.recovery_summary()}; {bot.db_summary()}; "
        f"status webhooks {sandbox.webhook_stats()}; {len(messages)} touches in "
        f"{time.monotonic() - started:.1f} s"
    )
    passed = lost == 0 and doubled == 0 and jobs == {"done": n}
    record_scenario(
        "kill -9 bot while follow-ups come due",
        messages=n,
        lost=lost,
        doubled=doubled,
        passed=passed,
        detail=detail,
    )
    assert st["state"] == "running", st
    assert st["restarts"] == 1, st
    assert 0 < at_kill.get("done", 0) < n, f"the kill did not land mid-way: {detail}"
    assert lost == 0, f"{lost} lost: {detail}"
    assert doubled == 0, (
        f"{doubled} doubled: {detail}; {[p for p, c in per_customer.items() if c > 1][:10]}"
    )
    assert jobs == {"done": n}, detail
    con = sqlite3.connect(f"file:{_db(bot)}?mode=ro", uri=True, timeout=5)
    try:
        second = con.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE json_extract(payload, '$.touch') = 2 "
            "GROUP BY status"
        ).fetchall()
        touched = con.execute(
            "SELECT touches_sent, COUNT(*) FROM followups GROUP BY touches_sent"
        ).fetchall()
    finally:
        con.close()
    assert dict(second) == {"pending": n}, second  # each next touch scheduled once
    assert dict(touched) == {1: n}, touched
