"""The bot's SQLite store: inbox dedupe, customers by any id, status monotonicity, outbox."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.channels.base import CustomerRef, InboundMessage
from shared.routing.types import ConversationState
from shared.store import BotStore
from shared.store.schema import MIGRATIONS

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> BotStore:
    s = BotStore.open(tmp_path / "wa_sales_t.db")
    yield s
    s.close()


def msg(mid: str, phone: str | None = "+15550001", bsuid: str | None = None) -> InboundMessage:
    return InboundMessage(mid, CustomerRef(phone=phone, bsuid=bsuid), text="hi")


def test_file_is_wal_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    BotStore.open(path).close()
    store = BotStore.open(path)  # re-open: migrations are idempotent
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {
        r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {
        "users",
        "events",
        "custom_discovery",
        "messages",
        "inbox",
        "outbox",
        "dead_letters",
    } <= tables
    store.close()


def test_inbox_insert_if_absent(store: BotStore) -> None:
    first = store.inbox_insert(msg("wamid.1"), customer="+15550001")
    again = store.inbox_insert(msg("wamid.1"), customer="+15550001")
    other = store.inbox_insert(msg("wamid.2"), customer="+15550001")
    assert first is not None
    assert other is not None
    assert again is None
    assert store.conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 2
    row = store.inbox_get(first)
    assert row is not None
    assert row.message.text == "hi"
    assert row.message.customer.phone == "+15550001"


def test_inbox_dedupe_holds_across_connections(tmp_path: Path) -> None:
    a = BotStore.open(tmp_path / "d.db")
    b = BotStore.open(tmp_path / "d.db")
    results = [
        a.inbox_insert(msg("wamid.same"), customer="c"),
        b.inbox_insert(msg("wamid.same"), customer="c"),
    ]
    assert sorted(r is None for r in results) == [False, True]


def test_open_inbox_rows_are_replayable(store: BotStore) -> None:
    ids = [store.inbox_insert(msg(f"wamid.{i}"), customer="c") for i in range(3)]
    store.inbox_mark_processing(ids[1])
    store.inbox_finish(ids[2])
    assert [r.id for r in store.inbox_open()] == ids[:2]


def test_customer_found_by_phone_or_bsuid_and_merged(store: BotStore) -> None:
    by_bsuid = store.resolve_user(CustomerRef(bsuid="BR.1", username="@maria"), now=T0)
    assert by_bsuid.phone is None
    # Later Meta sends both ids: same row, phone filled in.
    both = store.resolve_user(CustomerRef(phone="+5511900", bsuid="BR.1", profile_name="Maria"))
    assert both.id == by_bsuid.id
    assert both.phone == "+5511900"
    assert both.profile_name == "Maria"
    assert store.resolve_user(CustomerRef(phone="+5511900")).id == by_bsuid.id
    assert store.resolve_user(CustomerRef(phone="+5511901")).id != by_bsuid.id
    assert store.find_user_by_address("BR.1") is not None


def test_state_round_trip(store: BotStore) -> None:
    user = store.resolve_user(CustomerRef(phone="+1555"))
    state = ConversationState(
        funnel_state="custom_step_2",
        segment="custom",
        answers={"q1": "a"},
        discovery={"custom_step_1": "a shop"},
        data={"k": [1]},
    )
    store.save_state(user.id, state)
    loaded = store.load_state(store.get_user(user.id))  # type: ignore[arg-type]
    assert loaded.funnel_state == "custom_step_2"
    assert loaded.segment == "custom"
    assert loaded.answers == {"q1": "a"}
    assert loaded.discovery == {"custom_step_1": "a shop"}
    assert loaded.data == {"k": [1]}


@pytest.mark.parametrize(
    ("sequence", "final"),
    [
        (["sent", "delivered", "read"], "read"),
        (["sent", "read", "delivered"], "read"),
        (["read", "sent"], "read"),
        (["delivered", "failed"], "delivered"),
        (["sent", "failed"], "failed"),
        (["failed", "delivered"], "delivered"),
    ],
)
def test_status_never_moves_backwards(store: BotStore, sequence: list[str], final: str) -> None:
    store.add_message(
        direction="out",
        customer="c",
        type_="text",
        text="x",
        provider_message_id="wamid.out",
        status="sent",
    )
    for status in sequence:
        store.update_message_status("wamid.out", status, error="e" if status == "failed" else None)
    row = store.message_by_provider_id("wamid.out")
    assert row is not None
    assert row["status"] == final


def test_status_update_reports_change(store: BotStore) -> None:
    store.add_message(
        direction="out", customer="c", type_="text", provider_message_id="w", status="sent"
    )
    assert store.update_message_status("w", "read") is True
    assert store.update_message_status("w", "delivered") is False
    assert store.update_message_status("unknown", "read") is False
    assert store.update_message_status("w", "deleted") is False


def test_failed_status_keeps_code(store: BotStore) -> None:
    store.add_message(
        direction="out", customer="c", type_="text", provider_message_id="w", status="sent"
    )
    store.update_message_status("w", "failed", error="Re-engagement", error_code=131047)
    row = store.message_by_provider_id("w")
    assert row is not None
    assert (row["status"], row["error_code"]) == ("failed", 131047)


def test_outbox_orders_per_customer(store: BotStore) -> None:
    a1 = store.outbox_add(
        customer=CustomerRef(phone="+1"), reply={"type": "text", "text": "1"}, now=T0
    )
    a2 = store.outbox_add(
        customer=CustomerRef(phone="+1"), reply={"type": "text", "text": "2"}, now=T0
    )
    b1 = store.outbox_add(
        customer=CustomerRef(phone="+2"), reply={"type": "text", "text": "x"}, now=T0
    )
    assert [r.id for r in store.outbox_due(now=T0)] == [a1, b1]
    store.outbox_mark_sending(a1)
    store.outbox_retry_later(a1, at=T0 + timedelta(seconds=30), error="429")
    # a2 waits behind a1 even though a2 itself is due.
    assert [r.id for r in store.outbox_due(now=T0 + timedelta(seconds=1))] == [b1]
    assert [r.id for r in store.outbox_due(now=T0 + timedelta(seconds=31))] == [a1, b1]
    assert a2 not in [r.id for r in store.outbox_due(now=T0 + timedelta(seconds=31))]


def test_outbox_claim_is_exclusive(store: BotStore) -> None:
    oid = store.outbox_add(customer=CustomerRef(phone="+1"), reply={"type": "text", "text": "1"})
    assert store.outbox_mark_sending(oid) is True
    assert store.outbox_mark_sending(oid) is False


def test_outbox_recover_after_crash(store: BotStore) -> None:
    c = CustomerRef(phone="+1")
    never_answered = store.outbox_add(customer=c, reply={"type": "text", "text": "a"})
    answered = store.outbox_add(customer=c, reply={"type": "text", "text": "b"})
    store.outbox_mark_sending(never_answered)
    store.outbox_mark_sending(answered)
    store.conn.execute(
        "UPDATE outbox SET provider_message_ids = '[\"wamid.z\"]' WHERE id = ?", (answered,)
    )
    assert store.outbox_recover() == (1, 1)
    assert store.outbox_get(never_answered).state == "pending"  # type: ignore[union-attr]
    assert store.outbox_get(answered).state == "sent"  # type: ignore[union-attr]


def test_transaction_rolls_back_everything(store: BotStore) -> None:
    def write_then_fail() -> None:
        with store.transaction():
            store.add_event(None, "x")
            store.inbox_insert(msg("wamid.tx"), customer="c")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert store.events() == []
    assert store.inbox_open() == []


def test_user_version_newer_than_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RuntimeError):
        BotStore.open(path)


def test_inbound_json_round_trips_every_field() -> None:
    from dataclasses import fields

    from shared.channels.base import CustomerRef, InboundMessage
    from shared.store.sqlite import inbound_from_json, inbound_to_json

    message = InboundMessage(
        provider_message_id="wamid.1",
        customer=CustomerRef(phone="+15550100001", bsuid="BR.123456789", parent_bsuid="BR.ENT.1",
                             username="@ana", telegram_id="42", profile_name="Ana"),
        kind="list",
        text="Row",
        payload="faq:offline",
        media_id="m1",
        media_mime="audio/ogg",
        location={"latitude": 1.5, "longitude": 2.5},
        context_message_id="wamid.0",
        timestamp=1749416383,
        raw={"nested": {"deep": [1, 2]}},
    )
    assert inbound_from_json(inbound_to_json(message)) == message
    encoded = json.loads(inbound_to_json(message))
    assert set(encoded) == {f.name for f in fields(InboundMessage)}
    assert set(encoded["customer"]) == set(CustomerRef.__slots__)
    assert encoded["customer"]["identities"] == {
        "phone": "+15550100001", "bsuid": "BR.123456789", "parent_bsuid": "BR.ENT.1",
        "username": "@ana", "telegram_user": "42",
    }
