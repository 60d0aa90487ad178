"""The bot runtime's inbox → routing → outbox pipeline against the real sandbox Graph API."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from shared.botkit.outbox import backoff_delay
from shared.channels.base import Button, ButtonsReply, CustomerRef, InboundMessage, StatusUpdate
from tests.botkit_support import Harness, make_harness

PHONE = "+15550100001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

TO = "15550100001"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(tmp_path):
        yield harness


def text(
    mid: str,
    body: str,
    phone: str | None = PHONE,
    bsuid: str | None = None,
    payload: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        mid,
        CustomerRef(phone=phone, bsuid=bsuid),
        text=body,
        kind="button" if payload else "text",
        payload=payload,
    )


async def test_free_text_gets_fallback_when_llm_is_missing(h: Harness) -> None:
    assert h.ctx.accept_inbound(text("wamid.1", "zxqv quantum flux?")) is not None
    await h.settle()
    sent = await h.sent(TO)
    assert [m["text"] for m in sent] == ["FALLBACK: a person will answer soon."]
    assert len(h.orch.llm_requests) == 1
    assert h.orch.llm_requests[0]["text"] == "zxqv quantum flux?"
    out = [m for m in h.ctx.store.messages() if m["direction"] == "out"]
    assert out[0]["provider_message_id"] == sent[0]["message_id"]
    assert out[0]["status"] == "sent"


async def test_reply_waits_for_an_unreachable_orchestrator_in_order(h: Harness) -> None:
    assert h.ctx.client is not None
    real_url = h.ctx.client.base_url
    h.ctx.client.base_url = f"http://127.0.0.1:{free_port()}"  # nobody listens: "down"
    h.orch.llm_answer = "The real answer."
    h.ctx.accept_inbound(text("wamid.o1", "zxqv first while down"))
    h.ctx.accept_inbound(text("wamid.o2", "zxqv second while down"))
    await asyncio.sleep(0.8)  # several retries happen meanwhile
    assert await h.sent(TO) == []  # no fallback sent: the orchestrator is only unreachable
    assert h.orch.llm_requests == []
    h.ctx.client.base_url = real_url  # it is back
    await h.settle()
    assert [m["text"] for m in await h.sent(TO)] == ["The real answer."] * 2
    assert [r["text"] for r in h.orch.llm_requests] == [
        "zxqv first while down", "zxqv second while down"]  # the customer's order is kept


async def test_reply_waits_while_the_orchestrator_warms_up_its_models(h: Harness) -> None:
    # 503 + Retry-After: the embedding model is still loading after a restart. Not "no
    # answer" (a bare 503 is: the fallback), so the customer gets the real answer once warm.
    h.orch.llm_warming = 2
    h.orch.llm_answer = "We open at 8."
    h.ctx.accept_inbound(text("wamid.w1", "zxqv when do you open?"))
    await h.settle()
    assert h.orch.llm_warming == 0
    assert [m["text"] for m in await h.sent(TO)] == ["We open at 8."]


async def test_a_bare_503_still_sends_the_fallback(h: Harness) -> None:
    h.orch.llm_status = 503  # the LLM backend failed for good: no Retry-After
    h.ctx.accept_inbound(text("wamid.f1", "zxqv anyone?"))
    await h.settle()
    assert [m["text"] for m in await h.sent(TO)] == ["FALLBACK: a person will answer soon."]


async def test_unreachable_orchestrator_for_too_long_sends_the_fallback(h: Harness) -> None:
    assert h.ctx.client is not None
    h.ctx.client.base_url = f"http://127.0.0.1:{free_port()}"
    h.ctx.config["orchestrator_wait_s"] = 60
    h.ctx.accept_inbound(text("wamid.late", "zxqv anyone there?"))
    await asyncio.sleep(0.3)
    assert await h.sent(TO) == []
    h.clock.advance(seconds=61)
    await h.settle()
    assert [m["text"] for m in await h.sent(TO)] == ["FALLBACK: a person will answer soon."]


async def test_llm_answer_is_sent_with_history(h: Harness) -> None:
    h.orch.llm_answer = "The *basic* package costs $99."
    h.ctx.accept_inbound(text("wamid.1", "zxqv first question"))
    await h.settle()
    h.ctx.accept_inbound(text("wamid.2", "zxqv and then what"))
    await h.settle()
    assert [m["text"] for m in await h.sent(TO)][-1] == "The *basic* package costs $99."
    history = h.orch.llm_requests[-1]["history"]
    assert history[0] == {"role": "user", "text": "zxqv first question"}
    assert history[1]["role"] == "assistant"
    assert h.orch.llm_requests[-1]["customer"] == PHONE


async def test_duplicate_delivery_gets_one_reply(h: Harness) -> None:
    assert h.ctx.accept_inbound(text("wamid.dup", "zxqv hello?")) is not None
    assert h.ctx.accept_inbound(text("wamid.dup", "zxqv hello?")) is None
    await h.settle()
    assert len(await h.sent(TO)) == 1


async def test_blocked_number_in_any_format_gets_nothing(h: Harness) -> None:
    h.ctx.config["blocked_phones"] = ["+1 (555) 010-0001"]
    h.ctx.accept_inbound(text("wamid.b", "zxqv hi"))
    await h.settle()
    assert await h.sent() == []
    assert h.ctx.store.inbox_state(1) == ("done", "blocked")


async def test_allowed_list_admits_only_listed_customers_including_bsuids(h: Harness) -> None:
    h.ctx.config["allowed_phones"] = "15550100002, BR.1502576394655843"
    h.ctx.accept_inbound(text("wamid.x", "zxqv hi"))  # +15550100001: not listed
    h.ctx.accept_inbound(text("wamid.y", "zxqv hi", phone=None, bsuid="BR.1502576394655843"))
    await h.settle()
    sent = await h.sent()
    assert [m["to"] for m in sent] == ["BR.1502576394655843"]
    request = sent[0]["payload"]
    assert request["recipient"] == "BR.1502576394655843"
    assert "to" not in request


async def test_rate_limit_notice_once_then_silence_until_window_moves(h: Harness) -> None:
    h.ctx.config.update(rate_limit_count=2, rate_limit_hours=1, rate_limit_text="SLOW DOWN")
    for n in range(4):
        h.ctx.accept_inbound(text(f"wamid.r{n}", f"zxqv message {n}"))
        await h.settle()
        h.clock.advance(seconds=1)
    texts = [m["text"] for m in await h.sent(TO)]
    assert texts == ["FALLBACK: a person will answer soon."] * 2 + ["SLOW DOWN"]
    h.clock.advance(hours=1, minutes=1)
    h.ctx.accept_inbound(text("wamid.r9", "zxqv back again"))
    await h.settle()
    assert [m["text"] for m in await h.sent(TO)][-1] == "FALLBACK: a person will answer soon."


async def test_funnel_answers_do_not_count_toward_the_rate_limit(h: Harness) -> None:
    h.ctx.config.update(rate_limit_count=2, rate_limit_hours=1, rate_limit_text="SLOW DOWN")
    h.ctx.accept_inbound(text("wamid.f0", "hi"))  # counted: 1
    await h.settle()
    h.ctx.accept_inbound(text("wamid.f1", "1"))  # a typed number picks an offered option
    await h.settle()
    h.ctx.accept_inbound(text("wamid.f2", "2"))  # and again, on the next menu
    await h.settle()
    texts = [m["text"] for m in await h.sent(TO)]
    assert "SLOW DOWN" not in texts
    assert len(texts) == 3
    h.ctx.accept_inbound(text("wamid.f3", "zxqv free text"))  # counted: 2
    await h.settle()
    h.ctx.accept_inbound(text("wamid.f4", "zxqv more free text"))  # counted: 3 > 2
    await h.settle()
    assert [m["text"] for m in await h.sent(TO)][-1] == "SLOW DOWN"


async def test_free_form_outside_24h_is_not_sent_without_template(h: Harness) -> None:
    h.ctx.accept_inbound(text("wamid.w", "zxqv hi"))
    await h.process_inbox()
    h.clock.advance(hours=25)
    await h.flush_outbox()
    assert await h.sent() == []
    (row,) = h.ctx.store.outbox_all()
    assert row.state == "failed"
    assert row.last_error
    assert "24-hour" in row.last_error
    assert "wa_template_name" in row.last_error


async def test_outside_24h_sends_configured_template(h: Harness) -> None:
    h.ctx.config.update(wa_template_name="follow_up", wa_template_language="ru")
    h.ctx.accept_inbound(text("wamid.w", "zxqv hi"))
    await h.process_inbox()
    h.clock.advance(hours=24, seconds=1)
    await h.flush_outbox()
    (sent,) = await h.sent(TO)
    assert sent["type"] == "template"
    assert sent["payload"]["template"]["name"] == "follow_up"
    assert sent["payload"]["template"]["language"] == {"code": "ru"}


async def test_inside_24h_sends_free_form(h: Harness) -> None:
    h.ctx.config.update(wa_template_name="follow_up")
    h.ctx.accept_inbound(text("wamid.w", "zxqv hi"))
    await h.process_inbox()
    h.clock.advance(hours=23, minutes=59)
    await h.flush_outbox()
    assert [m["type"] for m in await h.sent(TO)] == ["text"]


async def test_429_retry_after_is_honoured(h: Harness) -> None:
    await h.fault(mode="429", retry_after=7, count=1)
    h.ctx.accept_inbound(text("wamid.q", "zxqv hi"))
    await h.settle()
    (row,) = h.ctx.store.outbox_all()
    assert row.state == "pending"
    assert row.attempts == 1
    wait = (row.next_attempt_at - h.clock()).total_seconds()
    assert 7 <= wait <= 7.8
    assert row.last_error
    assert "429" in row.last_error
    h.clock.advance(seconds=6)
    await h.flush_outbox()
    assert await h.sent(TO) == []  # not before retry_after
    h.clock.advance(seconds=2)
    await h.flush_outbox()
    assert len(await h.sent(TO)) == 1
    assert h.ctx.store.outbox_get(row.id).state == "sent"  # type: ignore[union-attr]


async def test_5xx_retries_with_backoff_then_sends_once(h: Harness) -> None:
    await h.fault(mode="500", count=2)
    h.ctx.accept_inbound(text("wamid.s", "zxqv hi"))
    await h.settle()
    delays = []
    for _ in range(3):
        row = h.ctx.store.outbox_all()[0]
        if row.state != "pending":
            break
        delay = (row.next_attempt_at - h.clock()).total_seconds()
        delays.append(delay)
        h.clock.advance(seconds=delay + 0.01)
        await h.flush_outbox()
    assert len(delays) == 2
    assert delays[1] > 0
    assert h.ctx.store.outbox_all()[0].state == "sent"
    assert len(await h.sent(TO)) == 1


async def test_gives_up_after_max_attempts(h: Harness) -> None:
    assert h.ctx.outbox is not None
    h.ctx.outbox.max_attempts = 3
    await h.fault(mode="500")
    h.ctx.accept_inbound(text("wamid.g", "zxqv hi"))
    await h.settle()
    for _ in range(5):
        h.clock.advance(minutes=10)
        await h.flush_outbox()
    (row,) = h.ctx.store.outbox_all()
    assert row.state == "failed"
    assert row.attempts == 3
    assert row.last_error
    assert "gave up after 3 attempts" in row.last_error


async def test_bsuid_not_supported_is_permanent_and_recorded(h: Harness) -> None:
    await h.fault(mode="error", error_code=131062, count=1)
    h.ctx.accept_inbound(text("wamid.u", "zxqv hi", phone=None, bsuid="US.1234"))
    await h.settle()
    (row,) = h.ctx.store.outbox_all()
    assert row.state == "failed"
    assert row.error_code == 131062
    assert row.attempts == 1
    assert row.last_error
    assert "BSUID not supported" in row.last_error
    failed = [m for m in h.ctx.store.messages() if m["status"] == "failed"]
    assert failed
    assert failed[0]["error_code"] == 131062


async def test_more_button_brings_the_next_page(h: Harness) -> None:
    buttons = [Button(f"faq:q{i}", f"Question {i}") for i in range(5)]
    user = h.ctx.store.resolve_user(CustomerRef(phone=PHONE), now=h.clock())
    h.ctx.store.touch_inbound(user.id, now=h.clock())
    h.ctx.enqueue_reply(user.ref(), ButtonsReply("FAQ", buttons), user_id=user.id)
    await h.flush_outbox()
    (first,) = await h.sent(TO)
    ids = [b["reply"]["id"] for b in first["payload"]["interactive"]["action"]["buttons"]]
    assert ids[:2] == ["faq:q0", "faq:q1"]
    assert ids[2].startswith("nav:more:")
    h.ctx.accept_inbound(text("wamid.more", "More", payload=ids[2]))
    await h.settle()
    second = (await h.sent(TO))[-1]
    ids2 = [b["reply"]["id"] for b in second["payload"]["interactive"]["action"]["buttons"]]
    assert ids2 == ["faq:q2", "faq:q3", "faq:q4"]


async def test_status_webhook_updates_sent_message(h: Harness) -> None:
    h.ctx.accept_inbound(text("wamid.1", "zxqv hi"))
    await h.settle()
    (sent,) = await h.sent(TO)
    wamid = sent["message_id"]
    assert h.ctx.apply_status(StatusUpdate(wamid, "read")) is True
    assert h.ctx.apply_status(StatusUpdate(wamid, "delivered")) is False
    assert h.ctx.store.message_by_provider_id(wamid)["status"] == "read"  # type: ignore[index]


async def test_voice_note_is_recorded_and_answered_with_fallback(h: Harness) -> None:
    voice = InboundMessage("wamid.v", CustomerRef(phone=PHONE), kind="audio", media_id="123")
    h.ctx.accept_inbound(voice)
    await h.settle()
    assert [m["text"] for m in await h.sent(TO)] == ["FALLBACK: a person will answer soon."]
    inbound = [m for m in h.ctx.store.messages() if m["direction"] == "in"]
    assert inbound[0]["type"] == "audio"
    assert inbound[0]["text"] == "[voice]"


async def test_greeting_goes_through_the_funnel(h: Harness) -> None:
    h.ctx.accept_inbound(text("wamid.hi", "hello"))
    await h.settle()
    (sent,) = await h.sent(TO)
    assert sent["type"] == "interactive"  # welcome buttons from the default funnel
    assert h.orch.llm_requests == []


async def test_inbox_row_interrupted_before_commit_is_replayed_once(h: Harness) -> None:
    assert h.ctx.inbox is not None
    inbox_id = h.ctx.store.inbox_insert(text("wamid.c", "zxqv crash"), customer=PHONE)
    assert inbox_id is not None
    h.ctx.store.inbox_mark_processing(inbox_id)  # as if the process died mid-handling
    assert h.ctx.inbox.replay() == 1
    await h.settle()
    assert h.ctx.inbox.replay() == 0
    assert len(await h.sent(TO)) == 1


def test_backoff_grows_caps_and_honours_retry_after() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, base_s=1, cap_s=30, rng=rng) for n in range(1, 9)]
    for n, d in enumerate(delays, 1):
        full = min(30, 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert max(delays) <= 30
    assert 12 <= backoff_delay(1, retry_after=12, rng=rng) <= 13.2
    assert timedelta(seconds=backoff_delay(3, base_s=1)) <= timedelta(seconds=4)


async def test_first_message_greets_the_customer_by_the_provider_profile_name(h: Harness) -> None:
    # A new customer: nothing stored yet, the provider sends the name with the message.
    first = InboundMessage(
        "wamid.name", CustomerRef(phone=PHONE, profile_name="Rosie"), text="hello", kind="text"
    )
    h.ctx.accept_inbound(first)
    await h.settle()
    (sent,) = await h.sent(TO)
    greeting = sent["text"].split("\n")[0]
    assert "Rosie" in greeting  # was "Hello, there!": the new customer's state had no name
    assert "there" not in greeting
