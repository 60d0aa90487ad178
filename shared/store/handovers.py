"""Conversation ownership and handovers: the one module that changes either (issue 13).

A customer's ``users.ownership`` says who answers them: ``bot``, ``pending`` (a person was
asked for, nobody took it yet) or ``human`` (a named person took it). The reason is a
``handovers`` row (``pending`` → ``active`` → ``resolved``, or ``pending``/``active`` →
``expired``). Seed 001 lost track of the two (a ``pending`` conversation next to a ``resolved``
handover), so here every transition changes both in one transaction, and nothing else in the
code base writes either. The invariant, checked by :func:`desynced_customers`:

* ownership ``bot``     ⇔ the customer has no open (``pending``/``active``) handover;
* ownership ``pending`` ⇔ the open handover is ``pending``;
* ownership ``human``   ⇔ the open handover is ``active``.

A partial unique index allows at most one open handover per customer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.store.codec import iso, parse_iso

if TYPE_CHECKING:
    from shared.store.sqlite import BotStore

BOT = "bot"
PENDING = "pending"
HUMAN = "human"
OWNERSHIPS = (BOT, PENDING, HUMAN)
#: Handover statuses; the first two are "open".
OPEN_STATUSES = ("pending", "active")
STATUSES = ("pending", "active", "resolved", "expired")
#: Longest stored triggering question / assignee name.
MAX_QUESTION = 2000
MAX_ASSIGNEE = 200


class HandoverError(Exception):
    """A transition that does not apply (unknown handover, already closed, ...).

    Attributes:
        status: the HTTP status the control API answers with (404 or 409).
    """

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Handover:
    """One handover row."""

    id: int
    user_id: int
    customer: str
    reason: str
    status: str
    assignee: str | None
    question: str
    desk_topic_id: str | None
    created_at: datetime
    taken_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    acked_at: datetime | None
    renotified_at: datetime | None

    @property
    def is_open(self) -> bool:
        """``pending`` or ``active``."""
        return self.status in OPEN_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO strings)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "customer": self.customer,
            "reason": self.reason,
            "status": self.status,
            "assignee": self.assignee,
            "question": self.question,
            "desk_topic_id": self.desk_topic_id,
            "created_at": iso(self.created_at),
            "taken_at": iso(self.taken_at) if self.taken_at else None,
            "closed_at": iso(self.closed_at) if self.closed_at else None,
            "closed_by": self.closed_by,
            "acked_at": iso(self.acked_at) if self.acked_at else None,
            "renotified_at": iso(self.renotified_at) if self.renotified_at else None,
        }


def _row(row: sqlite3.Row) -> Handover:
    created = parse_iso(row["created_at"])
    assert created is not None  # noqa: S101 - NOT NULL column
    return Handover(
        id=int(row["id"]),
        user_id=int(row["user_id"]),
        customer=str(row["customer"]),
        reason=str(row["reason"]),
        status=str(row["status"]),
        assignee=row["assignee"],
        question=str(row["question"] or ""),
        desk_topic_id=row["desk_topic_id"],
        created_at=created,
        taken_at=parse_iso(row["taken_at"]),
        closed_at=parse_iso(row["closed_at"]),
        closed_by=row["closed_by"],
        acked_at=parse_iso(row["acked_at"]),
        renotified_at=parse_iso(row["renotified_at"]),
    )


# ------------------------------------------------------------------------------ reading


def ownership(store: BotStore, user_id: int) -> str:
    """The customer's ownership (``bot`` for an unknown customer)."""
    row = store.conn.execute("SELECT ownership FROM users WHERE id = ?", (user_id,)).fetchone()
    return str(row[0]) if row is not None else BOT


def proactive_allowed(store: BotStore, user_id: int) -> bool:
    """Whether the bot may write to the customer on its own (follow-ups, reminders, campaigns):
    only while the bot owns the conversation. The scheduler asks this at send time."""
    return ownership(store, user_id) == BOT


def recent_inbound_texts(store: BotStore, user_id: int, limit: int) -> list[str]:
    """The customer's latest ``limit`` inbound texts, newest first (the frustration check)."""
    rows = store.conn.execute(
        "SELECT text FROM messages WHERE user_id = ? AND direction = 'in' "
        "ORDER BY id DESC LIMIT ?",
        (user_id, limit),
    ).fetchall()
    return [str(r[0] or "") for r in rows]


def get(store: BotStore, handover_id: int) -> Handover | None:
    """One handover by id."""
    row = store.conn.execute("SELECT * FROM handovers WHERE id = ?", (handover_id,)).fetchone()
    return _row(row) if row is not None else None


