"""Respawn delays and flapping detection."""

from __future__ import annotations

import random
import time
from collections import deque


def respawn_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1)`` capped, then 75–100 % of that."""
    raw = min(cap, base * (2 ** max(0, attempt - 1)))
    return raw * (0.75 + 0.25 * (rng or random).random())  # noqa: S311 - jitter, not security


class FlappingDetector:
    """``attempts`` deaths within ``window`` seconds means the bot is flapping."""

    def __init__(self, attempts: int, window: float) -> None:
        self.attempts = attempts
        self.window = window
        self._deaths: deque[float] = deque()

    def record_death(self, now: float | None = None) -> bool:
        """Record a death; return whether the bot is now flapping."""
        now = time.monotonic() if now is None else now
        self._deaths.append(now)
        while self._deaths and now - self._deaths[0] > self.window:
            self._deaths.popleft()
        return len(self._deaths) >= self.attempts

    @property
    def recent(self) -> int:
        """Deaths currently inside the window."""
        return len(self._deaths)

    def reset(self) -> None:
        """Forget past deaths (someone started the bot by hand)."""
        self._deaths.clear()
