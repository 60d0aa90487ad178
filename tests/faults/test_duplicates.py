"""Duplicate deliveries: every message delivered three times → exactly one set of replies."""

from __future__ import annotations

import asyncio
import random
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


def test_each_message_delivered_three_times_is_answered_once(
    orch: OrchestratorProcess, sandbox: SandboxProcess
) -> None:
    n = sized(60, 500)
    sandbox.reset()
    bot = start_bot(orch, sandbox, "Dup Bot")
    rng = random.Random(11)
    phones = [customer_phone(1, i) for i in range(n)]

    async def run() -> MetaSender:
        async with MetaSender(f"{bot.url}/webhook", concurrency=48) as sender:
            deliveries = []
            for i, phone in enumerate(phones):
                wamid = f"wamid.dup.{i:05d}"
                raw = inbound_payload(phone, wamid, f"question number {i}?", bot.phone_number_id)
                # Two copies at once (a retry racing the original) and one later.
                deliveries.append(sender.deliver(raw, wamid))
                deliveries.append(sender.deliver(raw, wamid))
                deliveries.append(sender.deliver(raw, wamid, delay_s=rng.uniform(0.5, 4.0)))
            await asyncio.gather(*deliveries)
            return sender

    started = time.monotonic()
    sender = asyncio.run(run())
    expected = dict.fromkeys(phones, 1)
    messages = wait_replies(sandbox, bot, expected, timeout=sized(60, 240))
    lost, doubled, per_customer = count_replies(messages, expected)
    detail = (
        f"{n} messages x 3 deliveries; {sender.stats.summary()}; "
        f"{len(messages)} replies in {time.monotonic() - started:.1f} s"
    )
    passed = lost == 0 and doubled == 0 and not sender.stats.gave_up
    record_scenario("duplicates", messages=n, lost=lost, doubled=doubled, passed=passed,
                    detail=detail)
    assert not sender.stats.gave_up, detail
    assert sender.stats.statuses["200"] == 3 * n, detail
    assert lost == 0, f"{lost} lost: {detail}"
    assert doubled == 0, f"{doubled} doubled: {detail}"
    assert set(per_customer) == set(phones)