def open_for(store: BotStore, user_id: int) -> Handover | None:
    """The customer's open (``pending``/``active``) handover, if any."""
    row = store.conn.execute(
        "SELECT * FROM handovers WHERE user_id = ? AND status IN ('pending', 'active')",
        (user_id,),
    ).fetchone()
    return _row(row) if row is not None else None


def list_handovers(
    store: BotStore, *, statuses: tuple[str, ...] = STATUSES, limit: int = 200
) -> list[Handover]:
    """Handovers with one of ``statuses``, newest first."""
    marks = ", ".join("?" for _ in statuses)
    rows = store.conn.execute(
        f"SELECT * FROM handovers WHERE status IN ({marks}) "  # noqa: S608 - placeholders only
        "ORDER BY id DESC LIMIT ?",
        (*statuses, limit),
    ).fetchall()
    return [_row(r) for r in rows]


def pending_older_than(store: BotStore, before: datetime) -> list[Handover]:
    """``pending`` handovers opened before ``before`` (timeout candidates), oldest first."""
    rows = store.conn.execute(
        "SELECT * FROM handovers WHERE status = 'pending' AND created_at <= ? ORDER BY id",
        (iso(before),),
    ).fetchall()
    return [_row(r) for r in rows]


#: Customers whose ownership disagrees with their open handover (seed 001's desync).
DESYNC_SQL = """
SELECT u.id AS user_id, u.ownership, h.id AS handover_id, h.status
FROM users u
LEFT JOIN handovers h ON h.user_id = u.id AND h.status IN ('pending', 'active')
WHERE NOT (
    (u.ownership = 'bot' AND h.id IS NULL)
    OR (u.ownership = 'pending' AND COALESCE(h.status, '') = 'pending')
    OR (u.ownership = 'human' AND COALESCE(h.status, '') = 'active')
)
UNION ALL
SELECT h.user_id, NULL, h.id, h.status FROM handovers h
WHERE h.status IN ('pending', 'active')
    AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = h.user_id)
"""


def desynced_customers(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """Every customer whose ownership disagrees with its open handover (empty when sound)."""
    return [tuple(r) for r in conn.execute(DESYNC_SQL).fetchall()]


# ------------------------------------------------------------------------------ transitions


def _set_ownership(store: BotStore, user_id: int, value: str) -> None:
    cur = store.conn.execute("UPDATE users SET ownership = ? WHERE id = ?", (value, user_id))
    if cur.rowcount != 1:
        raise HandoverError(f"no customer {user_id}", status=404)


def open_handover(
    store: BotStore,
    user_id: int,
    *,
    reason: str,
    question: str = "",
    customer: str = "",
    now: datetime,
    acked: bool = False,
) -> tuple[Handover, bool]:
    """Ask for a person: a ``pending`` handover and ownership ``pending`` (bot → pending).

    When the customer already has an open handover, that one is returned unchanged.

    Args:
        store: the bot's database.
        user_id: the customer.
        reason: the trigger (``ask_for_person``, ``frustration``, ``llm_escalate``, ...).
        question: the customer's message that triggered it.
        customer: the customer's address (shown on the desk).
        now: the time.
        acked: the customer is being told "a manager will answer" with this change.

    Returns:
        ``(handover, created)``.
    """
    with store.transaction():
        existing = open_for(store, user_id)
        if existing is not None:
            return existing, False
        cur = store.conn.execute(
            "INSERT INTO handovers (user_id, customer, reason, status, question, created_at, "
            "acked_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                user_id,
                customer,
                reason,
                question[:MAX_QUESTION],
                iso(now),
                iso(now) if acked else None,
                iso(now),
            ),
        )
        _set_ownership(store, user_id, PENDING)
        created = get(store, int(cur.lastrowid or 0))
    assert created is not None  # noqa: S101 - just inserted
    return created, True


def take(store: BotStore, handover_id: int, *, assignee: str, now: datetime) -> Handover:
    """A person takes a handover: ``active`` with ``assignee``, ownership ``human``.

    Taking an ``active`` handover again re-assigns it (a colleague takes over).

    Raises:
        HandoverError: no such handover (404) or it is closed (409).
    """
    assignee = assignee.strip()[:MAX_ASSIGNEE]
    if not assignee:
        raise HandoverError("an assignee is required", status=422)
    with store.transaction():
        current = get(store, handover_id)
        if current is None:
            raise HandoverError(f"no handover {handover_id}", status=404)
        if not current.is_open:
            raise HandoverError(f"handover {handover_id} is {current.status}")
        store.conn.execute(
            "UPDATE handovers SET status = 'active', assignee = ?, "
            "taken_at = COALESCE(taken_at, ?), updated_at = ? WHERE id = ?",
            (assignee, iso(now), iso(now), handover_id),
        )
        _set_ownership(store, current.user_id, HUMAN)
        taken = get(store, handover_id)
    assert taken is not None  # noqa: S101 - exists in this transaction
    return taken


