"""Human handoff in the running bot (issue 13): triggers, the bot's silence while a person owns
the conversation, one acknowledgement per handover, the desk control routes, timeouts on the
durable scheduler with a test clock. Real inbox/outbox against the sandbox Graph API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from shared.botkit import build_app
from shared.botkit.handoff import DEFAULT_ACK_TEXT, DEFAULT_EXPIRED_TEXT
from shared.channels.base import CustomerRef, InboundMessage
from shared.store import handovers as ho
from shared.tokens import mint_control_token
from tests.botkit_support import Harness, make_harness

PHONE = "+15550100001"
TO = "15550100001"
KEY = "ab" * 32
_seq = iter(range(1, 10_000))


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(tmp_path, control_key=KEY):
        yield harness


@pytest.fixture
async def client(h: Harness) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_app(h.ctx))) as c:
        yield c


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_control_token(KEY, 'support-bot')}"}


async def say(h: Harness, body: str, *, payload: str | None = None, phone: str = PHONE) -> None:
    message = InboundMessage(
        f"wamid.{next(_seq)}",
        CustomerRef(phone=phone),
        text=body,
        kind="button" if payload else "text",
        payload=payload,
    )
    assert h.ctx.accept_inbound(message) is not None
    await h.settle()


async def texts(h: Harness, to: str = TO) -> list[str]:
    return [m["text"] for m in await h.sent(to)]


def only_handover(h: Harness) -> ho.Handover:
    rows = ho.list_handovers(h.ctx.store)
    assert len(rows) == 1
    return rows[0]


def consistent(h: Harness) -> None:
    assert ho.desynced_customers(h.ctx.store.conn) == []


async def test_asking_for_a_person_opens_a_handover_and_silences_the_bot(h: Harness) -> None:
    h.orch.llm_answer = "LLM ANSWER"
    await say(h, "I want to talk to a person")
    handover = only_handover(h)
    assert handover.status == "pending"
    assert handover.reason == "ask_for_person"
    assert handover.question == "I want to talk to a person"
    assert ho.ownership(h.ctx.store, handover.user_id) == ho.PENDING
    assert await texts(h) == [DEFAULT_ACK_TEXT]
    # While pending: recorded, nothing sent (no second acknowledgement, no funnel, no LLM).
    await say(h, "zxqv hello? anyone?")
    await say(h, "hi")
    assert await texts(h) == [DEFAULT_ACK_TEXT]
    assert h.orch.llm_requests == []
    inbound = [m["text"] for m in h.ctx.store.messages() if m["direction"] == "in"]
    assert inbound[-2:] == ["zxqv hello? anyone?", "hi"]
    consistent(h)


async def test_russian_request_and_switched_off_trigger(h: Harness) -> None:
    await say(h, "Позовите, пожалуйста, оператора")
    assert only_handover(h).reason == "ask_for_person"
    h.ctx.apply_config({**h.ctx.config, "handoff": {"triggers": {"ask_for_person": False}}})
    await say(h, "I want to talk to a person", phone="+15550100002")
    assert len(ho.list_handovers(h.ctx.store)) == 1  # the second customer got the bot
    assert await texts(h, "15550100002") == ["FALLBACK: a person will answer soon."]


async def test_ack_text_is_configurable_and_names_business_hours(h: Harness) -> None:
    # Saturday noon UTC; the shop works Mon-Fri 09-18 Berlin time.
    h.clock.now = h.clock.now.replace(year=2026, month=3, day=7, hour=12, minute=0)
    hours = {
        "timezone": "Europe/Berlin",
        "days": [0, 1, 2, 3, 4],
        "start": "09:00",
        "end": "18:00",
    }
    h.ctx.apply_config(
        {**h.ctx.config, "handoff": {"ack_text": "Ein Mensch kommt.", "hours": hours}}
    )
    await say(h, "operator")
    assert await texts(h) == [
        "Ein Mensch kommt. Our working hours begin Mon 09:00 (Europe/Berlin)."
    ]


async def test_frustration_same_question_three_times(h: Harness) -> None:
    for _ in range(2):
        await say(h, "zxqv where is my order")
    assert ho.list_handovers(h.ctx.store) == []
    await say(h, "zxqv where is my order?")
    assert only_handover(h).reason == "frustration"
    assert (await texts(h))[-1] == DEFAULT_ACK_TEXT


async def test_frustration_repeated_not_helpful(h: Harness) -> None:
    await say(h, "this is useless")
    assert ho.list_handovers(h.ctx.store) == []
    await say(h, "бесполезно")
    assert only_handover(h).reason == "frustration"


async def test_llm_escalate_opens_a_handover_with_one_ack(h: Harness) -> None:
    h.orch.llm_answer = "A colleague will get back to you shortly."
    h.orch.llm_escalate = True
    await say(h, "zxqv can you ship to Mars")
    assert only_handover(h).reason == "llm_escalate"
    assert await texts(h) == [DEFAULT_ACK_TEXT]
    h.orch.llm_escalate = False
    h.ctx.apply_config({**h.ctx.config, "handoff": {"triggers": {"llm_escalate": False}}})
    h.orch.llm_escalate = True
    await say(h, "zxqv can you ship to Mars", phone="+15550100002")
    assert await texts(h, "15550100002") == ["A colleague will get back to you shortly."]


async def test_manager_button_opens_a_handover(h: Harness) -> None:
    await say(h, "", payload="sales:manager")
    handover = only_handover(h)
    assert handover.reason == "manager_button"
    assert (await texts(h))[-1] == DEFAULT_ACK_TEXT


async def test_desk_take_reply_resolve_through_the_control_api(
    h: Harness, client: TestClient
) -> None:
    await say(h, "I want to talk to a person")
    handover = only_handover(h)
    url = f"/control/handovers/{handover.id}"
    # Abuse: no token, bad id, unknown id, no assignee, empty text, not JSON.
    assert (await client.post(f"{url}/take", json={"assignee": "a"})).status == 401
    assert (
        await client.post("/control/handovers/x1/take", headers=auth(), json={"assignee": "a"})
    ).status == 404
    assert (
        await client.post("/control/handovers/999/take", headers=auth(), json={"assignee": "a"})
    ).status == 404
    assert (await client.post(f"{url}/take", headers=auth(), json={})).status == 422
    assert (
        await client.post(f"{url}/reply", headers=auth(), json={"assignee": "a", "text": " "})
    ).status == 422
    assert (await client.post(f"{url}/take", headers=auth(), data=b"nope")).status == 400
    assert ho.get(h.ctx.store, handover.id).status == "pending"  # type: ignore[union-attr]

    resp = await client.post(f"{url}/take", headers=auth(), json={"assignee": "alice"})
    assert resp.status == 200
    assert (await resp.json())["status"] == "active"
    assert ho.ownership(h.ctx.store, handover.user_id) == ho.HUMAN
    resp = await client.post(
        f"{url}/reply", headers=auth(), json={"assignee": "alice", "text": "Hi, Alice here."}
    )
    assert resp.status == 202
    await h.flush_outbox()
    await say(h, "zxqv thanks Alice")  # the bot stays silent
    assert await texts(h) == [DEFAULT_ACK_TEXT, "Hi, Alice here."]
    resp = await client.post(f"{url}/resolve", headers=auth(), json={"assignee": "alice"})
    assert resp.status == 200
    assert (await resp.json())["status"] == "resolved"
    again = await client.post(f"{url}/resolve", headers=auth(), json={"assignee": "alice"})
    assert again.status == 409
    late = await client.post(f"{url}/reply", headers=auth(), json={"assignee": "a", "text": "x"})
    assert late.status == 409
    await say(h, "zxqv hello bot")
    assert (await texts(h))[-1] == "FALLBACK: a person will answer soon."
    consistent(h)


async def test_operator_message_takes_the_conversation(h: Harness, client: TestClient) -> None:
    await say(h, "zxqv question one")
    resp = await client.post(
        "/control/send",
        headers=auth(),
        json={"to": PHONE, "text": "Operator here", "assignee": "bob"},
    )
    assert resp.status == 202
    handover = only_handover(h)
    assert (handover.status, handover.assignee, handover.reason) == (
        "active",
        "bob",
        "operator_message",
    )
    await h.flush_outbox()
    await say(h, "zxqv question two")
    assert await texts(h) == ["FALLBACK: a person will answer soon.", "Operator here"]
    # Without an assignee (an older orchestrator) nothing changes hands.
    resp = await client.post(
        "/control/send", headers=auth(), json={"to": "+15550100009", "text": "hello"}
    )
    assert resp.status == 202
    assert len(ho.list_handovers(h.ctx.store)) == 1


async def _run_due(h: Harness) -> int:
    assert h.ctx.scheduler is not None
    fired = await h.ctx.scheduler.run_due()
    await h.flush_outbox()
    return fired


async def test_pending_handover_renotifies_once_then_expires(h: Harness) -> None:
    h.ctx.apply_config(
        {**h.ctx.config, "handoff": {"renotify_minutes": 5, "pending_timeout_minutes": 20}}
    )
    await say(h, "operator please")
    handover = only_handover(h)
    h.clock.advance(minutes=4)
    await _run_due(h)
    assert ho.get(h.ctx.store, handover.id).renotified_at is None  # type: ignore[union-attr]
    h.clock.advance(minutes=2)
    await _run_due(h)
    renotified = ho.get(h.ctx.store, handover.id)
    assert renotified is not None
    assert renotified.renotified_at is not None
    assert renotified.status == "pending"
    events: list[dict[str, Any]] = h.ctx.store.events(handover.user_id)
    assert [e["type"] for e in events].count("handover_renotified") == 1
    h.clock.advance(minutes=15)
    await _run_due(h)
    expired = ho.get(h.ctx.store, handover.id)
    assert expired is not None
    assert expired.status == "expired"
    assert ho.ownership(h.ctx.store, handover.user_id) == ho.BOT
    assert await texts(h) == [DEFAULT_ACK_TEXT, DEFAULT_EXPIRED_TEXT]
    await say(h, "zxqv back to the bot")
    assert (await texts(h))[-1] == "FALLBACK: a person will answer soon."
    consistent(h)


async def test_a_taken_handover_does_not_expire(h: Harness) -> None:
    await say(h, "operator please")
    handover = only_handover(h)
    ho.take(h.ctx.store, handover.id, assignee="alice", now=h.clock())
    h.clock.advance(hours=5)
    await _run_due(h)
    assert ho.get(h.ctx.store, handover.id).status == "active"  # type: ignore[union-attr]
    assert await texts(h) == [DEFAULT_ACK_TEXT]


async def test_idle_conversation_closes_and_reopens_but_keeps_a_pending_handover(
    h: Harness,
) -> None:
    from shared.botkit.desk import close_idle

    await say(h, "zxqv hi there")
    await say(h, "operator", phone="+15550100002")
    h.clock.advance(days=2)
    assert close_idle(h.ctx) == 1
    states = dict(h.ctx.store.conn.execute("SELECT id, conversation FROM users").fetchall())
    assert sorted(states.values()) == ["closed", "open"]
    await say(h, "zxqv me again")
    states = dict(h.ctx.store.conn.execute("SELECT id, conversation FROM users").fetchall())
    assert set(states.values()) == {"open"}
    assert ho.list_handovers(h.ctx.store)[0].status == "pending"


def echo_payload(wamid: str, to: str, text: str) -> dict[str, Any]:
    """An ``smb_message_echoes`` webhook: the business wrote from the WhatsApp Business app."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "smb_message_echoes",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550009999",
                                "phone_number_id": "106540352242922",
                            },
                            "message_echoes": [
                                {
                                    "from": "15550009999",
                                    "to": to,
                                    "id": wamid,
                                    "timestamp": "1767000000",
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def test_parse_echoes_reads_the_recipient_and_text() -> None:
    from whatsapp_bot.parse import PayloadError, parse_echoes, parse_payload

    data = echo_payload("wamid.E1", "15550100001", "On my way!")
    (echo,) = parse_echoes(data)
    assert (echo.provider_message_id, echo.customer.phone, echo.text) == (
        "wamid.E1",
        "+15550100001",
        "On my way!",
    )
    assert parse_payload(data) == ([], [])  # not a customer message
    broken = echo_payload("", "15550100001", "x")
    with pytest.raises(PayloadError):
        parse_echoes(broken)


async def test_an_echo_from_the_business_phone_pauses_the_bot(
    h: Harness, client: TestClient
) -> None:
    import json

    from tests.botkit_support import APP_SECRET
    from whatsapp_bot.webhook import sign

    await say(h, "zxqv hello")
    raw = json.dumps(echo_payload("wamid.E2", "15550100001", "Hi, the owner here.")).encode()
    headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET), "Content-Type": "application/json"}
    for _ in range(2):  # a redelivery changes nothing
        resp = await client.post("/webhook", data=raw, headers=headers)
        assert resp.status == 200
    handover = only_handover(h)
    assert (handover.status, handover.reason, handover.assignee) == (
        "active",
        "message_echoes",
        "business phone",
    )
    outs = [m for m in h.ctx.store.messages() if m["provider_message_id"] == "wamid.E2"]
    assert [(m["direction"], m["text"]) for m in outs] == [("out", "Hi, the owner here.")]
    before = await texts(h)
    await say(h, "zxqv great, thanks")
    assert await texts(h) == before  # the bot stays silent
    consistent(h)
    # Switched off: echoes are recorded, the bot keeps answering.
    h.ctx.apply_config({**h.ctx.config, "handoff": {"triggers": {"message_echoes": False}}})
    raw = json.dumps(echo_payload("wamid.E3", "15550100002", "hello")).encode()
    headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET), "Content-Type": "application/json"}
    assert (await client.post("/webhook", data=raw, headers=headers)).status == 200
    assert len(ho.list_handovers(h.ctx.store)) == 1


