"""Leader election among orchestrator replicas: what must run once (starting the ``auto_start``
bots of a cluster, and any job registered with :meth:`LeaderElector.on_elected`) runs on the
one replica that holds a PostgreSQL session advisory lock.

The lock belongs to one database session: a replica that dies (even ``kill -9``) loses its
connection and so the lock, and a follower that polls ``pg_try_advisory_lock`` every
``poll_s`` takes over. The leader checks its session on the same beat and steps down (its
callbacks are told) when the session is gone. No Kubernetes API is needed, so it works the
same outside a cluster. On SQLite there is one orchestrator, which is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[None]]


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    digest = hashlib.sha256(f"flotilla-leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def psycopg_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def replica_name() -> str:
    """This replica in logs and the audit log: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderElector:
    """``is_leader`` and callbacks for becoming and ceasing to be the leader."""

    def __init__(self, database_url: str, name: str = "orchestrator", poll_s: float = 1.0) -> None:
        self.url = database_url
        self.key = lock_key(name)
        self.poll_s = poll_s
        self.single = not database_url.startswith(("postgresql", "postgres:"))
        self.is_leader = False
        self.identity = replica_name()
        self._elected: list[Callback] = []
        self._demoted: list[Callback] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._stopping = False

    def on_elected(self, callback: Callback) -> None:
        """Run ``callback`` each time this replica becomes the leader."""
        self._elected.append(callback)

    def on_demoted(self, callback: Callback) -> None:
        """Run ``callback`` when this replica stops being the leader (session lost)."""
        self._demoted.append(callback)

    async def start(self) -> None:
        """Try to lead now (so a lone replica leads before it serves), then keep trying."""
        if self.single:
            await self._become(True)
            return
        await self._step()
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        """Give the lock up (closing the session releases it) and stop trying."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()
        self.is_leader = False

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.poll_s)
            await self._step()

    async def _step(self) -> None:
        try:
            if self.is_leader:
                # The lock lives in this session: a new session would not hold it.
                if self._conn is None or self._conn.closed:
                    raise ConnectionError("the leader's database session closed")
                await self._conn.execute("SELECT 1")  # the session, and the lock, are alive
                return
            conn = await self._connection()
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            row = await cur.fetchone()
            if row and row[0]:
                await self._become(True)
        except Exception as exc:  # the database went away: whatever we held is gone
            logger.warning("leader election: database session lost: %s", type(exc).__name__)
            await self._close()
            if self.is_leader:
                await self._become(False)

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg

            self._conn = await psycopg.AsyncConnection.connect(
                psycopg_url(self.url),
                autocommit=True,
                connect_timeout=5,
                application_name=f"flotilla-leader {self.identity}"[:63],
                # A dead peer is noticed in seconds, not after the kernel's two hours.
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
        return self._conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _become(self, leader: bool) -> None:
        self.is_leader = leader
        logger.info(
            "this replica is now the leader" if leader else "this replica is no longer leader",
            extra={"replica": self.identity},
        )
        for callback in self._elected if leader else self._demoted:
            try:
                await callback()
            except Exception:
                logger.exception("leader callback failed")
