"""The outbox's exactly-once bookkeeping in the bot's SQLite database.

:class:`OutboxStore` holds every statement on the ``outbox`` table: queueing a reply, claiming a
row for one attempt (``pending`` → ``sending``, committed before the provider call), recording
each part the provider accepted as soon as it answers, a provider's confirmation of a part (a
status carrying the row's ``ob:{id}:{part}`` tag), settling (``sent``/``pending``/``failed``) and
the recovery of rows a crash left in ``sending``. :class:`~shared.store.BotStore` inherits it;
the worker that drives it is :mod:`shared.botkit.outbox`.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.channels.base import CustomerRef
from shared.store.codec import customer_from_json, customer_to_json, iso, parse_iso, utcnow


@dataclass(slots=True)
class OutboxRow:
    """One reply to send (one provider call, possibly several provider messages)."""

    id: int
    user_id: int | None
    customer: str
    recipient: CustomerRef
    reply: dict[str, Any]
    reply_to: str | None
    state: str
    attempts: int
    next_attempt_at: datetime
    provider_message_ids: list[str] = field(default_factory=list)
    last_error: str | None = None
    error_code: int | None = None
    source_inbox_id: int | None = None
    origin: str = "bot"
    request_id: str | None = None
    #: parts the provider accepted so far (part index → provider id); see
    #: :meth:`BotStore.outbox_record_part`.
    parts_sent: dict[int, str] = field(default_factory=dict)


def parts_from_json(text: str | None) -> dict[int, str]:
    """Decode an outbox ``parts_sent`` column (``{"0": "wamid..."}``) to ``{0: "wamid..."}``."""
    if not text:
        return {}
    data = json.loads(text)
    return {int(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def operator_replies_since(
    conn: sqlite3.Connection, user_id: int, since: str
) -> list[sqlite3.Row]:
    """Outbox rows (``reply``, ``created_at``) a person wrote to ``user_id`` from ``since`` on,
    oldest first (a read-only connection is enough: the handover replies of the Desk)."""
    return conn.execute(
        "SELECT reply, created_at FROM outbox WHERE user_id = ? AND origin = 'operator' "
        "AND created_at >= ? ORDER BY id",
        (user_id, since),
    ).fetchall()


def parts_to_json(parts: dict[int, str]) -> str:
    """Inverse of :func:`parts_from_json`."""
    return json.dumps({str(k): v for k, v in sorted(parts.items())})


class OutboxStore:
    """The outbox part of :class:`~shared.store.BotStore` (a mixin: it uses the store's
    connection, :meth:`~shared.store.BotStore.transaction` and
    :meth:`~shared.store.BotStore.add_message`)."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
            """See :meth:`shared.store.BotStore.transaction`."""
            raise NotImplementedError

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
            """See :meth:`shared.store.BotStore.add_message`."""
            raise NotImplementedError

    def outbox_add(
        self,
        *,
        customer: CustomerRef,
        reply: dict[str, Any],
        user_id: int | None = None,
        reply_to: str | None = None,
        source_inbox_id: int | None = None,
        origin: str = "bot",
        request_id: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Queue one reply for sending.

        Args:
            customer: who to send to (the adapter picks phone or BSUID).
            reply: the serialised channel-neutral reply (``reply_to_dict``).
            user_id: the customer's row, when known.
            reply_to: provider id of the message this one answers (WhatsApp ``context``).
            source_inbox_id: the inbox row that caused it.
            origin: ``bot``, ``operator``, ``system``.
            request_id: for logs.
            now: creation time (also the first attempt time).

        Returns:
            The outbox id.
        """
        stamp = iso(now or utcnow())
        cur = self.conn.execute(
            "INSERT INTO outbox (user_id, customer, recipient, reply, reply_to, next_attempt_at, "
            "source_inbox_id, origin, request_id, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user_id,
                customer.address(),
                customer_to_json(customer),
                json.dumps(reply, ensure_ascii=False),
                reply_to,
                stamp,
                source_inbox_id,
                origin,
                request_id,
                stamp,
                stamp,
            ),
        )
        return int(cur.lastrowid or 0)

    def _outbox_row(self, row: sqlite3.Row) -> OutboxRow:
        return OutboxRow(
            id=row["id"],
            user_id=row["user_id"],
            customer=row["customer"],
            recipient=customer_from_json(row["recipient"]),
            reply=json.loads(row["reply"]),
            reply_to=row["reply_to"],
            state=row["state"],
            attempts=row["attempts"],
            next_attempt_at=parse_iso(row["next_attempt_at"]) or utcnow(),
            provider_message_ids=json.loads(row["provider_message_ids"] or "[]"),
            last_error=row["last_error"],
            error_code=row["error_code"],
            source_inbox_id=row["source_inbox_id"],
            origin=row["origin"],
            request_id=row["request_id"],
            parts_sent=parts_from_json(row["parts_sent"]),
        )

    def outbox_get(self, outbox_id: int) -> OutboxRow | None:
        """Return one outbox row."""
        row = self.conn.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        return self._outbox_row(row) if row else None

    def outbox_all(self) -> list[OutboxRow]:
        """Return every outbox row, oldest first (tests, admin views)."""
        rows = self.conn.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [self._outbox_row(r) for r in rows]

    def outbox_due(self, *, now: datetime | None = None, limit: int = 32) -> list[OutboxRow]:
        """Return pending rows that may be sent now: per customer only the oldest open row.

        A customer's replies go out in order: while an earlier row of the same customer waits
        for a retry, later rows wait too.
        """
        rows = self.conn.execute(
            "SELECT * FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= ? "
            "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.customer = o.customer "
            "AND p.id < o.id AND p.state IN ('pending', 'sending')) ORDER BY o.id LIMIT ?",
            (iso(now or utcnow()), limit),
        ).fetchall()
        return [self._outbox_row(r) for r in rows]

    def outbox_next_attempt(self) -> datetime | None:
        """Return the earliest ``next_attempt_at`` among pending rows."""
        row = self.conn.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'"
        ).fetchone()
        return parse_iso(row[0]) if row else None

    def outbox_mark_sending(self, outbox_id: int, *, now: datetime | None = None) -> bool:
        """Claim a pending row for one send attempt (committed before the provider call).

        Returns:
            False when the row was not pending any more.
        """
        cur = self.conn.execute(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? "
            "WHERE id = ? AND state = 'pending'",
            (iso(now or utcnow()), outbox_id),
        )
        return cur.rowcount == 1

    def outbox_mark_sent(
        self,
        outbox_id: int,
        provider_ids: list[str],
        *,
        parts: dict[int, str] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record a successful send and the provider ids it produced (audio kept inline in the
        reply is dropped: it was only needed to send).

        Args:
            outbox_id: the row.
            provider_ids: every part's provider id, in part order.
            parts: the same as ``{part index: provider id}`` (defaults to ``provider_ids``
                numbered from 0).
            now: completion time.
        """
        stamp = iso(now or utcnow())
        if parts is None:
            parts = dict(enumerate(provider_ids))
        self.conn.execute(
            "UPDATE outbox SET state = 'sent', provider_message_ids = ?, parts_sent = ?, "
            "parts_total = ?, sent_at = ?, updated_at = ?, last_error = NULL, "
            "reply = CASE WHEN instr(reply, '\"audio_b64\"') > 0 "
            "THEN json_remove(reply, '$.audio_b64') ELSE reply END WHERE id = ?",
            (json.dumps(provider_ids), parts_to_json(parts), len(parts), stamp, stamp, outbox_id),
        )

    def outbox_record_part(
        self,
        outbox_id: int,
        part: int,
        provider_id: str,
        *,
        total: int | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Remember that the provider accepted one part of an open (unsent) row.

        Called as soon as the provider answers (the outbox commits each part before it asks for
        the next) and when a status webhook confirms a part (see :meth:`outbox_confirm_part`).
        A later attempt passes the recorded parts as ``skip_parts`` and sends only the rest.

        Args:
            outbox_id: the row.
            part: the part's index in the rendered reply (0 first).
            provider_id: the id the provider gave that part.
            total: how many parts the reply rendered to, when known.
            now: update time.

        Returns:
            False when the row is unknown or no longer open (``sent``/``failed``).
        """
        cur = self.conn.execute(
            "UPDATE outbox SET parts_sent = json_set(COALESCE(parts_sent, '{}'), ?, ?), "
            "parts_total = COALESCE(?, parts_total), updated_at = ? "
            "WHERE id = ? AND state IN ('pending', 'sending')",
            (f'$."{int(part)}"', provider_id, total, iso(now or utcnow()), outbox_id),
        )
        return cur.rowcount == 1

    def outbox_parts(self, outbox_id: int) -> dict[int, str]:
        """Return the parts recorded on a row (``{part index: provider id}``)."""
        row = self.conn.execute(
            "SELECT parts_sent FROM outbox WHERE id = ?", (outbox_id,)
        ).fetchone()
        return parts_from_json(row["parts_sent"]) if row else {}

    def outbox_confirm_part(
        self,
        outbox_id: int,
        part: int,
        provider_id: str,
        *,
        kind: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Apply a provider's confirmation (a status carrying the row's tag) of one part.

        The part is recorded on the row, its outbound ``messages`` row is added if missing, and
        a ``pending`` row (typically one held after a crash, see :meth:`outbox_recover`) becomes
        due now, so the outbox settles it without sending the confirmed part again.

        Args:
            outbox_id: the row named by the tag.
            part: the part index named by the tag.
            provider_id: the provider id the status reports.
            kind: the message type for the ``messages`` row (default: the reply's type).
            now: update time.

        Returns:
            True when the row was open and the part is now recorded; False for an unknown row
            or one already settled (then the confirmation changes nothing).
        """
        moment = now or utcnow()
        stamp = iso(moment)
        with self.transaction():
            row = self.conn.execute(
                "SELECT customer, user_id, reply, state FROM outbox WHERE id = ?", (outbox_id,)
            ).fetchone()
            if row is None or row["state"] not in ("pending", "sending"):
                return False
            self.outbox_record_part(outbox_id, part, provider_id, now=moment)
            if row["state"] == "pending":
                self.conn.execute(
                    "UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                    (stamp, f"provider confirmed part {part}; settling", outbox_id),
                )
            reply = json.loads(row["reply"])
            self._add_out_message_once(
                customer=row["customer"],
                user_id=row["user_id"],
                kind=kind or str(reply.get("type") or "text"),
                text=str(reply.get("text") or "") if part == 0 else "",
                provider_message_id=provider_id,
                outbox_id=outbox_id,
                now=moment,
            )
        return True

    def _add_out_message_once(
        self,
        *,
        customer: str,
        user_id: int | None,
        kind: str,
        text: str,
        provider_message_id: str,
        outbox_id: int,
        now: datetime,
    ) -> None:
        exists = self.conn.execute(
            "SELECT 1 FROM messages WHERE provider_message_id = ? AND direction = 'out' LIMIT 1",
            (provider_message_id,),
        ).fetchone()
        if exists is None:
            self.add_message(
                direction="out",
                customer=customer,
                type_=kind,
                text=text,
                user_id=user_id,
                provider_message_id=provider_message_id,
                status="sent",
                outbox_id=outbox_id,
                now=now,
            )

    def add_sent_parts(
        self,
        *,
        outbox_id: int,
        customer: str,
        user_id: int | None,
        kind: str,
        text: str,
        parts: dict[int, str],
        now: datetime | None = None,
    ) -> None:
        """Add the outbound ``messages`` rows of a sent reply, skipping ids already recorded
        (a status webhook may have added them first); part 0 carries the text. A reply that
        rendered to nothing still gets one row (without a provider id)."""
        moment = now or utcnow()
        if not parts:
            self.add_message(
                direction="out",
                customer=customer,
                type_=kind,
                text=text,
                user_id=user_id,
                status="sent",
                outbox_id=outbox_id,
                now=moment,
            )
            return
        for index in sorted(parts):
            self._add_out_message_once(
                customer=customer,
                user_id=user_id,
                kind=kind,
                text=text if index == 0 else "",
                provider_message_id=parts[index],
                outbox_id=outbox_id,
                now=moment,
            )

    def outbox_retry_later(
        self, outbox_id: int, *, at: datetime, error: str, error_code: int | None = None
    ) -> None:
        """Put a row back to pending for another attempt at ``at``."""
        self.conn.execute(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = ?, "
            "error_code = ?, updated_at = ? WHERE id = ?",
            (iso(at), error, error_code, iso(utcnow()), outbox_id),
        )

    def outbox_mark_failed(
        self,
        outbox_id: int,
        *,
        error: str,
        error_code: int | None = None,
        now: datetime | None = None,
    ) -> None:
        """Give up on a row (permanent error or too many attempts); audio kept inline in the
        reply (``audio_b64``, see :func:`shared.channels.base.reply_to_dict`) is dropped."""
        self.conn.execute(
            "UPDATE outbox SET state = 'failed', last_error = ?, error_code = ?, updated_at = ?, "
            "reply = CASE WHEN instr(reply, '\"audio_b64\"') > 0 "
            "THEN json_remove(reply, '$.audio_b64') ELSE reply END WHERE id = ?",
            (error, error_code, iso(now or utcnow()), outbox_id),
        )

    def outbox_recover(
        self, *, now: datetime | None = None, hold: timedelta = timedelta(0)
    ) -> tuple[int, int]:
        """Settle rows left in ``sending`` by a crash (call once on start, before the webhook
        listens).

        A row in ``sending`` means the process died between claiming the row and recording the
        outcome. Each part the provider accepted was recorded (``parts_sent``) as soon as the
        provider answered, so:

        * every part recorded (or the provider ids already stored) → ``sent``;
        * otherwise the row goes back to ``pending``, keeping its recorded parts, due at
          ``now + hold``. The provider may have accepted the part in flight without our knowing:
          providers offer no idempotency key, but WhatsApp echoes ``biz_opaque_callback_data``
          and Twilio calls the per-message ``StatusCallback``, both carrying the row's tag
          (``ob:{id}:{part}``). A status with the tag records the part and makes the row due at
          once (:meth:`outbox_confirm_part`); the next attempt sends only the parts still
          missing — nothing, when the provider confirmed them all.
        * If no confirmation comes within ``hold``, the missing parts are sent again:
          at-least-once stays the last resort, because marking the row failed would silently
          lose replies after every crash during a send.

        ``hold`` is per channel (``ChannelSpec.confirm_hold``): 30 s for WhatsApp and SMS by
        default (``delivery_confirm_hold_s``). **Telegram has no delivery confirmation at all,
        so its hold is 0**: a Telegram part that was in flight when the process died is sent
        again at once (a possible double, as before; parts recorded earlier are not resent).

        Args:
            now: the start time.
            hold: how long an unconfirmed row waits for the provider's confirmation.

        Returns:
            ``(resent, settled)``: rows put back to pending, rows marked sent.
        """
        moment = now or utcnow()
        stamp = iso(moment)
        hold_s = max(0.0, hold.total_seconds())
        if hold_s > 0:
            note = (
                f"interrupted during send; waiting up to {hold_s:g} s for the provider's "
                "confirmation before resending"
            )
        else:
            note = "interrupted during send; resending (no provider confirmation to wait for)"
        resent = settled = 0
        with self.transaction():
            rows = self.conn.execute(
                "SELECT * FROM outbox WHERE state = 'sending' ORDER BY id"
            ).fetchall()
            for row in rows:
                parts = parts_from_json(row["parts_sent"])
                total = row["parts_total"]
                stored = json.loads(row["provider_message_ids"] or "[]")
                if stored or (total is not None and parts and len(parts) >= total):
                    ids = stored or [parts[i] for i in sorted(parts)]
                    self.outbox_mark_sent(row["id"], ids, parts=parts or None, now=moment)
                    reply = json.loads(row["reply"])
                    self.add_sent_parts(
                        outbox_id=row["id"],
                        customer=row["customer"],
                        user_id=row["user_id"],
                        kind=str(reply.get("type") or "text"),
                        text=str(reply.get("text") or ""),
                        parts=parts or dict(enumerate(ids)),
                        now=moment,
                    )
                    settled += 1
                    continue
                self.conn.execute(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?, updated_at = ?, "
                    "last_error = ? WHERE id = ?",
                    (iso(moment + timedelta(seconds=hold_s)), stamp, note, row["id"]),
                )
                resent += 1
        return resent, settled

    def outbox_id_for_request(self, request_id: str) -> int | None:
        """The first outbox row queued under ``request_id`` (a scheduler job's proof of send,
        see :meth:`shared.store.jobs.JobStore.jobs_recover`)."""
        row = self.conn.execute(
            "SELECT id FROM outbox WHERE request_id = ? ORDER BY id LIMIT 1", (request_id,)
        ).fetchone()
        return int(row["id"]) if row else None

    def unanswered_count(self, inbox_id: int, customer: str, recipient: str) -> int:
        """How many messages of the customer the bot has not answered, counting inbox row
        ``inbox_id`` (being answered now): the customer's inbox rows (``customer``) after the
        last one answered (the newest outbox row to ``recipient`` that answers an inbox row),
        i.e. earlier ones handled without a reply plus newer ones still waiting. Without an
        earlier answer only ``inbox_id`` and newer rows count. Reply quoting uses it.

        The scan is a rowid range (at most the last 1,000 inbox rows), the outbox lookup uses
        its ``(customer, id)`` index.
        """
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM inbox WHERE customer = ? AND id > MAX(COALESCE("
                "(SELECT MAX(source_inbox_id) FROM outbox WHERE customer = ?), ? - 1), ? - 1000)",
                (customer, recipient, inbox_id, inbox_id),
            ).fetchone()[0]
        )

    def count_outbox_open(self) -> int:
        """Return how many rows wait to be sent."""
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
            ).fetchone()[0]
        )
