"""Sending exactly once across crashes: part-level tracking, provider confirmations and the
confirmation hold, against the real sandbox Graph API (and the Twilio/Telegram pieces)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import MultiDict

from shared.botkit.outbox import PartRecorder, outbox_tag, parse_part_tag
from shared.channels.base import CustomerRef, StatusUpdate, TextReply, reply_to_dict
from shared.sandbox import Sandbox
from shared.store import BotStore
from shared.store.schema import MIGRATIONS
from sms_bot.adapter import TwilioAdapter
from sms_bot.channel import SmsChannel
from sms_bot.parse import parse_status
from telegram_bot.channel import TelegramChannel
from tests.botkit_support import Harness, make_harness
from whatsapp_bot.adapter import WhatsAppAdapter
from whatsapp_bot.channel import WhatsAppChannel
from whatsapp_bot.parse import parse_payload

PHONE = "+15550100001"
TO = "15550100001"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HOLD = timedelta(seconds=30)
LONG = ("word " * 900).strip() + "\n\n" + ("more " * 300).strip()  # > 4096: two text parts


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(tmp_path):
        yield harness


@pytest.fixture
def store(tmp_path: Path) -> BotStore:
    s = BotStore.open(tmp_path / "wa_sales_t.db")
    yield s
    s.close()


def queue(h: Harness, text: str = "hello there") -> int:
    user = h.ctx.store.resolve_user(CustomerRef(phone=PHONE), now=h.clock())
    h.ctx.store.touch_inbound(user.id, now=h.clock())
    return h.ctx.enqueue_reply(user.ref(), TextReply(text), user_id=user.id)


async def crash_mid_send(h: Harness, outbox_id: int, *, provider_accepts: bool) -> list[str]:
    """Claim the row and (optionally) have the provider accept every part, as a process that
    dies before it reads the answer would: nothing about the send is recorded."""
    row = h.ctx.store.outbox_get(outbox_id)
    assert row is not None
    assert h.ctx.store.outbox_mark_sending(outbox_id, now=h.clock())
    if not provider_accepts:
        return []
    return await h.ctx.adapter.send(
        row.recipient, TextReply(row.reply["text"]), tag=outbox_tag(outbox_id)
    )


def out_messages(h: Harness) -> list[dict[str, Any]]:
    return [m for m in h.ctx.store.messages() if m["direction"] == "out"]


# -- store ----------------------------------------------------------------------------------


def test_migration_adds_part_columns_to_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO outbox (customer, recipient, reply, next_attempt_at, created_at, "
        "updated_at) VALUES ('+1', '{\"phone\": \"+1\"}', "
        "'{\"type\": \"text\", \"text\": \"a\"}', ?, ?, ?)",
        (T0.isoformat(),) * 3,
    )
    conn.close()
    store = BotStore.open(path)
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 3
        (row,) = store.outbox_all()
        assert row.parts_sent == {}
        assert store.outbox_record_part(row.id, 0, "wamid.a") is True
        assert store.outbox_get(row.id).parts_sent == {0: "wamid.a"}  # type: ignore[union-attr]
    finally:
        store.close()


def test_parts_are_recorded_per_index_and_only_on_open_rows(store: BotStore) -> None:
    oid = store.outbox_add(customer=CustomerRef(phone="+1"), reply={"type": "text", "text": "a"})
    store.outbox_mark_sending(oid)
    assert store.outbox_record_part(oid, 1, "wamid.b", total=3)
    assert store.outbox_record_part(oid, 0, "wamid.a")
    assert store.outbox_parts(oid) == {0: "wamid.a", 1: "wamid.b"}
    stored = store.conn.execute("SELECT parts_sent, parts_total FROM outbox").fetchone()
    assert json.loads(stored[0]) == {"0": "wamid.a", "1": "wamid.b"}
    assert stored[1] == 3
    store.outbox_mark_sent(oid, ["wamid.a", "wamid.b", "wamid.c"])
    assert store.outbox_record_part(oid, 2, "wamid.late") is False
    assert store.outbox_get(oid).parts_sent == {  # type: ignore[union-attr]
        0: "wamid.a", 1: "wamid.b", 2: "wamid.c"
    }


def test_recover_with_no_parts_holds_the_row_for_confirmation(store: BotStore) -> None:
    oid = store.outbox_add(customer=CustomerRef(phone="+1"), reply={"type": "text", "text": "a"},
                           now=T0)
    store.outbox_mark_sending(oid)
    assert store.outbox_recover(now=T0, hold=HOLD) == (1, 0)
    row = store.outbox_get(oid)
    assert row is not None
    assert row.state == "pending"
    assert row.next_attempt_at == T0 + HOLD
    assert row.last_error
    assert "confirmation" in row.last_error
    assert store.outbox_due(now=T0 + timedelta(seconds=29)) == []
    assert [r.id for r in store.outbox_due(now=T0 + HOLD)] == [oid]


def test_recover_keeps_some_parts_and_settles_rows_with_all_parts(store: BotStore) -> None:
    c = CustomerRef(phone="+1")
    some = store.outbox_add(customer=c, reply={"type": "text", "text": "a"}, now=T0)
    every = store.outbox_add(customer=CustomerRef(phone="+2"),
                             reply={"type": "text", "text": "b"}, now=T0)
    for oid in (some, every):
        store.outbox_mark_sending(oid)
    store.outbox_record_part(some, 0, "wamid.s0", total=2)
    store.outbox_record_part(every, 0, "wamid.e0", total=2)
    store.outbox_record_part(every, 1, "wamid.e1")
    assert store.outbox_recover(now=T0, hold=HOLD) == (1, 1)
    partial = store.outbox_get(some)
    assert partial is not None
    assert partial.state == "pending"
    assert partial.parts_sent == {0: "wamid.s0"}
    done = store.outbox_get(every)
    assert done is not None
    assert done.state == "sent"
    assert done.provider_message_ids == ["wamid.e0", "wamid.e1"]
    out = [m for m in store.messages() if m["outbox_id"] == every]
    assert [(m["provider_message_id"], m["text"]) for m in out] == [
        ("wamid.e0", "b"), ("wamid.e1", "")
    ]


def test_recover_without_hold_makes_the_row_due_at_once(store: BotStore) -> None:
    oid = store.outbox_add(customer=CustomerRef(phone="+1"), reply={"type": "text", "text": "a"},
                           now=T0)
    store.outbox_mark_sending(oid)
    assert store.outbox_recover(now=T0) == (1, 0)
    assert [r.id for r in store.outbox_due(now=T0)] == [oid]


def test_confirmation_makes_a_held_row_due_and_adds_its_message_once(store: BotStore) -> None:
    oid = store.outbox_add(customer=CustomerRef(phone="+1"), reply={"type": "text", "text": "a"},
                           now=T0)
    store.outbox_mark_sending(oid)
    store.outbox_recover(now=T0, hold=HOLD)
    assert store.outbox_confirm_part(oid, 0, "wamid.c", now=T0 + timedelta(seconds=1))
    assert store.outbox_confirm_part(oid, 0, "wamid.c", now=T0 + timedelta(seconds=2))
    assert [r.id for r in store.outbox_due(now=T0 + timedelta(seconds=2))] == [oid]
    out = [m for m in store.messages() if m["direction"] == "out"]
    assert [(m["provider_message_id"], m["text"], m["status"]) for m in out] == [
        ("wamid.c", "a", "sent")
    ]
    assert store.outbox_confirm_part(999, 0, "wamid.x") is False


# -- worker against the sandbox -------------------------------------------------------------


async def test_whatsapp_payloads_carry_the_rows_tag_per_part(h: Harness) -> None:
    oid = queue(h, LONG)
    await h.flush_outbox()
    sent = await h.sent(TO)
    assert len(sent) == 2
    assert [m["payload"]["biz_opaque_callback_data"] for m in sent] == [
        f"ob:{oid}:0", f"ob:{oid}:1"
    ]
    row = h.ctx.store.outbox_get(oid)
    assert row is not None
    assert row.state == "sent"
    assert row.parts_sent == {0: sent[0]["message_id"], 1: sent[1]["message_id"]}
    assert [m["provider_message_id"] for m in out_messages(h)] == [
        sent[0]["message_id"], sent[1]["message_id"]
    ]


async def test_confirmed_send_is_settled_without_a_resend(h: Harness) -> None:
    oid = queue(h)
    (wamid,) = await crash_mid_send(h, oid, provider_accepts=True)
    assert h.ctx.store.outbox_recover(now=h.clock(), hold=HOLD) == (1, 0)
    await h.flush_outbox()
    assert len(await h.sent(TO)) == 1  # held: nothing resent yet
    assert h.ctx.apply_status(StatusUpdate(wamid, "sent", tag=f"ob:{oid}:0")) is False
    await h.flush_outbox()  # due now, every part confirmed: marked sent, nothing sent
    assert len(await h.sent(TO)) == 1
    row = h.ctx.store.outbox_get(oid)
    assert row is not None
    assert row.state == "sent"
    assert row.provider_message_ids == [wamid]
    assert [(m["provider_message_id"], m["text"]) for m in out_messages(h)] == [
        (wamid, "hello there")
    ]
    h.clock.advance(minutes=5)
    await h.flush_outbox()
    assert len(await h.sent(TO)) == 1


async def test_status_webhook_body_confirms_through_the_parser(h: Harness) -> None:
    oid = queue(h)
    (wamid,) = await crash_mid_send(h, oid, provider_accepts=True)
    h.ctx.store.outbox_recover(now=h.clock(), hold=HOLD)
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [{
            "id": wamid, "status": "delivered", "timestamp": "1749416383",
            "recipient_id": TO, "biz_opaque_callback_data": f"ob:{oid}:0"}]}}]}]}
    _, (status,) = parse_payload(body)
    assert status.tag == f"ob:{oid}:0"
    assert h.ctx.apply_status(status) is True  # sent → delivered on the added message row
    await h.flush_outbox()
    assert len(await h.sent(TO)) == 1
    assert h.ctx.store.outbox_get(oid).state == "sent"  # type: ignore[union-attr]


async def test_no_confirmation_within_the_hold_resends(h: Harness) -> None:
    oid = queue(h)
    await crash_mid_send(h, oid, provider_accepts=False)  # the request never reached Meta
    h.ctx.store.outbox_recover(now=h.clock(), hold=HOLD)
    h.clock.advance(seconds=29)
    await h.flush_outbox()
    assert await h.sent(TO) == []
    h.clock.advance(seconds=2)
    await h.flush_outbox()
    (sent,) = await h.sent(TO)
    assert sent["payload"]["biz_opaque_callback_data"] == f"ob:{oid}:0"
    assert h.ctx.store.outbox_get(oid).state == "sent"  # type: ignore[union-attr]


async def test_only_the_missing_part_is_sent_after_a_crash(h: Harness) -> None:
    oid = queue(h, LONG)
    row = h.ctx.store.outbox_get(oid)
    assert row is not None
    assert h.ctx.store.outbox_mark_sending(oid, now=h.clock())
    recorder = PartRecorder(h.ctx.store, oid, h.clock, {})

    def die_after_part_0(index: int, provider_id: str) -> None:
        recorder(index, provider_id)
        raise RuntimeError("killed")

    recorder.expect(2)
    # the process dies while part 1 is in flight: part 0 was committed, part 1 was not
    with pytest.raises(RuntimeError):
        await h.ctx.adapter.send(row.recipient, TextReply(LONG), tag=outbox_tag(oid),
                                 on_part=die_after_part_0)
    assert h.ctx.store.outbox_parts(oid).keys() == {0}
    h.ctx.store.outbox_recover(now=h.clock(), hold=HOLD)
    h.clock.advance(seconds=31)
    await h.flush_outbox()
    sent = await h.sent(TO)
    assert [m["payload"]["biz_opaque_callback_data"] for m in sent] == [
        f"ob:{oid}:0", f"ob:{oid}:1"
    ]
    done = h.ctx.store.outbox_get(oid)
    assert done is not None
    assert done.state == "sent"
    assert done.provider_message_ids == [sent[0]["message_id"], sent[1]["message_id"]]
    assert len(out_messages(h)) == 2


async def test_last_part_is_recorded_with_the_completion_not_alone(h: Harness) -> None:
    oid = queue(h)
    h.ctx.store.outbox_mark_sending(oid)
    recorder = PartRecorder(h.ctx.store, oid, h.clock, {})
    recorder.expect(2)
    recorder(0, "wamid.first")
    assert h.ctx.store.outbox_parts(oid) == {0: "wamid.first"}  # committed before part 1
    recorder(1, "wamid.last")
    assert h.ctx.store.outbox_parts(oid) == {0: "wamid.first"}  # left to the final commit
    assert recorder.parts == {0: "wamid.first", 1: "wamid.last"}


async def test_unrelated_callback_data_is_ignored(h: Harness) -> None:
    queue(h)
    await h.flush_outbox()
    (sent,) = await h.sent(TO)
    for tag in ("campaign-7", "ob:x:0", "ob:999:0", None):
        h.ctx.apply_status(StatusUpdate(sent["message_id"], "read", tag=tag))
    assert parse_part_tag("ob:12:3") == (12, 3)
    assert parse_part_tag("ob:12") is None
    assert h.ctx.store.message_by_provider_id(sent["message_id"])["status"] == "read"  # type: ignore[index]


# -- channels -------------------------------------------------------------------------------


def test_confirmation_hold_per_channel() -> None:
    assert WhatsAppChannel().confirm_hold({}) == timedelta(seconds=30)
    assert WhatsAppChannel().confirm_hold({"delivery_confirm_hold_s": 5}) == timedelta(seconds=5)
    assert WhatsAppChannel().confirm_hold({"delivery_confirm_hold_s": "bad"}) == HOLD
    assert TelegramChannel().confirm_hold({"delivery_confirm_hold_s": 30}) == timedelta(0)
    public = {"id": "s", "public_url": "https://bots.example.com"}
    assert SmsChannel().confirm_hold(public) == HOLD
    assert SmsChannel().confirm_hold({"id": "s"}) == timedelta(0)  # no callbacks possible


def test_sms_status_callback_query_carries_the_tag() -> None:
    form = MultiDict({"MessageSid": "SM1", "MessageStatus": "sent"})
    update = parse_status(form, {"ob": "ob:4:1"})
    assert update is not None
    assert (update.provider_message_id, update.status, update.tag) == ("SM1", "sent", "ob:4:1")
    queued = parse_status(MultiDict({"MessageSid": "SM1", "MessageStatus": "queued"}),
                          {"ob": "ob:4:1"})
    assert queued is not None
    assert (queued.status, queued.tag) == ("accepted", "ob:4:1")
    assert parse_status(MultiDict({"MessageSid": "SM1", "MessageStatus": "queued"})) is None
    assert parse_status(form).tag is None  # type: ignore[union-attr]


async def test_sms_adapter_puts_the_part_tag_in_each_status_callback() -> None:
    async with Sandbox(port=0) as sandbox, aiohttp.ClientSession() as http:
        twilio = TwilioAdapter(
            http, account_sid="AC" + "0" * 32, auth_token="t", base_url=sandbox.twilio_url,
            from_number="+15005550006", status_callback="https://bots.example.com/status",
        )
        long = "\n\n".join([("word " * 60).strip()] * 12)
        recorded: list[tuple[int, str]] = []
        ids = await twilio.send(CustomerRef(phone="+14155550123"), TextReply(long),
                                tag="ob:9", skip_parts=frozenset({0}),
                                on_part=lambda i, sid: recorded.append((i, sid)))
        sent = sandbox.state.find_messages(provider="twilio")
        assert len(sent) == len(ids) >= 2  # part 0 skipped
        assert [s.payload["StatusCallback"] for s in sent] == [
            f"https://bots.example.com/status?ob=ob:9:{n}" for n in range(1, len(ids) + 1)
        ]
        assert recorded == [(n, sid) for n, sid in enumerate(ids, 1)]


async def test_whatsapp_adapter_without_tag_sends_no_callback_data() -> None:
    async with Sandbox(port=0) as sandbox, aiohttp.ClientSession() as http:
        wa = WhatsAppAdapter(http, base_url=sandbox.graph_url, version="v21.0",
                             phone_number_id="1", access_token="t")
        await wa.send(CustomerRef(phone=PHONE), TextReply("hi"))
        (sent,) = sandbox.state.find_messages(provider="graph")
        assert "biz_opaque_callback_data" not in sent.payload
        assert reply_to_dict(TextReply("hi")) == {"type": "text", "text": "hi"}
