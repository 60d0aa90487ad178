"""Upgrading a bot database written before identities (schema version 3) at bot start.

The file is built with the DDL that shipped (migrations 1-3, never edited once shipped) and rows
as the code of that time wrote them: channel-named ``users`` columns, flat customer JSON in the
inbox and the outbox. Opening it with :meth:`BotStore.open` (what a bot does at start) must keep
every customer, message and outbox row and map the old columns to identities.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.channels.base import CustomerRef
from shared.store import BotStore
from shared.store.reader import conversation_messages, list_conversations
from shared.store.schema import IDENTITIES_VERSION, MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def stamp(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: (id, phone, bsuid, parent_bsuid, username, telegram_id, profile_name, last_seen minute)
CUSTOMERS = [
    (1, "+15550100001", None, None, None, None, "Ana", 1),
    (2, "+15550100002", "BR.1502576394655843", "BR.ENT.1", "@maria", None, "Maria", 5),
    (3, None, "US.13491208655302741918", None, "@ben", None, None, 3),
    (4, None, None, None, "anna_k", "424242", "Anna", 4),
    # Two customers once shared a username (no unique index on it then): the later one keeps it.
    (5, None, None, None, "@maria", "777", "Old Maria", 2),
]


def write_v3(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for number, script in enumerate(MIGRATIONS[:3], start=1):
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {number}")
        for cid, phone, bsuid, parent, username, tg, name, seen in CUSTOMERS:
            conn.execute(
                "INSERT INTO users (id, phone, bsuid, parent_bsuid, username, telegram_id, "
                "profile_name, funnel_state, segment, answers, data, first_seen, last_seen, "
                "last_inbound_at, rate_notice_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?)",
                (
                    cid,
                    phone,
                    bsuid,
                    parent,
                    username,
                    tg,
                    name,
                    "custom_step_2" if cid == 1 else None,
                    "custom" if cid == 1 else None,
                    '{"q1": "a"}',
                    "{}",
                    stamp(0),
                    stamp(seen),
                    stamp(seen),
                    stamp(seen) if cid == 2 else None,
                ),
            )
        conn.execute(
            "INSERT INTO custom_discovery (user_id, step, answer, ts) VALUES (1, 'step_1', "
            "'price list', ?)",
            (stamp(1),),
        )
        conn.execute(
            "INSERT INTO events (user_id, type, data, ts) VALUES (1, 'segment', '{}', ?)",
            (stamp(1),),
        )
        messages = [
            (1, "+15550100001", "in", None, "hi"),
            (1, "+15550100001", "out", "wamid.o1", "Hello!"),
            (2, "+15550100002", "in", None, "price?"),
            (3, "US.13491208655302741918", "in", None, "hola"),
            (4, "424242", "in", None, "/start"),
            (None, "+15550109999", "out", "wamid.o2", "operator note"),
        ]
        for i, (uid, key, direction, pid, text) in enumerate(messages):
            conn.execute(
                "INSERT INTO messages (user_id, customer, direction, provider_message_id, type, "
                "text, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'text', ?, ?, ?, ?)",
                (
                    uid,
                    key,
                    direction,
                    pid,
                    text,
                    "sent" if direction == "out" else None,
                    stamp(10 + i),
                    stamp(10 + i),
                ),
            )
        flat = {
            "phone": "+15550100002",
            "bsuid": "BR.1502576394655843",
            "parent_bsuid": "BR.ENT.1",
            "username": "@maria",
            "telegram_id": None,
            "profile_name": "Maria",
        }
        outbox = [
            (
                "sent",
                '["wamid.o1"]',
                1,
                "+15550100001",
                {**dict.fromkeys(flat), "phone": "+15550100001", "profile_name": "Ana"},
            ),
            ("pending", None, 2, "+15550100002", flat),
            (
                "sending",
                None,
                3,
                "US.13491208655302741918",
                {**dict.fromkeys(flat), "bsuid": "US.13491208655302741918"},
            ),
        ]
        for state, ids, uid, key, recipient in outbox:
            conn.execute(
                "INSERT INTO outbox (user_id, customer, recipient, reply, state, "
                "next_attempt_at, provider_message_ids, created_at, updated_at, parts_sent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    key,
                    json.dumps(recipient),
                    json.dumps({"type": "text", "text": "x"}),
                    state,
                    stamp(20),
                    ids,
                    stamp(20),
                    stamp(20),
                    '{"0": "wamid.o1"}' if state == "sent" else None,
                ),
            )
        raw = {
            "provider_message_id": "wamid.in9",
            "customer": flat,
            "kind": "text",
            "text": "still there?",
            "payload": None,
            "media_id": None,
            "media_mime": None,
            "location": None,
            "context_message_id": None,
            "timestamp": 0,
            "raw": {},
        }
        conn.execute(
            "INSERT INTO inbox (provider_message_id, customer, raw, received_at) "
            "VALUES ('wamid.in9', '+15550100002', ?, ?)",
            (json.dumps(raw), stamp(30)),
        )
        conn.execute(
            "INSERT INTO continuations (token, user_id, reply, created_at) VALUES "
            '(\'abcd\', 2, \'{"type": "text", "text": "page 2"}\', ?)',
            (stamp(30),),
        )
    finally:
        conn.close()


def counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
            for t in (
                "users",
                "messages",
                "outbox",
                "inbox",
                "events",
                "custom_discovery",
                "continuations",
            )
        }
    finally:
        conn.close()


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "wa_sales_old-bot.db"
    write_v3(path)
    return path


def test_upgrade_keeps_every_row_and_maps_old_columns_to_identities(old_db: Path) -> None:
    before = counts(old_db)
    messages_before = (
        sqlite3.connect(old_db)
        .execute("SELECT id, user_id, customer, direction, text FROM messages ORDER BY id")
        .fetchall()
    )

    store = BotStore.open(old_db)
    try:
        version = store.conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION >= IDENTITIES_VERSION
        columns = {r[1] for r in store.conn.execute("PRAGMA table_info(users)")}
        assert not columns & {"phone", "bsuid", "parent_bsuid", "username", "telegram_id"}

        assert store.get_user(1).identities == {"phone": "+15550100001"}  # type: ignore[union-attr]
        assert store.get_user(2).identities == {  # type: ignore[union-attr]
            "phone": "+15550100002",
            "bsuid": "BR.1502576394655843",
            "parent_bsuid": "BR.ENT.1",
            "username": "@maria",
        }
        assert store.get_user(3).identities == {  # type: ignore[union-attr]
            "bsuid": "US.13491208655302741918",
            "username": "@ben",
        }
        assert store.get_user(4).identities == {  # type: ignore[union-attr]
            "username": "anna_k",
            "telegram_user": "424242",
        }
        assert store.get_user(5).identities == {"telegram_user": "777"}  # type: ignore[union-attr]

        ana = store.get_user(1)
        assert ana is not None
        assert ana.funnel_state == "custom_step_2"
        assert ana.profile_name == "Ana"
        assert store.load_state(ana).discovery == {"step_1": "price list"}
        maria = store.get_user(2)
        assert maria is not None
        assert maria.rate_notice_at == T0 + timedelta(minutes=5)

        # Every old identifier still finds its customer.
        for ref, uid in (
            (CustomerRef(phone="+15550100001"), 1),
            (CustomerRef(bsuid="BR.1502576394655843"), 2),
            (CustomerRef(phone="+15550100002", bsuid="BR.1502576394655843"), 2),
            (CustomerRef(bsuid="US.13491208655302741918"), 3),
            (CustomerRef(telegram_id="424242"), 4),
            (CustomerRef(telegram_id="777"), 5),
        ):
            found = store.find_user(ref)
            assert found is not None
            assert found.id == uid
        assert store.resolve_user(CustomerRef(telegram_id="424242")).id == 4
        assert counts(old_db)["users"] == before["users"]

        # Rows written with the flat customer JSON still decode.
        outbox = store.outbox_all()
        assert [r.state for r in outbox] == ["sent", "pending", "sending"]
        assert outbox[1].recipient == CustomerRef(
            phone="+15550100002",
            bsuid="BR.1502576394655843",
            parent_bsuid="BR.ENT.1",
            username="@maria",
            profile_name="Maria",
        )
        assert outbox[2].recipient.address() == "US.13491208655302741918"
        assert outbox[0].parts_sent == {0: "wamid.o1"}
        (open_row,) = store.inbox_open()
        assert open_row.message.customer.bsuid == "BR.1502576394655843"
        assert open_row.message.text == "still there?"
        assert store.get_continuation("abcd") == {"type": "text", "text": "page 2"}

        assert len(messages_before) == 6
        assert [
            (m["id"], m["user_id"], m["customer"], m["direction"], m["text"])
            for m in store.messages()
        ] == [tuple(r) for r in messages_before]
    finally:
        store.close()
    assert counts(old_db) == before

    # Opening again is a no-op.
    store = BotStore.open(old_db)
    store.close()
    assert counts(old_db) == before


def test_the_orchestrator_reads_a_file_the_bot_has_not_upgraded_yet(old_db: Path) -> None:
    before = old_db.read_bytes()
    conversations = list_conversations(old_db)
    assert [c["customer_key"] for c in conversations][:2] == ["+15550109999", "424242"]
    anna = next(c for c in conversations if c["customer_key"] == "424242")
    assert anna["identities"] == {"username": "anna_k", "telegram_user": "424242"}
    customer, messages = conversation_messages(old_db, "+15550100001")
    assert customer is not None
    assert customer["phone"] == "+15550100001"
    assert customer["name"] == "Ana"
    assert [m["text"] for m in messages] == ["hi", "Hello!"]
    assert old_db.read_bytes() == before  # read-only: not migrated by the reader


def test_the_same_file_reads_the_same_after_the_upgrade(old_db: Path) -> None:
    old_list = list_conversations(old_db)
    old_one = conversation_messages(old_db, "US.13491208655302741918")
    BotStore.open(old_db).close()
    assert list_conversations(old_db) == old_list
    assert conversation_messages(old_db, "US.13491208655302741918") == old_one
