"""Customer identities: one customer across BSUID and phone, access lists over every identity.

Messages go through the real bot pipeline (inbox worker → decision → outbox) against the real
sandbox Graph API; the conversations view is read with the orchestrator's read-only reader.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.channels.base import CustomerRef, InboundMessage
from shared.store import BotStore
from shared.store.reader import conversation_messages, list_conversations
from tests.botkit_support import Harness, make_harness

PHONE = "+15550100001"
BSUID = "BR.1502576394655843"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(tmp_path):
        yield harness


def msg(
    mid: str, body: str, *, phone: str | None = None, bsuid: str | None = None
) -> InboundMessage:
    return InboundMessage(mid, CustomerRef(phone=phone, bsuid=bsuid), text=body)


def db_path(h: Harness) -> Path:
    return Path(h.ctx.settings.data_dir) / "wa_sales_support-bot.db"


@pytest.mark.parametrize(
    "first",
    [{"bsuid": BSUID}, {"phone": PHONE}],
    ids=["bsuid-then-phone", "phone-then-bsuid"],
)
async def test_bsuid_and_phone_of_one_customer_are_one_customer_and_one_conversation(
    h: Harness, first: dict[str, str]
) -> None:
    h.ctx.accept_inbound(msg("wamid.1", "zxqv first", **first))
    await h.settle()
    h.ctx.accept_inbound(msg("wamid.2", "zxqv second", phone=PHONE, bsuid=BSUID))
    await h.settle()
    h.ctx.accept_inbound(msg("wamid.3", "zxqv third", **first))
    await h.settle()

    store = h.ctx.store
    users = store.conn.execute("SELECT id FROM users").fetchall()
    assert len(users) == 1
    user = store.find_user(CustomerRef(phone=PHONE))
    assert user is not None
    assert user.identities == {"phone": PHONE, "bsuid": BSUID} or user.identities == {
        "bsuid": BSUID,
        "phone": PHONE,
    }
    assert store.find_user(CustomerRef(bsuid=BSUID)) == user
    inbound = [m for m in store.messages() if m["direction"] == "in"]
    assert [m["user_id"] for m in inbound] == [user.id] * 3

    conversations = list_conversations(db_path(h))
    assert len(conversations) == 1
    assert conversations[0]["inbound"] == 3
    assert conversations[0]["identities"] == {"phone": PHONE, "bsuid": BSUID}
    # Opened under either address, it is the whole conversation.
    for key in (PHONE, BSUID):
        customer, messages = conversation_messages(db_path(h), key)
        assert customer is not None
        assert customer["phone"] == PHONE
        assert customer["bsuid"] == BSUID
        assert [m["text"] for m in messages if m["direction"] == "in"] == [
            "zxqv first",
            "zxqv second",
            "zxqv third",
        ]


async def test_a_blocked_bsuid_stays_blocked_when_the_customer_writes_with_a_phone(
    h: Harness,
) -> None:
    h.ctx.accept_inbound(msg("wamid.1", "zxqv hello", phone=PHONE, bsuid=BSUID))
    await h.settle()
    answered = len(await h.sent())
    assert answered >= 1

    h.ctx.config["blocked_phones"] = [BSUID]
    # The phone alone (the BSUID is known for this customer), and both together.
    h.ctx.accept_inbound(msg("wamid.2", "zxqv phone only", phone=PHONE))
    h.ctx.accept_inbound(msg("wamid.3", "zxqv both", phone=PHONE, bsuid=BSUID))
    await h.settle()
    assert len(await h.sent()) == answered
    assert h.ctx.store.inbox_state(2) == ("done", "blocked")
    assert h.ctx.store.inbox_state(3) == ("done", "blocked")
    texts = [m["text"] for m in h.ctx.store.messages() if m["direction"] == "in"]
    assert texts == ["zxqv hello"]


async def test_a_blocked_bsuid_blocks_its_first_message_with_a_phone(h: Harness) -> None:
    h.ctx.config["blocked_phones"] = [BSUID.lower()]  # BSUIDs compare case-insensitively
    h.ctx.accept_inbound(msg("wamid.1", "zxqv hi", bsuid=BSUID))
    h.ctx.accept_inbound(msg("wamid.2", "zxqv hi again", phone=PHONE, bsuid=BSUID))
    await h.settle()
    assert await h.sent() == []
    assert h.ctx.store.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0


def test_resolve_user_never_merges_two_customers(tmp_path: Path) -> None:
    store = BotStore.open(tmp_path / "s.db")
    try:
        a = store.resolve_user(CustomerRef(phone=PHONE))
        b = store.resolve_user(CustomerRef(bsuid=BSUID))
        # A message naming both: the BSUID (the stronger scheme) wins; the phone stays with a.
        both = store.resolve_user(CustomerRef(phone=PHONE, bsuid=BSUID))
        assert both.id == b.id
        assert both.identities == {"bsuid": BSUID}
        assert store.find_user(CustomerRef(phone=PHONE)) == store.get_user(a.id)
    finally:
        store.close()


def test_a_username_moves_to_its_latest_holder(tmp_path: Path) -> None:
    store = BotStore.open(tmp_path / "s.db")
    try:
        a = store.resolve_user(CustomerRef(telegram_id="1", username="anna"))
        b = store.resolve_user(CustomerRef(telegram_id="2", username="anna"))
        assert store.get_user(a.id).identities == {"telegram_user": "1"}  # type: ignore[union-attr]
        assert b.identities == {"telegram_user": "2", "username": "anna"}
        renamed = store.resolve_user(CustomerRef(telegram_id="2", username="anna_k"))
        assert renamed.identities == {"telegram_user": "2", "username": "anna_k"}
        assert store.find_user_by_address("anna") is None
        assert store.find_user_by_address("2") == renamed
    finally:
        store.close()


def test_a_channel_scheme_of_its_own_identifies_and_addresses(tmp_path: Path) -> None:
    store = BotStore.open(tmp_path / "s.db")
    try:
        ref = CustomerRef({"webchat": "session-42"}, profile_name="Guest")
        user = store.resolve_user(ref)
        assert user.identities == {"webchat": "session-42"}
        assert user.ref().address() == "session-42"
        assert store.find_user(CustomerRef({"webchat": "session-42"})) == user
        assert store.find_user_by_address("session-42") == user
    finally:
        store.close()
