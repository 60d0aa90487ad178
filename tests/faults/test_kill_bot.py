"""``kill -9`` of a bot while inbound messages arrive: after the respawn every message has
exactly one reply (the sender retries every non-200 and connection error, as Meta does).

The sandbox sends Meta-like status webhooks to the bot (registered by ``start_bot``): a reply
whose send was in flight when the bot died is confirmed by its status (its
``biz_opaque_callback_data`` names the outbox row) and settled without being sent again."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tests.faults.fleet import (
    MetaSender,
    SandboxProcess,
    count_replies,
    customer_phone,
    inbound_payload,
    start_bot,
    wait_replies,
)
from tests.faults.results import record_scenario, sized
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_kill9_bot_under_load_loses_and_doubles_nothing(
    orch: OrchestratorProcess, sandbox: SandboxProcess
) -> None:
    n = sized(150, 1000)
    kills = sized(1, 2)
    spread_s = sized(3, 10)
    sandbox.reset()
    bot = start_bot(orch, sandbox, "Kill Bot")
    phones = [customer_phone(2, i) for i in range(n)]
    pids: list[int] = []

    async def killer(sender: MetaSender) -> None:
        # Kill once a share of the load has been acknowledged, so messages are in every stage
        # (being received, in the inbox, in the outbox, being sent) when the process dies.
        for k in range(kills):
            target = n * (k + 1) // (kills + 1)
            while len(sender.stats.ok_at) < target:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.01)
            pid = int(bot.status()["pid"])
            os.kill(pid, signal.SIGKILL)
            pids.append(pid)
            # wait for the respawn before the next kill (the sender keeps retrying meanwhile)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                st = await asyncio.to_thread(bot.status)
                if st["state"] == "running" and st["pid"] not in pids:
                    break
                await asyncio.sleep(0.05)

    async def run() -> MetaSender:
        async with MetaSender(f"{bot.url}/webhook", concurrency=32, deadline_s=120) as sender:
            jobs = [
                sender.deliver(
                    inbound_payload(phone, f"wamid.kill.{i:05d}", f"where is order {i}?",
                                    bot.phone_number_id),
                    f"wamid.kill.{i:05d}",
                    delay_s=spread_s * i / n,
                )
                for i, phone in enumerate(phones)
            ]
            await asyncio.gather(killer(sender), *jobs)
            return sender

    started = time.monotonic()
    sender = asyncio.run(run())
    expected = dict.fromkeys(phones, 1)
    messages = wait_replies(sandbox, bot, expected, timeout=sized(90, 240), settle_s=3)
    lost, doubled, per_customer = count_replies(messages, expected)
    st = bot.status()
    refused = sum(v for k, v in sender.stats.statuses.items() if k != "200")
    detail = (
        f"{n} messages, {len(pids)} kill -9 of the bot; {sender.stats.summary()}; "
        f"{refused} refused/failed attempts retried; restarts {st['restarts']}; "
        f"{bot.recovery_summary()}; {bot.db_summary()}; "
        f"status webhooks {sandbox.webhook_stats()}; "
        f"{len(messages)} replies in {time.monotonic() - started:.1f} s"
    )
    passed = lost == 0 and doubled == 0 and not sender.stats.gave_up
    record_scenario("kill -9 bot", messages=n, lost=lost, doubled=doubled, passed=passed,
                    detail=detail)
    assert len(pids) == kills, detail
    assert st["state"] == "running", st
    assert st["restarts"] == kills, st
    assert st["last_exit_code"] == -signal.SIGKILL, st
    assert refused > 0, f"the kill never hit a delivery, the scenario proved nothing: {detail}"
    assert not sender.stats.gave_up, detail
    assert lost == 0, f"{lost} lost: {detail}"
    assert doubled == 0, (
        f"{doubled} doubled: {detail}; {[p for p, c in per_customer.items() if c > 1][:10]}"
    )
