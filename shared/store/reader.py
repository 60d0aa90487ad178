"""Read-only access to a bot's SQLite file for other processes (the orchestrator's views).

The bot is its database's single writer; readers open the file with ``mode=ro`` and never
migrate it, so they also read files a bot wrote before its last upgrade (a bot that has not run
since): before schema version :data:`~shared.store.schema.IDENTITIES_VERSION` a customer's
identities are the channel-named columns of ``users``.

Conversations are grouped per customer (``user_id``), not per address: a customer who wrote
first with a BSUID and later with a phone is one conversation. Messages without a customer row
(an operator's message to an unknown address) are grouped by address.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.store.jobs import followup_from_row
from shared.store.outbox import operator_replies_since
from shared.store.schema import HANDOVERS_VERSION, IDENTITIES_VERSION, JOBS_VERSION
from shared.store.sqlite import iso

logger = logging.getLogger(__name__)

#: Old ``users`` columns and the identity scheme each one became.
_LEGACY_COLUMNS = {
    "phone": "phone",
    "bsuid": "bsuid",
    "parent_bsuid": "parent_bsuid",
    "username": "username",
    "telegram_id": "telegram_user",
}
_GROUP = "COALESCE('u' || user_id, 'c' || customer)"


class BotReader:
    """One read-only connection to a bot's database (use :meth:`open` as a context manager)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.version = int(conn.execute("PRAGMA user_version").fetchone()[0])

    @classmethod
    @contextmanager
    def open(cls, path: str | Path) -> Iterator[BotReader | None]:
        """Yield a reader, or ``None`` when the file does not exist (yet) or is unreadable."""
        path = Path(path)
        if not path.exists():
            yield None
            return
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        except sqlite3.Error:
            logger.warning("bot database not readable", extra={"path": str(path)})
            yield None
            return
        try:
            conn.row_factory = sqlite3.Row
            try:
                conn.execute("SELECT 1 FROM messages LIMIT 1")
                reader = cls(conn)
            except sqlite3.Error:
                logger.warning("bot database not readable", extra={"path": str(path)})
                yield None
                return
            yield reader
        finally:
            conn.close()

    # -- customers --------------------------------------------------------------------------

    def identities(self, user_id: int) -> dict[str, str]:
        """A customer's identities (``{scheme: value}``)."""
        if self.version >= IDENTITIES_VERSION:
            rows = self.conn.execute(
                "SELECT scheme, value FROM identities WHERE user_id = ? ORDER BY id", (user_id,)
            ).fetchall()
            return {r["scheme"]: r["value"] for r in rows}
        row = self.conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            return {}
        keys = set(row.keys())
        return {
            scheme: str(row[column])
            for column, scheme in _LEGACY_COLUMNS.items()
            if column in keys and row[column]
        }

    def customer(self, user_id: int) -> dict[str, Any] | None:
        """A customer's row (name, funnel state, times) with its identities."""
        row = self.conn.execute(
            "SELECT id, profile_name, funnel_state, segment, first_seen, last_seen "
            "FROM users WHERE id = ?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        ids = self.identities(user_id)
        return {
            "id": row["id"],
            "name": row["profile_name"] or ids.get("username") or None,
            "identities": ids,
            "funnel_state": row["funnel_state"],
            "segment": row["segment"],
            "first_seen": row["first_seen"],
            "last_seen": row["last_seen"],
        }

    def user_id_of(self, customer_key: str) -> int | None:
        """The customer an address belongs to (from its messages, else its identities)."""
        row = self.conn.execute(
            "SELECT user_id FROM messages WHERE customer = ? AND user_id IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (customer_key,),
        ).fetchone()
        if row is not None:
            return int(row["user_id"])
        if self.version >= IDENTITIES_VERSION:
            row = self.conn.execute(
                "SELECT user_id FROM identities WHERE value = ? ORDER BY user_id LIMIT 1",
                (customer_key,),
            ).fetchone()
            return int(row["user_id"]) if row else None
        return None

    # -- conversations ----------------------------------------------------------------------

    def conversations(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """Customers with their last message, newest first (one entry per customer)."""
        rows = self.conn.execute(
            f"SELECT {_GROUP} AS grp, COUNT(*) AS count, MAX(id) AS last_id, "  # noqa: S608 - constant
            "SUM(CASE WHEN direction = 'in' THEN 1 ELSE 0 END) AS inbound "
            "FROM messages GROUP BY grp ORDER BY last_id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        out = []
        for r in rows:
            last = self.conn.execute(
                "SELECT * FROM messages WHERE id = ?", (r["last_id"],)
            ).fetchone()
            user = self.customer(last["user_id"]) if last["user_id"] is not None else None
            out.append(
                {
                    "customer_key": last["customer"],
                    "name": user["name"] if user else None,
                    "phone": user["identities"].get("phone") if user else None,
                    "identities": user["identities"] if user else {},
                    "funnel_state": user["funnel_state"] if user else None,
                    "count": r["count"],
                    "inbound": r["inbound"],
                    "last_text": last["text"],
                    "last_type": last["type"],
                    "last_direction": last["direction"],
                    "last_status": last["status"],
                    "last_at": last["created_at"],
                    "flags": self.flags(last["user_id"], last["customer"]),
                    "conversation": self.lifecycle(last["user_id"]),
                }
            )
        return out

    def lifecycle(self, user_id: int | None) -> str:
        """``open`` or ``closed`` (closed after the bot's idle time, reopened by the customer's
        next message; files from before the handoff migration are all ``open``)."""
        if user_id is None or self.version < HANDOVERS_VERSION:
            return "open"
        row = self.conn.execute(
            "SELECT conversation FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return str(row["conversation"]) if row is not None else "open"

    def flags(self, user_id: int | None, customer_key: str) -> list[str]:
        """What needs an operator's eye about a customer (the Conversations list shows it).

        ``rate_limited``: their latest message was over the bot's rate limit (its inbox row's
        note, ``rate_limited:notice``/``rate_limited:silent``), so the bot did not answer it.
        ``unanswered``: nothing was sent to them (or every send failed) since their latest
        message; also while a reply is still on its way.
        ``with_person``: a person has the conversation or was asked for (ownership ``human``
        or ``pending``): the bot does not answer them (see the Desk).
        """
        arg: int | str
        if user_id is None:
            where, arg = "user_id IS NULL AND customer = ?", customer_key
        else:
            where, arg = "user_id = ?", user_id
        last_in = self.conn.execute(
            f"SELECT id, provider_message_id FROM messages WHERE {where} "  # noqa: S608 - fixed
            "AND direction = 'in' ORDER BY id DESC LIMIT 1",
            (arg,),
        ).fetchone()
        if last_in is None:
            return []
        flags: list[str] = []
        if last_in["provider_message_id"]:
            try:
                note = self.conn.execute(
                    "SELECT last_error FROM inbox WHERE provider_message_id = ?",
                    (last_in["provider_message_id"],),
                ).fetchone()
            except sqlite3.Error:  # a database from before the inbox
                note = None
            if note is not None and str(note["last_error"] or "").startswith("rate_limited"):
                flags.append("rate_limited")
        answered = self.conn.execute(
            f"SELECT 1 FROM messages WHERE {where} AND direction = 'out' "  # noqa: S608 - fixed
            "AND id > ? AND COALESCE(status, '') != 'failed' LIMIT 1",
            (arg, last_in["id"]),
        ).fetchone()
        if answered is None:
            flags.append("unanswered")
        if user_id is not None and self.version >= HANDOVERS_VERSION:
            owner = self.conn.execute(
                "SELECT ownership FROM users WHERE id = ?", (user_id,)
            ).fetchone()
            if owner is not None and owner["ownership"] != "bot":
                flags.append("with_person")
        return flags

    def conversation(
        self, customer_key: str, *, limit: int = 500
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """One customer (if known) and their last ``limit`` messages, oldest first, under
        every address they used."""
        user_id = self.user_id_of(customer_key)
        args: tuple[Any, ...]
        if user_id is None:
            where, args = "customer = ?", (customer_key,)
        else:
            where, args = "user_id = ? OR (user_id IS NULL AND customer = ?)", (
                user_id,
                customer_key,
            )
        rows = self.conn.execute(
            f"SELECT * FROM (SELECT * FROM messages WHERE {where} "  # noqa: S608 - fixed clauses
            "ORDER BY id DESC LIMIT ?) ORDER BY id",
            (*args, limit),
        ).fetchall()
        customer = None
        user = self.customer(user_id) if user_id is not None else None
        if user is not None:
            ids = user["identities"]
            customer = {
                "customer_key": customer_key,
                "name": user["name"],
                "identities": ids,
                "phone": ids.get("phone"),
                "bsuid": ids.get("bsuid"),
                "username": ids.get("username"),
                "telegram_id": ids.get("telegram_user"),
                "funnel_state": user["funnel_state"],
                "segment": user["segment"],
                "first_seen": user["first_seen"],
                "last_seen": user["last_seen"],
            }
        messages = [
            {
                "id": r["id"],
                "direction": r["direction"],
                "type": r["type"],
                "text": r["text"],
                "status": r["status"],
                "error": r["error"],
                "provider_message_id": r["provider_message_id"],
                "created_at": r["created_at"],
                "updated_at": r["updated_at"],
            }
            for r in rows
        ]
        return customer, messages

    def followups(self, customer_key: str) -> dict[str, Any] | None:
        """A customer's follow-up sequences (newest last), opt-out and pending touches, or
        ``None`` for an unknown customer. A file older than the follow-ups has none."""
        user_id = self.user_id_of(customer_key)
        if user_id is None:
            return None
        out: dict[str, Any] = {"sequence": None, "sequences": [], "opted_out": None}
        if self.version < JOBS_VERSION:
            return out
        rows = self.conn.execute(
            "SELECT * FROM followups WHERE user_id = ? ORDER BY id", (user_id,)
        ).fetchall()
        sequences = [followup_from_row(r).to_dict() for r in rows]
        out["sequences"] = sequences
        out["sequence"] = sequences[-1] if sequences else None
        opt = self.conn.execute(
            "SELECT reason, at FROM opt_outs WHERE user_id = ?", (user_id,)
        ).fetchone()
        out["opted_out"] = {"reason": opt["reason"], "at": opt["at"]} if opt else None
        return out

    def count_messages_since(self, since: datetime) -> dict[str, int]:
        """Messages in and out since ``since``."""
        rows = self.conn.execute(
            "SELECT direction, COUNT(*) AS n FROM messages WHERE created_at >= ? "
            "GROUP BY direction",
            (iso(since),),
        ).fetchall()
        counts = {"in": 0, "out": 0}
        for r in rows:
            counts[r["direction"]] = int(r["n"])
        return counts


def list_conversations(path: str | Path, *, limit: int = 200) -> list[dict[str, Any]]:
    """Customers of one bot with their last message, newest first (``[]`` without a file)."""
    with BotReader.open(path) as reader:
        if reader is None:
            return []
        try:
            return reader.conversations(limit=limit)
        except sqlite3.Error:
            logger.exception("reading conversations failed", extra={"path": str(path)})
            return []


def conversation_messages(
    path: str | Path, customer_key: str, *, limit: int = 500
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One customer (if known) and their last ``limit`` messages, oldest first."""
    with BotReader.open(path) as reader:
        if reader is None:
            return None, []
        try:
            return reader.conversation(customer_key, limit=limit)
        except sqlite3.Error:
            logger.exception("reading a conversation failed", extra={"path": str(path)})
            return None, []


def customer_followups(path: str | Path, customer_key: str) -> dict[str, Any] | None:
    """A customer's follow-up state (see :meth:`BotReader.followups`); ``None`` when the
    customer (or the file) is unknown."""
    with BotReader.open(path) as reader:
        if reader is None:
            return None
        try:
            return reader.followups(customer_key)
        except sqlite3.Error:
            logger.exception("reading follow-ups failed", extra={"path": str(path)})
            return None


def count_messages_since(path: str | Path, since: datetime) -> dict[str, int]:
    """Messages in and out since ``since`` (zero when the database does not exist)."""
    with BotReader.open(path) as reader:
        if reader is None:
            return {"in": 0, "out": 0}
        try:
            return reader.count_messages_since(since)
        except sqlite3.Error:
            return {"in": 0, "out": 0}


# -- handovers (issue 13) ---------------------------------------------------------------------

_HANDOVER_COLUMNS = (
    "id, user_id, customer, reason, status, assignee, question, desk_topic_id, created_at, "
    "taken_at, closed_at, closed_by, acked_at, renotified_at"
)


def list_handovers(
    path: str | Path, *, statuses: tuple[str, ...], limit: int = 200
) -> list[dict[str, Any]]:
    """One bot's handovers with one of ``statuses``, newest first, each with its customer's
    name and identities (``[]`` without a file or before the handovers migration)."""
    with BotReader.open(path) as reader:
        if reader is None or reader.version < HANDOVERS_VERSION or not statuses:
            return []
        marks = ", ".join("?" for _ in statuses)
        try:
            rows = reader.conn.execute(
                f"SELECT {_HANDOVER_COLUMNS} FROM handovers "  # noqa: S608 - constants only
                f"WHERE status IN ({marks}) ORDER BY id DESC LIMIT ?",
                (*statuses, limit),
            ).fetchall()
            out = []
            for r in rows:
                item = dict(r)
                user = reader.customer(int(r["user_id"]))
                item["customer_name"] = user["name"] if user else None
                item["identities"] = user["identities"] if user else {}
                item["customer_key"] = _customer_key(reader, int(r["user_id"]), r["customer"])
                out.append(item)
            return out
        except sqlite3.Error:
            logger.exception("reading handovers failed", extra={"path": str(path)})
            return []


def _customer_key(reader: BotReader, user_id: int, fallback: str) -> str:
    """The address the Conversations view knows the customer by (their latest message's)."""
    row = reader.conn.execute(
        "SELECT customer FROM messages WHERE user_id = ? ORDER BY id DESC LIMIT 1", (user_id,)
    ).fetchone()
    return str(row["customer"]) if row is not None else fallback


def get_handover(path: str | Path, handover_id: int) -> dict[str, Any] | None:
    """One handover (``None`` when the bot has no such handover)."""
    with BotReader.open(path) as reader:
        if reader is None or reader.version < HANDOVERS_VERSION:
            return None
        try:
            row = reader.conn.execute(
                f"SELECT {_HANDOVER_COLUMNS} FROM handovers WHERE id = ?",  # noqa: S608 - const
                (handover_id,),
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        item = dict(row)
        item["customer_key"] = _customer_key(reader, int(row["user_id"]), row["customer"])
        return item


def count_handovers(path: str | Path) -> dict[str, int]:
    """How many handovers are ``pending`` and ``active`` (zero without a file)."""
    counts = {"pending": 0, "active": 0}
    with BotReader.open(path) as reader:
        if reader is None or reader.version < HANDOVERS_VERSION:
            return counts
        try:
            rows = reader.conn.execute(
                "SELECT status, COUNT(*) AS n FROM handovers "
                "WHERE status IN ('pending', 'active') GROUP BY status"
            ).fetchall()
        except sqlite3.Error:
            return counts
        for r in rows:
            counts[str(r["status"])] = int(r["n"])
    return counts



def handover_replies(path: str | Path, handover_id: int) -> list[str]:
    """The texts a person sent the handover's customer while it was open (outbox rows of
    origin ``operator`` between its opening and closing), oldest first; ``[]`` when unknown."""
    with BotReader.open(path) as reader:
        if reader is None or reader.version < HANDOVERS_VERSION:
            return []
        try:
            h = reader.conn.execute(
                "SELECT user_id, created_at, closed_at FROM handovers WHERE id = ?",
                (handover_id,),
            ).fetchone()
            if h is None:
                return []
            rows = operator_replies_since(reader.conn, h["user_id"], h["created_at"])
        except sqlite3.Error:
            logger.exception("reading handover replies failed", extra={"path": str(path)})
            return []
    out: list[str] = []
    for r in rows:
        if h["closed_at"] is not None and str(r["created_at"]) > str(h["closed_at"]):
            continue
        try:
            text = json.loads(r["reply"]).get("text")
        except (ValueError, AttributeError):
            continue
        if isinstance(text, str) and text.strip():
            out.append(text.strip())
    return out
