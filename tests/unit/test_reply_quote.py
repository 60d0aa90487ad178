"""Issue 14 item 8: replies quote the customer's message where it helps, and inbound messages
are marked read — the real WhatsApp adapter against the sandbox Graph API.

Rule: a reply quotes the message it answers when the customer sent several messages the bot has
not answered yet; a plain back-and-forth is not quoted; ``quote_replies: false`` switches it off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.channels.base import CustomerRef, InboundMessage
from telegram_bot.channel import TelegramChannel
from tests.botkit_support import Harness, make_harness
from whatsapp_bot.channel import WhatsAppChannel

PHONE = "+15550100001"
TO = "15550100001"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(tmp_path):
        yield harness


def text(mid: str, body: str) -> InboundMessage:
    return InboundMessage(mid, CustomerRef(phone=PHONE), text=body)


async def sent_payloads(h: Harness) -> list[dict[str, Any]]:
    return [m["payload"] for m in await h.sent(TO)]


async def test_one_of_several_unanswered_messages_is_quoted(h: Harness) -> None:
    h.orch.llm_answer = "Here is the answer."
    # the customer writes twice before the bot answers
    h.ctx.accept_inbound(text("wamid.q1", "zxqv how much is the basic plan?"))
    h.ctx.accept_inbound(text("wamid.q2", "zxqv and do you deliver?"))
    await h.settle()
    payloads = await sent_payloads(h)
    assert len(payloads) == 2
    # the first answer shows which message it is for; the second answers the latest, so the
    # conversation reads plainly without a quote
    assert payloads[0]["context"] == {"message_id": "wamid.q1"}
    assert "context" not in payloads[1]
    out = h.ctx.store.conn.execute("SELECT reply_to FROM outbox ORDER BY id").fetchall()
    assert [r[0] for r in out] == ["wamid.q1", None]


async def test_a_plain_back_and_forth_is_not_quoted(h: Harness) -> None:
    h.orch.llm_answer = "Sure."
    for n in range(3):
        h.ctx.accept_inbound(text(f"wamid.p{n}", f"zxqv question {n}"))
        await h.settle()
    payloads = await sent_payloads(h)
    assert len(payloads) == 3
    assert all("context" not in p for p in payloads), payloads


async def test_the_switch_turns_quoting_off(h: Harness) -> None:
    h.ctx.config["quote_replies"] = False
    h.orch.llm_answer = "Here is the answer."
    h.ctx.accept_inbound(text("wamid.s1", "zxqv first"))
    h.ctx.accept_inbound(text("wamid.s2", "zxqv second"))
    await h.settle()
    payloads = await sent_payloads(h)
    assert len(payloads) == 2
    assert all("context" not in p for p in payloads), payloads


async def test_an_earlier_message_left_without_answer_counts(h: Harness) -> None:
    h.orch.llm_answer = "Answer."
    h.ctx.accept_inbound(text("wamid.e1", "zxqv first"))
    await h.settle()
    # the customer's next message gets no reply (it is rate limited, say): simulate by
    # recording an inbox row that is finished without an outbox row
    row_id = h.ctx.store.inbox_insert(
        text("wamid.e2", "zxqv unanswered"), customer=PHONE, now=h.clock()
    )
    assert row_id is not None
    h.ctx.store.inbox_finish(row_id, note="no reply", now=h.clock())
    h.ctx.accept_inbound(text("wamid.e3", "zxqv hello again?"))
    await h.settle()
    payloads = await sent_payloads(h)
    assert "context" not in payloads[0]
    assert payloads[-1]["context"] == {"message_id": "wamid.e3"}


async def test_the_sandbox_refuses_a_malformed_context(h: Harness) -> None:
    url = f"{h.sandbox_url}/graph/v21.0/106540352242922/messages"
    body = {
        "messaging_product": "whatsapp",
        "to": TO,
        "type": "text",
        "text": {"body": "hi"},
        "context": {"message_id": ""},
    }
    headers = {"Authorization": "Bearer EAAG-test-token"}
    async with h.http.post(url, json=body, headers=headers) as r:
        assert r.status == 400, await r.text()
        assert "context" in (await r.json())["error"]["error_data"]["details"]
    body["context"] = {"message_id": "wamid.ok"}
    async with h.http.post(url, json=body, headers=headers) as r:
        assert r.status == 200, await r.text()
    assert (await sent_payloads(h))[-1]["context"] == {"message_id": "wamid.ok"}


async def test_incoming_messages_are_marked_read(tmp_path: Path) -> None:
    async for h in make_harness(tmp_path, wa_mark_read=True):
        h.ctx.accept_inbound(text("wamid.r1", "zxqv are you there?"))
        await h.settle()
        async with h.http.get(
            f"{h.sandbox_url}/_sandbox/requests", params={"provider": "graph"}
        ) as r:
            requests = (await r.json())["requests"]
        reads = [q["json"] for q in requests if (q.get("json") or {}).get("status") == "read"]
        assert reads == [
            {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.r1"}
        ]


def test_quote_ids_per_channel() -> None:
    wa = WhatsAppChannel()
    assert wa.quote_id(text("wamid.x", "hi")) == "wamid.x"
    assert wa.quote_id(text("sim.abc", "hi")) is None  # simulated: Meta does not know it
    tg = TelegramChannel()
    customer = CustomerRef(telegram_id="42")
    msg = InboundMessage("update:7", customer, text="hi", raw={"message_id": 315})
    assert tg.quote_id(msg) == "315"
    press = InboundMessage("update:8", customer, kind="button", raw={"message_id": 316})
    assert tg.quote_id(press) is None
    assert tg.quote_id(InboundMessage("update:9", customer, text="hi")) is None


async def test_telegram_reply_quotes_through_reply_parameters(tmp_path: Path) -> None:
    import aiohttp

    from shared.channels.base import TextReply
    from shared.sandbox.server import Sandbox
    from telegram_bot.adapter import TelegramAdapter

    token = "123456:sandbox-quote-token"
    async with Sandbox(port=0) as sandbox, aiohttp.ClientSession() as http:
        adapter = TelegramAdapter(http, token=token, base_url=sandbox.telegram_url)
        customer = CustomerRef(telegram_id="4242")
        await adapter.send(customer, TextReply("first part answer"), reply_to="315")
        await adapter.send(customer, TextReply("plain"))
        quoted, plain = sandbox.state.find_messages(provider="telegram", to="4242")
        assert quoted.payload["reply_parameters"]["message_id"] == 315
        assert "reply_parameters" not in plain.payload
        # the sandbox refuses what Telegram refuses
        url = f"{sandbox.telegram_url}/bot{token}/sendMessage"
        bad = {"chat_id": 4242, "text": "x", "reply_parameters": {"message_id": "abc"}}
        async with http.post(url, json=bad) as r:
            assert r.status == 400
            assert "replied" in (await r.json())["description"]
        good = {"chat_id": 4242, "text": "x", "reply_parameters": {"message_id": 315}}
        async with http.post(url, json=good) as r:
            assert r.status == 200
            assert (await r.json())["result"]["reply_to_message"]["message_id"] == 315
