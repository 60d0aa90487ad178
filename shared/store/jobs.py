"""The scheduler's and the follow-up sequences' bookkeeping in the bot's SQLite database.

:class:`JobStore` holds every statement on ``jobs`` (the durable scheduler, driven by
:mod:`shared.botkit.scheduler`), ``followups`` (one row per follow-up sequence of a customer,
driven by :mod:`shared.botkit.followups`) and ``opt_outs`` (customers who asked for no proactive
messages). :class:`~shared.store.BotStore` inherits it.

A job's life: ``pending`` → (claimed, committed) ``running`` → ``done`` / ``skipped`` /
``failed``, or back to ``pending`` (a retry after a failure, a deferral, a crash recovered on the
next start). A job that sends commits its outbox row in the same transaction as ``done``; the
outbox row carries ``request_id = "job:{id}"`` (see :func:`job_request_id`), which is how
:meth:`JobStore.jobs_recover` proves whether a job left ``running`` by a crash already sent.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.store.codec import iso, parse_iso, utcnow

JOB_STATUSES = ("pending", "running", "done", "failed", "skipped")
#: How much of an error text a job keeps.
JOB_ERROR_MAX = 300


def job_request_id(job_id: int) -> str:
    """The request id a job's action runs under (its outbox rows carry it)."""
    return f"job:{job_id}"


@dataclass(slots=True)
class Job:
    """One scheduled job."""

    id: int
    kind: str
    due_at: datetime
    payload: dict[str, Any]
    status: str
    attempts: int
    last_error: str | None = None
    dedupe_key: str | None = None
    user_id: int | None = None
    outbox_id: int | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (API, tests)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "due_at": iso(self.due_at),
            "payload": self.payload,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "dedupe_key": self.dedupe_key,
            "user_id": self.user_id,
            "outbox_id": self.outbox_id,
        }


