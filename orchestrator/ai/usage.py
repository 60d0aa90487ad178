"""Token usage per bot per day: an in-memory counter with hooks for persistence."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from orchestrator.ai.llm.base import Usage

logger = logging.getLogger(__name__)


@dataclass
class UsageRecord:
    """One generation's usage, as passed to hooks."""

    bot_id: str
    day: date
    backend: str
    model: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class DailyUsage:
    """Totals of one bot on one day (UTC)."""

    bot_id: str
    day: date
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["day"] = self.day.isoformat()
        data["total_tokens"] = self.total_tokens
        return data


UsageHook = Callable[[UsageRecord], None | Awaitable[None]]


class UsageRecorder:
    """Counts tokens per ``(bot, UTC day)`` and calls hooks (e.g. a DB upsert) per record.

    A failing hook is logged and never breaks a reply.
    """

    def __init__(self) -> None:
        self._totals: dict[tuple[str, date], DailyUsage] = {}
        self._lock = threading.Lock()
        self.hooks: list[UsageHook] = []

    def add_hook(self, hook: UsageHook) -> None:
        """Call ``hook(record)`` (sync or async) after every recorded generation."""
        self.hooks.append(hook)

    async def record(
        self, bot_id: str, usage: Usage, *, backend: str, model: str, when: datetime | None = None
    ) -> UsageRecord:
        """Add one generation's tokens to the bot's total for the day.

        Args:
            bot_id: the instance id.
            usage: token counts.
            backend: backend name.
            model: model name.
            when: time of the generation (aware); now when ``None``.

        Returns:
            The record passed to hooks.
        """
        day = (when or datetime.now(UTC)).astimezone(UTC).date()
        record = UsageRecord(
            bot_id=bot_id,
            day=day,
            backend=backend,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        with self._lock:
            total = self._totals.setdefault((bot_id, day), DailyUsage(bot_id=bot_id, day=day))
            total.requests += 1
            total.prompt_tokens += usage.prompt_tokens
            total.completion_tokens += usage.completion_tokens
        for hook in list(self.hooks):
            try:
                outcome = hook(record)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                logger.exception("usage hook failed for bot %s", bot_id)
        return record

    def get(self, bot_id: str, day: date | None = None) -> DailyUsage:
        """Totals of ``bot_id`` on ``day`` (today, UTC, when ``None``); zeros if unseen."""
        day = day or datetime.now(UTC).date()
        with self._lock:
            found = self._totals.get((bot_id, day))
            return DailyUsage(**asdict(found)) if found else DailyUsage(bot_id=bot_id, day=day)

    def all(self) -> list[DailyUsage]:
        """Every ``(bot, day)`` total, oldest first."""
        with self._lock:
            return sorted(
                (DailyUsage(**asdict(u)) for u in self._totals.values()),
                key=lambda u: (u.day, u.bot_id),
            )
