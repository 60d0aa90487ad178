"""The provider answers 30 % of sends with 429 (``Retry-After``) or 500: every reply is delivered
once, and no retry after a 429 comes earlier than the provider asked."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

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

RETRY_AFTER_S = 2


def early_retries(requests: list[dict[str, Any]], sender: str) -> tuple[int, int, list[str]]:
    """Check the request log: after a 429 to a recipient, the next send to that recipient must
    not start before ``Retry-After`` seconds passed.

    Returns:
        ``(answered_429, answered_500, violations)``.
    """
    by_recipient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in requests:
        body = r.get("json") or {}
        if f"/{sender}/messages" not in r["path"] or not isinstance(body, dict):
            continue
        if body.get("status") == "read":  # read receipts are best-effort side calls
            continue
        by_recipient[str(body.get("to") or body.get("recipient"))].append(r)
    n429 = n500 = 0
    bad = []
    for to, reqs in by_recipient.items():
        reqs.sort(key=lambda r: r["seq"])
        for prev, nxt in zip(reqs, reqs[1:], strict=False):
            if prev["status"] == 429:
                waited = nxt["ts"] - prev["ts"]
                if waited < RETRY_AFTER_S:
                    bad.append(f"{to}: retried {waited:.2f} s after a 429")
        n429 += sum(r["status"] == 429 for r in reqs)
        n500 += sum(r["status"] == 500 for r in reqs)
    return n429, n500, bad


def test_429_and_500_on_30_percent_of_sends(
    orch: OrchestratorProcess, sandbox: SandboxProcess
) -> None:
    n = sized(60, 500)
    sandbox.reset()
    # 15 % of requests get a 429, 15/85 of the rest a 500: 30 % in all.
    sandbox.add_fault(provider="graph", mode="429", rate=0.15, retry_after=RETRY_AFTER_S,
                      path_contains="/messages", seed=3)
    sandbox.add_fault(provider="graph", mode="500", rate=0.15 / 0.85,
                      path_contains="/messages", seed=4)
    bot = start_bot(orch, sandbox, "Flaky Provider Bot")
    phones = [customer_phone(4, i) for i in range(n)]

    async def run() -> MetaSender:
        async with MetaSender(f"{bot.url}/webhook", concurrency=32) as sender:
            await asyncio.gather(*(
                sender.deliver(
                    inbound_payload(phone, f"wamid.flaky.{i:05d}", f"do you ship to {i}?",
                                    bot.phone_number_id),
                    f"wamid.flaky.{i:05d}",
                    delay_s=2.0 * i / n,
                )
                for i, phone in enumerate(phones)
            ))
            return sender

    started = time.monotonic()
    try:
        sender = asyncio.run(run())
        expected = dict.fromkeys(phones, 1)
        # Eight attempts with exponential back-off: a very unlucky reply needs a minute or two.
        messages = wait_replies(sandbox, bot, expected, timeout=sized(150, 280), settle_s=2)
    finally:
        sandbox.clear_faults()
    lost, doubled, _ = count_replies(messages, expected)
    n429, n500, early = early_retries(sandbox.requests(), bot.phone_number_id)
    sends = sum(1 for r in sandbox.requests() if f"/{bot.phone_number_id}/messages" in r["path"])
    detail = (
        f"{n} messages; {sends} Graph requests, {n429} answered 429 (Retry-After "
        f"{RETRY_AFTER_S} s), {n500} answered 500; {len(early)} retries earlier than asked; "
        f"{bot.db_summary()}; {len(messages)} replies in {time.monotonic() - started:.1f} s"
    )
    passed = lost == 0 and doubled == 0 and not early and not sender.stats.gave_up
    record_scenario("provider 429/500 on 30% of sends", messages=n, lost=lost, doubled=doubled,
                    passed=passed, detail=detail)
    assert n429 > 0, detail
    assert n500 > 0, detail
    assert not early, f"{early[:5]}: {detail}"
    assert lost == 0, f"{lost} lost: {detail}"
    assert doubled == 0, f"{doubled} doubled: {detail}"
