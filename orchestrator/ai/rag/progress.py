"""Progress of knowledge-base builds, readable while a worker thread updates it.

A build (a document upload, a Q&A entry or a rebuild) goes through phases::

    queued → reading → waiting_for_model → embedding → writing → ready
                                                                → failed (with the reason)

``waiting_for_model`` only appears while the embedding model is still loading (the first
build after a start, while the orchestrator warms up). ``done`` / ``total`` count the passages
embedded so far; they only grow during a build and ``done`` reaches ``total`` before
``writing``. After a build the last one's duration and passage count are kept (``last``).

Every method takes one lock, so the worker thread updating a :class:`BuildProgress` and the
event loop reading :meth:`BuildProgress.snapshot` never see a half-updated state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

#: Phases in the order a build goes through them (``failed`` can follow any active phase).
PHASES = ("queued", "reading", "waiting_for_model", "embedding", "writing", "ready", "failed")
#: Phases during which a build is running (or waiting for its turn).
ACTIVE_PHASES = frozenset({"queued", "reading", "waiting_for_model", "embedding", "writing"})
#: What the admin UI says for each phase.
PHASE_LABELS = {
    "idle": "No build yet",
    "queued": "Waiting for the previous build to finish",
    "reading": "Reading documents",
    "waiting_for_model": "Waiting for the search model to load (first start)",
    "embedding": "Indexing passages",
    "writing": "Saving the index",
    "ready": "Ready",
    "failed": "Build failed",
}
_MAX_ERROR_CHARS = 500


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class BuildProgress:
    """The current or last build of one knowledge base (thread-safe).

    Args:
        last: the last finished build as stored in ``kb.json`` (``duration_s``, ``passages``,
            ``finished_at``), shown until this process finishes one.
        clock: monotonic seconds (tests may pass their own).
        wall: wall-clock seconds since the epoch, for ``started_at``.
    """

    def __init__(
        self,
        last: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._wall = wall
        self._phase = "ready" if last else "idle"
        self._document: str | None = None
        self._done = 0
        self._total = 0
        self._started: float | None = None
        self._started_at: str | None = None
        self._error: str | None = None
        self._queued = 0
        self._last: dict[str, Any] | None = dict(last) if last else None

    # -- the worker's side ------------------------------------------------------------------

    def enqueue(self) -> None:
        """A build was asked for and waits for its turn (the base's write lock)."""
        with self._lock:
            self._queued += 1
            if self._phase not in ACTIVE_PHASES:
                self._phase = "queued"
                self._error = None

    def start(self, document: str | None, *, queued: bool = False) -> None:
        """A build starts (``queued``: it was counted by :meth:`enqueue`)."""
        with self._lock:
            if queued:
                self._queued = max(0, self._queued - 1)
            self._phase = "reading"
            self._document = document
            self._done = self._total = 0
            self._started = self._clock()
            self._started_at = _iso(self._wall())
            self._error = None

    def set_phase(self, phase: str) -> None:
        """Move to ``phase`` (one of :data:`ACTIVE_PHASES`)."""
        if phase not in ACTIVE_PHASES:
            raise ValueError(f"not an active build phase: {phase!r}")
        with self._lock:
            self._phase = phase

    def set_total(self, total: int) -> None:
        """``total`` passages are about to be embedded (``done`` starts at 0)."""
        with self._lock:
            self._phase = "embedding"
            self._total = max(0, int(total))
            self._done = 0

    def advance(self, n: int) -> None:
        """``n`` more passages were embedded (never past ``total``)."""
        with self._lock:
            self._done = min(self._total, self._done + max(0, int(n)))

    def summary(self) -> dict[str, Any]:
        """What :meth:`finish` will keep as ``last`` (also stored in ``kb.json``)."""
        with self._lock:
            elapsed = self._clock() - self._started if self._started is not None else 0.0
            return {
                "duration_s": round(max(0.0, elapsed), 3),
                "passages": self._total,
                "finished_at": _iso(self._wall()),
            }

    def finish(self, last: dict[str, Any] | None = None) -> None:
        """The build is written: ``ready``, keeping ``last`` (or a fresh :meth:`summary`)."""
        last = dict(last) if last is not None else self.summary()
        with self._lock:
            self._done = self._total
            self._last = last
            self._phase = "queued" if self._queued else "ready"
            self._started = None

    def fail(self, message: str, *, queued: bool = False) -> None:
        """The build stopped: ``failed`` with ``message`` (shown to the owner, keep it safe).

        ``queued``: a build counted by :meth:`enqueue` that failed before it started.
        """
        with self._lock:
            if queued:
                self._queued = max(0, self._queued - 1)
            self._error = str(message)[:_MAX_ERROR_CHARS] or "the build failed"
            self._phase = "failed"
            self._started = None

    # -- the readers' side ------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether a build is running or waiting for its turn."""
        with self._lock:
            return self._phase in ACTIVE_PHASES or self._queued > 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: ``phase``, ``label``, ``building``, ``done``, ``total``,
        ``document``, ``started_at``, ``elapsed_s``, ``error``, ``queued`` and ``last``."""
        with self._lock:
            building = self._phase in ACTIVE_PHASES or self._queued > 0
            elapsed = (
                round(max(0.0, self._clock() - self._started), 1)
                if self._started is not None and building
                else None
            )
            return {
                "phase": self._phase,
                "label": PHASE_LABELS.get(self._phase, self._phase),
                "building": building,
                "done": self._done,
                "total": self._total,
                "document": self._document,
                "started_at": self._started_at,
                "elapsed_s": elapsed,
                "error": self._error if self._phase == "failed" else None,
                "queued": self._queued,
                "last": dict(self._last) if self._last else None,
            }


def idle_snapshot(last: dict[str, Any] | None = None) -> dict[str, Any]:
    """The snapshot of a base no build has touched since the start."""
    return BuildProgress(last).snapshot()
