"""Ownership and handovers (issue 13): every transition changes both in one transaction, so
seed 001's desync (a ``pending`` conversation next to a ``resolved`` handover) cannot happen."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.channels.base import CustomerRef
from shared.store import BotStore
from shared.store import handovers as ho
from shared.store.schema import HANDOVERS_VERSION, SCHEMA_VERSION

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> BotStore:
    s = BotStore.open(tmp_path / "bot.db")
    yield s
    s.close()


def _customer(store: BotStore, n: int) -> int:
    return store.resolve_user(CustomerRef({"phone": f"+1555010{n:04d}"}), now=T0).id


def test_schema_has_handovers() -> None:
    assert 1 <= HANDOVERS_VERSION <= SCHEMA_VERSION


def test_lifecycle_of_one_handover(store: BotStore) -> None:
    uid = _customer(store, 1)
    assert ho.ownership(store, uid) == ho.BOT
    assert ho.proactive_allowed(store, uid)
    h, created = ho.open_handover(
        store,
        uid,
        reason="ask_for_person",
        question="a person!",
        customer="+15550100001",
        now=T0,
        acked=True,
    )
    assert created
    assert h.status == "pending"
    assert h.acked_at == T0
    assert ho.ownership(store, uid) == ho.PENDING
    assert not ho.proactive_allowed(store, uid)
    again, created = ho.open_handover(store, uid, reason="frustration", now=T0)
    assert not created
    assert again.id == h.id
    taken = ho.take(store, h.id, assignee="alice", now=T0 + timedelta(minutes=1))
    assert taken.status == "active"
    assert taken.assignee == "alice"
    assert ho.ownership(store, uid) == ho.HUMAN
    done = ho.resolve(store, h.id, by="alice", now=T0 + timedelta(minutes=5))
    assert done.status == "resolved"
    assert done.closed_by == "alice"
    assert ho.ownership(store, uid) == ho.BOT
    with pytest.raises(ho.HandoverError) as err:
        ho.resolve(store, h.id, by="alice", now=T0)
    assert err.value.status == 409
    with pytest.raises(ho.HandoverError) as err:
        ho.take(store, 999, assignee="bob", now=T0)
    assert err.value.status == 404
    assert ho.desynced_customers(store.conn) == []


def test_operator_takes_directly(store: BotStore) -> None:
    uid = _customer(store, 2)
    h = ho.take_customer(store, uid, assignee="op", reason="operator_message", now=T0)
    assert h.status == "active"
    assert h.reason == "operator_message"
    assert ho.ownership(store, uid) == ho.HUMAN
    assert (
        ho.take_customer(store, uid, assignee="op", reason="operator_message", now=T0).id == h.id
    )


def test_a_failed_transition_changes_neither(
    store: BotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handover row and the ownership are written together or not at all."""
    uid = _customer(store, 3)
    h, _ = ho.open_handover(store, uid, reason="ask_for_person", now=T0)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("crash between the two writes")

    monkeypatch.setattr(ho, "_set_ownership", boom)
    with pytest.raises(RuntimeError):
        ho.resolve(store, h.id, by="x", now=T0)
    monkeypatch.undo()
    assert ho.get(store, h.id).status == "pending"  # type: ignore[union-attr]
    assert ho.ownership(store, uid) == ho.PENDING
    assert ho.desynced_customers(store.conn) == []


def test_desync_query_finds_seed_001_state(store: BotStore) -> None:
    """The query catches the seed's bug: ownership pending beside a resolved handover."""
    uid = _customer(store, 4)
    h, _ = ho.open_handover(store, uid, reason="ask_for_person", now=T0)
    # What seed 001 did: close the handover in one place, forget the conversation state.
    store.conn.execute("UPDATE handovers SET status = 'resolved' WHERE id = ?", (h.id,))
    assert ho.desynced_customers(store.conn) == [(uid, "pending", None, None)]


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_never_desync(store: BotStore, seed: int) -> None:
    """Random sequences of open/take/resolve/expire/operator takes over several customers: after
    each one, no customer's ownership disagrees with its open handover."""
    rng = random.Random(seed)
    users = [_customer(store, 100 + n) for n in range(4)]
    now = T0
    for _ in range(60):
        now += timedelta(seconds=rng.randint(1, 600))
        uid = rng.choice(users)
        op = rng.choice(["open", "take", "resolve", "expire", "operator", "take_closed"])
        current = ho.open_for(store, uid)
        try:
            if op == "open":
                ho.open_handover(store, uid, reason="ask_for_person", now=now)
            elif op == "operator":
                ho.take_customer(
                    store, uid, assignee=rng.choice(["a", "b"]), reason="operator_message", now=now
                )
            elif op == "take_closed":
                closed = ho.list_handovers(store, statuses=("resolved", "expired"))
                if closed:
                    ho.take(store, rng.choice(closed).id, assignee="late", now=now)
            elif current is not None and op == "take":
                ho.take(store, current.id, assignee=rng.choice(["a", "b"]), now=now)
            elif current is not None and op == "resolve":
                ho.resolve(store, current.id, by="a", now=now)
            elif current is not None and op == "expire":
                ho.expire(store, current.id, now=now)
        except ho.HandoverError:
            pass
        assert ho.desynced_customers(store.conn) == [], (seed, op)
    statuses = {h.status for h in ho.list_handovers(store)}
    assert statuses <= set(ho.STATUSES)


def test_idle_close_keeps_a_pending_handover_open(store: BotStore) -> None:
    waiting, idle = _customer(store, 5), _customer(store, 6)
    ho.open_handover(store, waiting, reason="ask_for_person", now=T0)
    closed = ho.close_idle(store, idle_before=T0 + timedelta(days=2), now=T0 + timedelta(days=2))
    assert closed == [idle]
    rows = dict(store.conn.execute("SELECT id, conversation FROM users").fetchall())
    assert rows[waiting] == "open"
    assert rows[idle] == "closed"
    assert ho.open_for(store, waiting) is not None
