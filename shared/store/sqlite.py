"""A bot's own SQLite database: customers, messages, events, inbox, outbox, dead letters.

The outbox's statements (exactly-once sending) live in :mod:`shared.store.outbox`.

One :class:`BotStore` per bot process, used from the event-loop thread only (SQLite calls take
microseconds in WAL mode with ``synchronous=NORMAL``; keeping one connection on one thread makes
the bot the database's single writer, as the architecture requires). Multi-statement changes run
inside :meth:`BotStore.transaction`; nested ``transaction()`` blocks join the outer one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.channels.base import (
    MOVABLE_SCHEMES,
    CustomerRef,
    IdentityView,
    InboundMessage,
    lookup_order,
)
from shared.routing.types import ConversationState
from shared.store.codec import customer_from_json, customer_to_json, iso, parse_iso, utcnow
from shared.store.jobs import JobStore
from shared.store.outbox import OutboxRow, OutboxStore, parts_from_json, parts_to_json
from shared.store.schema import migrate

BUSY_TIMEOUT_MS = 5000

# Delivery statuses only move forward. ``failed`` ranks below ``delivered``: Meta may report a
# failure on one device and a delivery on another, and a delivery is the stronger fact.
STATUS_RANK: dict[str, int] = {"pending": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}

_UPDATE_STATUS_SQL = (
    "UPDATE messages SET status = ?, error = COALESCE(?, error), "
    "error_code = COALESCE(?, error_code), updated_at = ? "
    "WHERE provider_message_id = ? AND direction = 'out' AND "
    "(CASE COALESCE(status, '') WHEN 'read' THEN 4 WHEN 'delivered' THEN 3 "
    "WHEN 'failed' THEN 2 WHEN 'sent' THEN 1 ELSE 0 END) < ?"
)

__all__ = [
    "STATUS_RANK",
    "BotStore",
    "InboxRow",
    "OutboxRow",
    "User",
    "customer_from_json",
    "customer_to_json",
    "inbound_from_json",
    "inbound_to_json",
    "iso",
    "parse_iso",
    "parts_from_json",
    "parts_to_json",
    "utcnow",
]


def inbound_to_json(message: InboundMessage) -> str:
    """Serialise an inbound message for the inbox.

    Built field by field: ``dataclasses.asdict`` deep-copies the provider's ``raw`` dict, which
    cost more than the rest of the acknowledgement path together.
    """
    c = message.customer
    data = {
        "provider_message_id": message.provider_message_id,
        "customer": {"identities": c.identities, "profile_name": c.profile_name},
        "kind": message.kind,
        "text": message.text,
        "payload": message.payload,
        "media_id": message.media_id,
        "media_mime": message.media_mime,
        "location": message.location,
        "context_message_id": message.context_message_id,
        "timestamp": message.timestamp,
        "raw": message.raw,
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def inbound_from_json(text: str) -> InboundMessage:
    """Inverse of :func:`inbound_to_json`."""
    data = json.loads(text)
    data["customer"] = CustomerRef.from_dict(data["customer"])
    return InboundMessage(**data)


@dataclass(slots=True)
class User(IdentityView):
    """One customer row with its identities (``{scheme: value}``, see :class:`CustomerRef`)."""

    id: int
    identities: dict[str, str]
    profile_name: str | None
    funnel_state: str | None
    segment: str | None
    answers: dict[str, Any]
    data: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    last_inbound_at: datetime | None
    rate_notice_at: datetime | None

    def ref(self) -> CustomerRef:
        """Return every identifier of this customer as a :class:`CustomerRef`."""
        return CustomerRef(self.identities, profile_name=self.profile_name)


@dataclass(slots=True)
class InboxRow:
    """One received message waiting for (or done with) handling."""

    id: int
    provider_message_id: str
    customer: str
    message: InboundMessage
    state: str
    attempts: int
    request_id: str | None
    received_at: datetime


class BotStore(OutboxStore, JobStore):
    """The per-bot SQLite database.

    Args:
        conn: an autocommit connection (use :meth:`open`).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._depth = 0

    @classmethod
    def open(cls, path: str | Path) -> BotStore:
        """Open (creating if needed) and migrate a bot database.

        Args:
            path: the SQLite file, e.g. ``data/wa_sales_support-bot.db``; ``:memory:`` for tests.

        Returns:
            A ready store.
        """
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(path),
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
        return cls(conn)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one ``BEGIN IMMEDIATE`` transaction (joins an outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    # -- inbox ------------------------------------------------------------------------------

    def inbox_insert(
        self,
        message: InboundMessage,
        *,
        customer: str,
        request_id: str | None = None,
        now: datetime | None = None,
    ) -> int | None:
        """Persist a received message unless its provider id is already there.

        Insert-if-absent through the UNIQUE constraint (no check-then-insert race).

        Returns:
            The new inbox id, or ``None`` for a duplicate delivery.
        """
        cur = self.conn.execute(
            "INSERT INTO inbox (provider_message_id, customer, raw, request_id, received_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider_message_id) DO NOTHING",
            (
                message.provider_message_id,
                customer,
                inbound_to_json(message),
                request_id,
                iso(now or utcnow()),
            ),
        )
        if cur.rowcount != 1:
            return None
        return cur.lastrowid

    def _inbox_row(self, row: sqlite3.Row) -> InboxRow:
        return InboxRow(
            id=row["id"],
            provider_message_id=row["provider_message_id"],
            customer=row["customer"],
            message=inbound_from_json(row["raw"]),
            state=row["state"],
            attempts=row["attempts"],
            request_id=row["request_id"],
            received_at=parse_iso(row["received_at"]) or utcnow(),
        )

    def inbox_get(self, inbox_id: int) -> InboxRow | None:
        """Return one inbox row."""
        row = self.conn.execute("SELECT * FROM inbox WHERE id = ?", (inbox_id,)).fetchone()
        return self._inbox_row(row) if row else None

    def inbox_open(self) -> list[InboxRow]:
        """Return rows received or being processed (to replay on start), oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM inbox WHERE state IN ('received', 'processing') ORDER BY id"
        ).fetchall()
        return [self._inbox_row(r) for r in rows]

    def inbox_mark_processing(self, inbox_id: int) -> None:
        """Mark a row as being handled and count the attempt."""
        self.conn.execute(
            "UPDATE inbox SET state = 'processing', attempts = attempts + 1 WHERE id = ?",
            (inbox_id,),
        )

    def inbox_requeue(self, inbox_id: int) -> None:
        """Put a row whose handling failed back to ``received`` (tried again later)."""
        self.conn.execute("UPDATE inbox SET state = 'received' WHERE id = ?", (inbox_id,))

    def inbox_finish(
        self,
        inbox_id: int,
        *,
        state: str = "done",
        note: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Close an inbox row as ``done`` or ``failed`` with an optional note."""
        self.conn.execute(
            "UPDATE inbox SET state = ?, last_error = ?, processed_at = ? WHERE id = ?",
            (state, note, iso(now or utcnow()), inbox_id),
        )

    def inbox_state(self, inbox_id: int) -> tuple[str, str | None] | None:
        """Return ``(state, last_error)`` of an inbox row."""
        row = self.conn.execute(
            "SELECT state, last_error FROM inbox WHERE id = ?", (inbox_id,)
        ).fetchone()
        return (row["state"], row["last_error"]) if row else None

    def count_inbox_open(self) -> int:
        """Return how many inbox rows are not handled yet."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM inbox WHERE state IN ('received', 'processing')"
            ).fetchone()[0]
        )

    # -- dead letters -----------------------------------------------------------------------

    def add_dead_letter(
        self, raw: bytes | str, reason: str, *, request_id: str | None = None
    ) -> int:
        """Keep a body the bot accepted but could not interpret."""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        cur = self.conn.execute(
            "INSERT INTO dead_letters (raw, reason, request_id, ts) VALUES (?, ?, ?, ?)",
            (text, reason, request_id, iso(utcnow())),
        )
        return int(cur.lastrowid or 0)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Return every dead letter, oldest first."""
        rows = self.conn.execute("SELECT * FROM dead_letters ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    # -- users ------------------------------------------------------------------------------

    def _user(self, row: sqlite3.Row) -> User:
        return User(
            id=row["id"],
            identities=self.identities_of(row["id"]),
            profile_name=row["profile_name"],
            funnel_state=row["funnel_state"],
            segment=row["segment"],
            answers=json.loads(row["answers"] or "{}"),
            data=json.loads(row["data"] or "{}"),
            first_seen=parse_iso(row["first_seen"]) or utcnow(),
            last_seen=parse_iso(row["last_seen"]) or utcnow(),
            last_inbound_at=parse_iso(row["last_inbound_at"]),
            rate_notice_at=parse_iso(row["rate_notice_at"]),
        )

    def identities_of(self, user_id: int) -> dict[str, str]:
        """Return a customer's identities (``{scheme: value}``)."""
        rows = self.conn.execute(
            "SELECT scheme, value FROM identities WHERE user_id = ? ORDER BY id", (user_id,)
        ).fetchall()
        return {r["scheme"]: r["value"] for r in rows}

    def get_user(self, user_id: int) -> User | None:
        """Return a customer by row id."""
        row = self.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return self._user(row) if row else None

    def _holders(self, identities: dict[str, str]) -> dict[str, int]:
        """``{scheme: user id}`` for the identities some customer already holds."""
        if not identities:
            return {}
        pairs = list(identities.items())
        where = " OR ".join("(scheme = ? AND value = ?)" for _ in pairs)
        rows = self.conn.execute(
            f"SELECT scheme, user_id FROM identities WHERE {where}",  # noqa: S608 - placeholders only
            [item for pair in pairs for item in pair],
        ).fetchall()
        return {r["scheme"]: int(r["user_id"]) for r in rows}

    def _find_id(self, identities: dict[str, str]) -> tuple[int | None, dict[str, int]]:
        holders = self._holders(identities)
        # A movable identity (a username) finds a customer only for a reference without a
        # fixed one: Telegram user 2 now called "anna" is not user 1 who was "anna" before.
        fixed = any(scheme not in MOVABLE_SCHEMES for scheme in identities)
        for scheme in lookup_order(holders):
            if fixed and scheme in MOVABLE_SCHEMES:
                break
            return holders[scheme], holders
        return None, holders

    def find_user(self, customer: CustomerRef) -> User | None:
        """Find a customer by any of its identities, strongest scheme first (BSUID, phone,
        Telegram user, other schemes); a username or parent BSUID only when the reference has
        nothing else."""
        user_id, _ = self._find_id(customer.identities)
        return self.get_user(user_id) if user_id is not None else None

    def find_user_by_address(self, address: str) -> User | None:
        """Find a customer by any single identifier (phone, BSUID, chat id, username)."""
        rows = self.conn.execute(
            "SELECT scheme, user_id FROM identities WHERE value = ? ORDER BY user_id", (address,)
        ).fetchall()
        holders = {r["scheme"]: int(r["user_id"]) for r in rows}
        for scheme in lookup_order(holders):
            return self.get_user(holders[scheme])
        return None

    def resolve_user(self, customer: CustomerRef, *, now: datetime | None = None) -> User:
        """Find or create the customer, adding the identities it did not have yet.

        A fixed identity (phone, BSUID, Telegram user...) is added when the customer has none
        of that scheme and no other customer holds the value: two customers are never merged.
        A movable one (username, parent BSUID) replaces the customer's previous value and is
        taken from whoever held it before.

        Args:
            customer: every identifier the channel gave.
            now: the time of contact (``last_seen``).

        Returns:
            The customer's row after the update.

        Raises:
            ValueError: the reference carries no identifier at all.
        """
        stamp = iso(now or utcnow())
        wanted = customer.identities
        if not wanted:
            raise ValueError("customer has no identifier")
        with self.transaction():
            user_id, holders = self._find_id(wanted)
            if user_id is None:
                cur = self.conn.execute(
                    "INSERT INTO users (profile_name, first_seen, last_seen) VALUES (?, ?, ?)",
                    (customer.profile_name, stamp, stamp),
                )
                user_id = int(cur.lastrowid or 0)
                known: dict[str, str] = {}
            else:
                self.conn.execute(
                    "UPDATE users SET last_seen = ?, profile_name = COALESCE(?, profile_name) "
                    "WHERE id = ?",
                    (stamp, customer.profile_name, user_id),
                )
                known = self.identities_of(user_id)
            for scheme, value in wanted.items():
                if known.get(scheme) == value:
                    continue
                if scheme in MOVABLE_SCHEMES:
                    # Handles change over time: keep the latest, with its latest holder.
                    self.conn.execute(
                        "DELETE FROM identities WHERE (scheme = ? AND value = ?) "
                        "OR (scheme = ? AND user_id = ?)",
                        (scheme, value, scheme, user_id),
                    )
                elif scheme in known or scheme in holders:
                    continue  # the customer has one already, or another customer holds it
                self.conn.execute(
                    "INSERT INTO identities (user_id, scheme, value) VALUES (?, ?, ?)",
                    (user_id, scheme, value),
                )
        user = self.get_user(user_id)
        assert user is not None  # noqa: S101 - just written in this transaction
        return user

    def touch_inbound(
        self, user_id: int, *, now: datetime | None = None, sent_at: datetime | None = None
    ) -> None:
        """Record that the customer wrote (opens the 24-hour window).

        ``sent_at`` is when the customer sent it (the provider's timestamp): a delivery Meta
        retried for hours must not reopen a window that has closed. The window never moves back.
        """
        stamp = iso(now or utcnow())
        sent = iso(min(sent_at, now or utcnow())) if sent_at else stamp
        self.conn.execute(
            "UPDATE users SET last_inbound_at = MAX(COALESCE(last_inbound_at, ''), ?), "
            "last_seen = ? WHERE id = ?",
            (sent, stamp, user_id),
        )

    #: Customer columns a decision may set (:meth:`update_user`).
    USER_FIELDS = frozenset({"rate_notice_at"})

    def update_user(self, user_id: int, fields: dict[str, Any]) -> None:
        """Set customer columns a decision changed (datetimes are stored as ISO text).

        Raises:
            ValueError: a field is not in :attr:`USER_FIELDS`.
        """
        unknown = set(fields) - self.USER_FIELDS
        if unknown:
            raise ValueError(f"not a customer field a decision may set: {sorted(unknown)}")
        if not fields:
            return
        names = sorted(fields)
        values = [iso(v) if isinstance(v, datetime) else v for v in (fields[n] for n in names)]
        self.conn.execute(
            f"UPDATE users SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",  # noqa: S608 - names from USER_FIELDS
            (*values, user_id),
        )

    def set_rate_notice(self, user_id: int, *, now: datetime | None = None) -> None:
        """Record when the customer was told about the rate limit."""
        self.conn.execute(
            "UPDATE users SET rate_notice_at = ? WHERE id = ?", (iso(now or utcnow()), user_id)
        )

    def load_state(self, user: User) -> ConversationState:
        """Return what routing may read about the customer."""
        rows = self.conn.execute(
            "SELECT step, answer FROM custom_discovery WHERE user_id = ? ORDER BY id", (user.id,)
        ).fetchall()
        return ConversationState(
            funnel_state=user.funnel_state,
            segment=user.segment,
            answers={str(k): str(v) for k, v in user.answers.items()},
            discovery={r["step"]: r["answer"] for r in rows},
            profile_name=user.profile_name,
            data=dict(user.data),
        )

    def save_state(
        self, user_id: int, state: ConversationState, *, now: datetime | None = None
    ) -> None:
        """Persist routing's view of the customer (funnel state, segment, answers, discovery)."""
        stamp = iso(now or utcnow())
        with self.transaction():
            self.conn.execute(
                "UPDATE users SET funnel_state = ?, segment = ?, answers = ?, data = ? "
                "WHERE id = ?",
                (
                    state.funnel_state,
                    state.segment,
                    json.dumps(state.answers, ensure_ascii=False),
                    json.dumps(state.data, ensure_ascii=False, default=str),
                    user_id,
                ),
            )
            for step, answer in state.discovery.items():
                self.conn.execute(
                    "INSERT INTO custom_discovery (user_id, step, answer, ts) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (user_id, step) DO UPDATE SET answer = excluded.answer, "
                    "ts = excluded.ts WHERE answer != excluded.answer",
                    (user_id, step, answer, stamp),
                )
            if not state.discovery:
                self.conn.execute("DELETE FROM custom_discovery WHERE user_id = ?", (user_id,))

    # -- events -----------------------------------------------------------------------------

    def add_event(
        self,
        user_id: int | None,
        type_: str,
        data: dict[str, Any] | None = None,
        *,
        now: datetime | None = None,
    ) -> int:
        """Record an event (quiz answer, segment, blocked, rate_limited...)."""
        cur = self.conn.execute(
            "INSERT INTO events (user_id, type, data, ts) VALUES (?, ?, ?, ?)",
            (
                user_id,
                type_,
                json.dumps(data or {}, ensure_ascii=False, default=str),
                iso(now or utcnow()),
            ),
        )
        return int(cur.lastrowid or 0)

    def events(self, user_id: int | None = None) -> list[dict[str, Any]]:
        """Return events (of one customer, or all), oldest first."""
        if user_id is None:
            rows = self.conn.execute("SELECT * FROM events ORDER BY id").fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM events WHERE user_id = ? ORDER BY id", (user_id,)
            ).fetchall()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]

    # -- messages ---------------------------------------------------------------------------

    def add_message(
        self,
        *,
        direction: str,
        customer: str,
        type_: str,
        text: str = "",
        user_id: int | None = None,
        provider_message_id: str | None = None,
        status: str | None = None,
        error: str | None = None,
        error_code: int | None = None,
        outbox_id: int | None = None,
        rate_counted: bool = True,
        now: datetime | None = None,
    ) -> int:
        """Record one inbound (``in``) or outbound (``out``) message.

        ``rate_counted=False`` marks an inbound message the rate limit does not count (a press
        of the bot's own buttons, an answer to a funnel step).
        """
        stamp = iso(now or utcnow())
        cur = self.conn.execute(
            "INSERT INTO messages (user_id, customer, direction, provider_message_id, type, text, "
            "status, error, error_code, outbox_id, rate_counted, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user_id,
                customer,
                direction,
                provider_message_id,
                type_,
                text,
                status,
                error,
                error_code,
                outbox_id,
                int(rate_counted),
                stamp,
                stamp,
            ),
        )
        return int(cur.lastrowid or 0)

    def update_message_status(
        self,
        provider_message_id: str,
        status: str,
        *,
        error: str | None = None,
        error_code: int | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Move an outbound message's delivery status forward (never backwards).

        Args:
            provider_message_id: the id the provider gave the message.
            status: ``sent``, ``delivered``, ``read`` or ``failed``.
            error: provider error text (``failed``).
            error_code: provider error code (``failed``).
            now: update time.

        Returns:
            True when a row changed; False for an unknown id, an unknown status or a status
            that would move backwards (``delivered`` after ``read``).
        """
        rank = STATUS_RANK.get(status)
        if rank is None:
            return False
        cur = self.conn.execute(
            _UPDATE_STATUS_SQL,
            (status, error, error_code, iso(now or utcnow()), provider_message_id, rank),
        )
        return cur.rowcount > 0

    def message_by_provider_id(self, provider_message_id: str) -> dict[str, Any] | None:
        """Return the message row with this provider id."""
        row = self.conn.execute(
            "SELECT * FROM messages WHERE provider_message_id = ? ORDER BY id LIMIT 1",
            (provider_message_id,),
        ).fetchone()
        return dict(row) if row else None

    def messages(self, user_id: int | None = None) -> list[dict[str, Any]]:
        """Return messages (of one customer, or all), oldest first."""
        if user_id is None:
            rows = self.conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM messages WHERE user_id = ? ORDER BY id", (user_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def history(self, user_id: int, *, limit: int = 20) -> list[dict[str, str]]:
        """Return the customer's last ``limit`` text messages for the LLM, oldest first."""
        rows = self.conn.execute(
            "SELECT direction, text FROM messages WHERE user_id = ? AND text != '' "
            "AND COALESCE(status, '') != 'failed' "
            "ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()
        return [
            {"role": "user" if r["direction"] == "in" else "assistant", "text": r["text"]}
            for r in reversed(rows)
        ]

    def count_inbound_since(self, user_id: int, since: datetime) -> int:
        """Return how many rate-counted messages the customer sent since ``since``."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM messages WHERE user_id = ? AND direction = 'in' "
                "AND rate_counted = 1 AND created_at >= ?",
                (user_id, iso(since)),
            ).fetchone()[0]
        )

    # -- pagination continuations -----------------------------------------------------------

    def save_continuation(self, token: str, reply: dict[str, Any], *, user_id: int | None) -> None:
        """Keep the rest of a paginated reply until the customer taps "More"."""
        self.conn.execute(
            "INSERT OR REPLACE INTO continuations (token, user_id, reply, created_at) "
            "VALUES (?, ?, ?, ?)",
            (token, user_id, json.dumps(reply, ensure_ascii=False), iso(utcnow())),
        )

    def get_continuation(self, token: str) -> dict[str, Any] | None:
        """Return the rest of a paginated reply (kept: the customer may tap "More" twice)."""
        row = self.conn.execute(
            "SELECT reply FROM continuations WHERE token = ?", (token,)
        ).fetchone()
        return json.loads(row["reply"]) if row else None
