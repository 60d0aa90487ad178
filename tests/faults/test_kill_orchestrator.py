"""``kill -9`` of the orchestrator during load: bots keep acknowledging webhooks (no delivery is
refused or retried), every message still gets exactly one reply, and the orchestrator adopts the
bot when it is back.

What replies need the orchestrator: free text goes to ``POST /internal/llm/reply``. A bot that
cannot reach the orchestrator keeps acknowledging and storing messages, and holds the replies that
need it (in each customer's order) until it is back: customers get the real answer, late, never the
fallback text (which is for an LLM that has no answer, or an outage of more than 10 minutes).
"""

from __future__ import annotations

import asyncio
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

FALLBACK = "Thanks! A person will answer you here soon (fault suite fallback)."


def test_kill9_orchestrator_under_load(orch: OrchestratorProcess, sandbox: SandboxProcess) -> None:
    n = sized(150, 1000)
    spread_s = sized(6, 12)
    sandbox.reset()
    bot = start_bot(orch, sandbox, "Orphan Bot", fallback_text=FALLBACK)
    bot_pid = int(bot.status()["pid"])
    phones = [customer_phone(3, i) for i in range(n)]
    outage: dict[str, float] = {}

    async def chaos(sender: MetaSender) -> None:
        while len(sender.stats.ok_at) < n // 3:  # noqa: ASYNC110 - a counter, no event
            await asyncio.sleep(0.01)
        orch.kill9()
        outage["start"] = time.monotonic()
        await asyncio.sleep(spread_s / 3)  # a third of the load arrives with no orchestrator
        outage["end"] = time.monotonic()
        await asyncio.to_thread(orch.start)
        outage["back_wall"] = time.time()

    async def run() -> MetaSender:
        async with MetaSender(f"{bot.url}/webhook", concurrency=32) as sender:
            jobs = [
                sender.deliver(
                    inbound_payload(phone, f"wamid.orch.{i:05d}", f"can I pay by card {i}?",
                                    bot.phone_number_id),
                    f"wamid.orch.{i:05d}",
                    delay_s=spread_s * i / n,
                )
                for i, phone in enumerate(phones)
            ]
            await asyncio.gather(chaos(sender), *jobs)
            return sender

    started = time.monotonic()
    sender = asyncio.run(run())
    acked_in_outage = sum(outage["start"] <= t <= outage["end"] for t in sender.stats.ok_at)
    expected = dict.fromkeys(phones, 1)
    messages = wait_replies(sandbox, bot, expected, timeout=sized(60, 180), settle_s=2)
    lost, doubled, _ = count_replies(messages, expected)
    st = orch.wait_state("whatsapp", bot.id, "running")
    fallbacks = sum(m.get("text") == FALLBACK for m in messages)
    # Messages that arrived well inside the outage were answered without the orchestrator.
    reply_of = {m["to"]: m.get("text") for m in messages}
    in_outage = [
        phones[i] for i in range(n)
        if outage["start"] + 0.3 <= sender.stats.ok_by_id[f"wamid.orch.{i:05d}"]
        <= outage["end"] - 0.3
    ]
    fallback_in_outage = [p for p in in_outage if reply_of.get(p) == FALLBACK]
    sent_at = {m["to"]: m["ts"] for m in messages}
    early = [p for p in in_outage if sent_at.get(p, 0) < outage["back_wall"] - 0.5]
    detail = (
        f"{n} messages, orchestrator down {outage['end'] - outage['start']:.1f} s; "
        f"{acked_in_outage} webhooks acknowledged 200 while it was down; "
        f"{sender.stats.summary()}; {fallbacks} fallback replies; bot adopted "
        f"(pid {'same' if st['pid'] == bot_pid else 'changed'}); {bot.db_summary()}; "
        f"{len(messages)} replies in {time.monotonic() - started:.1f} s"
    )
    passed = lost == 0 and doubled == 0 and sender.stats.statuses["200"] == sender.stats.attempts
    record_scenario("kill -9 orchestrator", messages=n, lost=lost, doubled=doubled,
                    passed=passed, detail=detail)
    assert acked_in_outage >= n // 10, detail
    # Not one delivery was refused or had to be retried: the bot never needed the orchestrator.
    assert sender.stats.statuses["200"] == sender.stats.attempts == n, detail
    assert st["pid"] == bot_pid, f"the bot was restarted instead of adopted: {st}"
    assert lost == 0, f"{lost} lost: {detail}"
    assert doubled == 0, f"{doubled} doubled: {detail}"
    assert in_outage, detail
    assert fallbacks == 0, f"{fallbacks} fallback replies: {detail}"
    assert not fallback_in_outage, detail
    # replies that needed the orchestrator went out once it was back, not before
    assert not early, f"{len(early)} answered while the orchestrator was down: {detail}"