@dataclass(slots=True)
class FollowupRow:
    """One follow-up sequence of one customer."""

    id: int
    user_id: int
    status: str
    touches_sent: int
    touches_total: int
    next_due_at: datetime | None
    stop_reason: str | None
    started_at: datetime
    ended_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the conversations API)."""
        return {
            "id": self.id,
            "status": self.status,
            "active": self.status == "active",
            "touches_sent": self.touches_sent,
            "touches_total": self.touches_total,
            "next_due_at": iso(self.next_due_at) if self.next_due_at else None,
            "stop_reason": self.stop_reason,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at) if self.ended_at else None,
        }


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        due_at=parse_iso(row["due_at"]) or utcnow(),
        payload=json.loads(row["payload"] or "{}"),
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        dedupe_key=row["dedupe_key"],
        user_id=row["user_id"],
        outbox_id=row["outbox_id"],
        created_at=parse_iso(row["created_at"]),
        finished_at=parse_iso(row["finished_at"]),
    )


def followup_from_row(row: sqlite3.Row) -> FollowupRow:
    """Decode a ``followups`` row (also used by the read-only reader)."""
    return FollowupRow(
        id=row["id"],
        user_id=row["user_id"],
        status=row["status"],
        touches_sent=row["touches_sent"],
        touches_total=row["touches_total"],
        next_due_at=parse_iso(row["next_due_at"]),
        stop_reason=row["stop_reason"],
        started_at=parse_iso(row["started_at"]) or utcnow(),
        ended_at=parse_iso(row["ended_at"]),
    )


class JobStore:
    """The jobs / follow-ups / opt-outs part of :class:`~shared.store.BotStore` (a mixin)."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
            """See :meth:`shared.store.BotStore.transaction`."""
            raise NotImplementedError

        def outbox_id_for_request(self, request_id: str) -> int | None:
            """See :meth:`shared.store.outbox.OutboxStore.outbox_id_for_request`."""
            raise NotImplementedError

    # -- jobs -------------------------------------------------------------------------------

    def job_add(
        self,
        kind: str,
        due_at: datetime,
        payload: dict[str, Any] | None = None,
        *,
        dedupe_key: str | None = None,
        user_id: int | None = None,
        now: datetime | None = None,
    ) -> int | None:
        """Create a job; with ``dedupe_key``, at most once ever.

        Returns:
            The new job's id, or ``None`` when a job with ``dedupe_key`` exists already.
        """
        stamp = iso(now or utcnow())
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO jobs (kind, due_at, payload, dedupe_key, user_id, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                kind,
                iso(due_at),
                json.dumps(payload or {}, ensure_ascii=False),
                dedupe_key,
                user_id,
                stamp,
                stamp,
            ),
        )
        return int(cur.lastrowid) if cur.rowcount == 1 and cur.lastrowid else None

    def job_get(self, job_id: int) -> Job | None:
        """Return one job."""
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def job_by_key(self, dedupe_key: str) -> Job | None:
        """Return the job created under ``dedupe_key``."""
        row = self.conn.execute(
            "SELECT * FROM jobs WHERE dedupe_key = ?", (dedupe_key,)
        ).fetchone()
        return _job(row) if row else None

    def jobs(
        self, *, kind: str | None = None, user_id: int | None = None, status: str | None = None
    ) -> list[Job]:
        """Return jobs, oldest first, optionally filtered."""
        sql = "SELECT * FROM jobs WHERE 1 = 1"
        args: list[Any] = []
        for column, value in (("kind", kind), ("user_id", user_id), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return [_job(r) for r in self.conn.execute(sql + " ORDER BY id", args).fetchall()]

    def jobs_due(self, *, now: datetime | None = None, limit: int = 100) -> list[Job]:
        """Return pending jobs due at ``now``, earliest first."""
        rows = self.conn.execute(
            "SELECT * FROM jobs WHERE status = 'pending' AND due_at <= ? "
            "ORDER BY due_at, id LIMIT ?",
            (iso(now or utcnow()), limit),
        ).fetchall()
        return [_job(r) for r in rows]

    def job_next_due(self) -> datetime | None:
        """Return the earliest due time among pending jobs."""
        row = self.conn.execute("SELECT MIN(due_at) FROM jobs WHERE status = 'pending'").fetchone()
        return parse_iso(row[0]) if row else None

    def job_claim(self, job_id: int, *, now: datetime | None = None) -> bool:
        """Claim a pending job for one run (``running``, attempts + 1), committed at once.

        Returns:
            False when the job was not pending (someone else has it, or it is finished).
        """
        cur = self.conn.execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, updated_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (iso(now or utcnow()), job_id),
        )
        return cur.rowcount == 1

    def job_finish(
        self,
        job_id: int,
        status: str,
        *,
        error: str | None = None,
        outbox_id: int | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Settle a running job as ``done``, ``skipped`` (with the reason) or ``failed``."""
        if status not in ("done", "skipped", "failed"):
            raise ValueError(f"not a final job status: {status!r}")
        stamp = iso(now or utcnow())
        cur = self.conn.execute(
            "UPDATE jobs SET status = ?, last_error = ?, outbox_id = COALESCE(?, outbox_id), "
            "finished_at = ?, updated_at = ? WHERE id = ? AND status = 'running'",
            (status, error[:JOB_ERROR_MAX] if error else None, outbox_id, stamp, stamp, job_id),
        )
        return cur.rowcount == 1

    def job_retry(
        self, job_id: int, *, at: datetime, error: str, now: datetime | None = None
    ) -> None:
        """Put a running job back to ``pending`` for another attempt at ``at``."""
        self.conn.execute(
            "UPDATE jobs SET status = 'pending', due_at = ?, last_error = ?, updated_at = ? "
            "WHERE id = ? AND status = 'running'",
            (iso(at), error[:JOB_ERROR_MAX], iso(now or utcnow()), job_id),
        )

    def job_defer(
        self, job_id: int, *, until: datetime, reason: str, now: datetime | None = None
    ) -> None:
        """Move a running job to ``until`` without counting the run as an attempt."""
        self.conn.execute(
            "UPDATE jobs SET status = 'pending', due_at = ?, last_error = ?, "
            "attempts = MAX(0, attempts - 1), updated_at = ? WHERE id = ? AND status = 'running'",
            (iso(until), reason[:JOB_ERROR_MAX], iso(now or utcnow()), job_id),
        )

    def job_cancel(self, job_id: int, reason: str, *, now: datetime | None = None) -> bool:
        """Mark a pending job ``skipped`` (its purpose is gone, e.g. the sequence stopped)."""
        stamp = iso(now or utcnow())
        cur = self.conn.execute(
            "UPDATE jobs SET status = 'skipped', last_error = ?, finished_at = ?, updated_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (reason[:JOB_ERROR_MAX], stamp, stamp, job_id),
        )
        return cur.rowcount == 1

    def jobs_recover(
        self, *, max_attempts: dict[str, int], default_max: int, now: datetime | None = None
    ) -> dict[str, int]:
        """Settle jobs a crash left ``running`` (call once on start, before the loop).

        A job's effects and its ``done`` mark are one transaction, so a ``running`` job has
        normally sent nothing. The outbox is the proof: when an outbox row carries the job's
        request id (an action that committed its send on its own), the job is marked ``done``
        without running again. Otherwise it goes back to ``pending`` (due now) unless its
        attempts are used up (a job that kills the bot each time): then ``failed``.

        Returns:
            Counts ``{"requeued", "done", "failed"}``.
        """
        stamp_dt = now or utcnow()
        stamp = iso(stamp_dt)
        counts = {"requeued": 0, "done": 0, "failed": 0}
        with self.transaction():
            rows = self.conn.execute(
                "SELECT * FROM jobs WHERE status = 'running' ORDER BY id"
            ).fetchall()
            for row in rows:
                job = _job(row)
                sent = self.outbox_id_for_request(job_request_id(job.id))
                if sent is not None:
                    self.job_finish(
                        job.id,
                        "done",
                        outbox_id=sent,
                        now=stamp_dt,
                        error="recovered after a crash: its outbox row exists",
                    )
                    counts["done"] += 1
                elif job.attempts >= max_attempts.get(job.kind, default_max):
                    self.job_finish(
                        job.id,
                        "failed",
                        now=stamp_dt,
                        error=f"interrupted by a crash {job.attempts} times",
                    )
                    counts["failed"] += 1
                else:
                    self.conn.execute(
                        "UPDATE jobs SET status = 'pending', last_error = ?, updated_at = ? "
                        "WHERE id = ?",
                        ("interrupted by a crash; run again", stamp, job.id),
                    )
                    counts["requeued"] += 1
        return counts

    def count_jobs(self, status: str | None = None) -> int:
        """Return how many jobs there are (in ``status``)."""
        if status is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        row = self.conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,))
        return int(row.fetchone()[0])

    # -- follow-up sequences -----------------------------------------------------------------

    def followup_active(self, user_id: int) -> FollowupRow | None:
        """Return the customer's active sequence."""
        row = self.conn.execute(
            "SELECT * FROM followups WHERE user_id = ? AND status = 'active'", (user_id,)
        ).fetchone()
        return followup_from_row(row) if row else None

    def followup_get(self, sequence_id: int) -> FollowupRow | None:
        """Return one sequence."""
        row = self.conn.execute("SELECT * FROM followups WHERE id = ?", (sequence_id,)).fetchone()
        return followup_from_row(row) if row else None

    def followup_latest(self, user_id: int) -> FollowupRow | None:
        """Return the customer's newest sequence (active or ended)."""
        row = self.conn.execute(
            "SELECT * FROM followups WHERE user_id = ? ORDER BY id DESC LIMIT 1", (user_id,)
        ).fetchone()
        return followup_from_row(row) if row else None

    def followups_of(self, user_id: int) -> list[FollowupRow]:
        """Return every sequence of a customer, oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM followups WHERE user_id = ? ORDER BY id", (user_id,)
        ).fetchall()
        return [followup_from_row(r) for r in rows]

    def followup_start(
        self, user_id: int, *, total: int, next_due_at: datetime, now: datetime | None = None
    ) -> int:
        """Start a sequence (the caller stopped any active one first)."""
        stamp = iso(now or utcnow())
        cur = self.conn.execute(
            "INSERT INTO followups (user_id, touches_total, next_due_at, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (user_id, total, iso(next_due_at), stamp, stamp),
        )
        return int(cur.lastrowid or 0)

    def followup_touched(
        self,
        sequence_id: int,
        touch: int,
        *,
        next_due_at: datetime | None,
        now: datetime | None = None,
    ) -> None:
        """Record touch number ``touch`` as sent; ``next_due_at=None`` completes the sequence."""
        stamp = iso(now or utcnow())
        if next_due_at is None:
            self.conn.execute(
                "UPDATE followups SET touches_sent = ?, next_due_at = NULL, status = 'completed', "
                "stop_reason = 'completed', ended_at = ?, updated_at = ? "
                "WHERE id = ? AND status = 'active'",
                (touch, stamp, stamp, sequence_id),
            )
            return
        self.conn.execute(
            "UPDATE followups SET touches_sent = ?, next_due_at = ?, updated_at = ? "
            "WHERE id = ? AND status = 'active'",
            (touch, iso(next_due_at), stamp, sequence_id),
        )

    def followup_reschedule(self, sequence_id: int, next_due_at: datetime) -> None:
        """Record a touch's new due time (deferred by quiet hours)."""
        self.conn.execute(
            "UPDATE followups SET next_due_at = ? WHERE id = ? AND status = 'active'",
            (iso(next_due_at), sequence_id),
        )

    def followup_stop(self, sequence_id: int, reason: str, *, now: datetime | None = None) -> bool:
        """End an active sequence with ``reason`` and skip its pending touch jobs.

        Returns:
            False when the sequence was not active.
        """
        moment = now or utcnow()
        stamp = iso(moment)
        with self.transaction():
            cur = self.conn.execute(
                "UPDATE followups SET status = 'stopped', stop_reason = ?, next_due_at = NULL, "
                "ended_at = ?, updated_at = ? WHERE id = ? AND status = 'active'",
                (reason, stamp, stamp, sequence_id),
            )
            if cur.rowcount != 1:
                return False
            self.conn.execute(
                "UPDATE jobs SET status = 'skipped', last_error = ?, finished_at = ?, "
                "updated_at = ? WHERE status = 'pending' AND kind = 'followup' "
                "AND json_extract(payload, '$.sequence_id') = ?",
                (f"sequence stopped: {reason}", stamp, stamp, sequence_id),
            )
        return True

    # -- opt-outs ---------------------------------------------------------------------------

    def opt_out(
        self, user_id: int, reason: str, *, text: str = "", now: datetime | None = None
    ) -> None:
        """Record that the customer wants no proactive messages (kept on a repeat)."""
        self.conn.execute(
            "INSERT OR IGNORE INTO opt_outs (user_id, reason, text, at) VALUES (?, ?, ?, ?)",
            (user_id, reason, text[:200], iso(now or utcnow())),
        )

    def opted_out(self, user_id: int) -> dict[str, Any] | None:
        """Return the customer's opt-out (reason, text, at) or ``None``."""
        row = self.conn.execute(
            "SELECT reason, text, at FROM opt_outs WHERE user_id = ?", (user_id,)
        ).fetchone()
        return dict(row) if row else None