async def test_a_request_the_orchestrator_recognised_is_an_ask_for_person(h: Harness) -> None:
    """The phrase list misses it; the orchestrator's embedding model does not."""
    h.orch.llm_answer = "A colleague will get back to you shortly."
    h.orch.llm_escalate = True
    h.orch.llm_reason = "ask_for_person"
    await say(h, "Is there somebody real I could chat with?")
    assert only_handover(h).reason == "ask_for_person"
    assert await texts(h) == [DEFAULT_ACK_TEXT]
    # With that trigger off (LLM escalation still on) it is not a handover.
    h.ctx.apply_config({**h.ctx.config, "handoff": {"triggers": {"ask_for_person": False}}})
    await say(h, "Is there somebody real I could chat with?", phone="+15550100002")
    assert len(ho.list_handovers(h.ctx.store)) == 1
    assert await texts(h, "15550100002") == ["A colleague will get back to you shortly."]


async def test_a_pending_handover_still_expires_after_the_bot_restarts(tmp_path: Path) -> None:
    """The timeouts are durable jobs: a bot stopped (or killed) with a pending handover expires
    it after the restart, with the same database."""
    async for first in make_harness(tmp_path, control_key=KEY):
        first.ctx.apply_config({**first.ctx.config, "handoff": {"pending_timeout_minutes": 20}})
        await say(first, "operator please")
        handover = only_handover(first)
        started = first.clock()
    async for second in make_harness(tmp_path, control_key=KEY):
        second.ctx.apply_config({**second.ctx.config, "handoff": {"pending_timeout_minutes": 20}})
        assert second.ctx.scheduler is not None
        second.ctx.scheduler.recover()
        second.clock.now = started + timedelta(minutes=25)
        await _run_due(second)
        expired = ho.get(second.ctx.store, handover.id)
        assert expired is not None
        assert expired.status == "expired"
        assert await texts(second) == [DEFAULT_EXPIRED_TEXT]
        consistent(second)