def take_customer(
    store: BotStore,
    user_id: int,
    *,
    assignee: str,
    reason: str,
    customer: str = "",
    now: datetime,
) -> Handover:
    """A person writes to the customer directly (an operator message, a WhatsApp echo): the
    open handover is taken, or one is opened and taken at once (bot → human)."""
    with store.transaction():
        current = open_for(store, user_id)
        if current is None:
            current, _ = open_handover(
                store, user_id, reason=reason, customer=customer, now=now, acked=True
            )
        if current.status == "active" and current.assignee == assignee.strip()[:MAX_ASSIGNEE]:
            return current
        return take(store, current.id, assignee=assignee, now=now)


def _close(
    store: BotStore, handover_id: int, *, status: str, by: str | None, now: datetime
) -> Handover:
    with store.transaction():
        current = get(store, handover_id)
        if current is None:
            raise HandoverError(f"no handover {handover_id}", status=404)
        if not current.is_open:
            raise HandoverError(f"handover {handover_id} is already {current.status}")
        store.conn.execute(
            "UPDATE handovers SET status = ?, closed_at = ?, closed_by = ?, updated_at = ? "
            "WHERE id = ?",
            (status, iso(now), (by or "")[:MAX_ASSIGNEE] or None, iso(now), handover_id),
        )
        _set_ownership(store, current.user_id, BOT)
        closed = get(store, handover_id)
    assert closed is not None  # noqa: S101 - exists in this transaction
    return closed


def resolve(store: BotStore, handover_id: int, *, by: str, now: datetime) -> Handover:
    """The person is done: ``resolved``, ownership back to ``bot``.

    Raises:
        HandoverError: no such handover (404) or it is closed already (409).
    """
    return _close(store, handover_id, status="resolved", by=by, now=now)


def expire(store: BotStore, handover_id: int, *, now: datetime) -> Handover:
    """Nobody took it in time: ``expired``, ownership back to ``bot``.

    Raises:
        HandoverError: no such handover (404) or it is closed already (409).
    """
    return _close(store, handover_id, status="expired", by="timeout", now=now)


def mark_acked(store: BotStore, handover_id: int, *, now: datetime) -> None:
    """Record that the customer was told a person will answer (once per handover)."""
    store.conn.execute(
        "UPDATE handovers SET acked_at = COALESCE(acked_at, ?), updated_at = ? WHERE id = ?",
        (iso(now), iso(now), handover_id),
    )


def mark_renotified(store: BotStore, handover_id: int, *, now: datetime) -> bool:
    """Record the one re-notification of a pending handover; ``False`` if it was done before."""
    cur = store.conn.execute(
        "UPDATE handovers SET renotified_at = ?, updated_at = ? "
        "WHERE id = ? AND status = 'pending' AND renotified_at IS NULL",
        (iso(now), iso(now), handover_id),
    )
    return cur.rowcount == 1


# ------------------------------------------------------------------------------ lifecycle


def set_conversation(store: BotStore, user_id: int, state: str, *, now: datetime) -> bool:
    """Open or close a customer's conversation (lifecycle; independent of ownership: closing
    never touches a handover). Returns whether it changed."""
    if state not in ("open", "closed"):
        raise ValueError(f"conversation state {state!r}")
    cur = store.conn.execute(
        "UPDATE users SET conversation = ?, conversation_changed_at = ? "
        "WHERE id = ? AND conversation != ?",
        (state, iso(now), user_id, state),
    )
    return cur.rowcount == 1


def close_idle(store: BotStore, *, idle_before: datetime, now: datetime) -> list[int]:
    """Close open conversations whose last activity is before ``idle_before``. A conversation
    with an open handover stays open (closing never loses a pending handover)."""
    with store.transaction():
        rows = store.conn.execute(
            "SELECT id FROM users WHERE conversation = 'open' AND last_seen <= ? "
            "AND ownership = 'bot' AND NOT EXISTS (SELECT 1 FROM handovers h "
            "WHERE h.user_id = users.id AND h.status IN ('pending', 'active'))",
            (iso(idle_before),),
        ).fetchall()
        ids = [int(r[0]) for r in rows]
        for user_id in ids:
            set_conversation(store, user_id, "closed", now=now)
    return ids
