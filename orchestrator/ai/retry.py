"""Retries with exponential backoff for remote AI calls (429, 5xx, timeouts)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class RetryableError(Exception):
    """A failure worth another attempt.

    Attributes:
        status: HTTP status when there was one.
        retry_after: seconds the server asked us to wait (``Retry-After``), if any.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        max_retries: attempts after the first one.
        base_delay_s: first backoff delay; doubled on each retry.
        max_delay_s: cap on one delay, including an honoured ``Retry-After``.
    """

    max_retries: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep before retry number ``attempt`` (1-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay_s)
        backoff = self.base_delay_s * (2 ** (attempt - 1))
        # Full jitter keeps a fleet of bots from retrying in lockstep.
        return min(self.max_delay_s, backoff * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not crypto


def parse_retry_after(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP date.

    Args:
        value: the header value or ``None``.

    Returns:
        Seconds to wait, or ``None`` when absent or unparsable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def call_with_retries(
    func: Callable[[], Awaitable[T]], policy: RetryPolicy, *, what: str
) -> T:
    """Await ``func()`` and retry it on :class:`RetryableError` with backoff.

    Args:
        func: a zero-argument coroutine factory; called once per attempt.
        policy: retry policy.
        what: name used in log lines.

    Returns:
        The first successful result.

    Raises:
        RetryableError: the last failure once retries are exhausted.
        Exception: any non-retryable error from ``func``, immediately.
    """
    attempt = 0
    while True:
        try:
            return await func()
        except RetryableError as exc:
            attempt += 1
            if attempt > policy.max_retries:
                raise
            delay = policy.delay(attempt, exc.retry_after)
            logger.warning(
                "%s failed (status=%s): %s; retry %d/%d in %.2fs",
                what,
                exc.status,
                exc,
                attempt,
                policy.max_retries,
                delay,
            )
            await asyncio.sleep(delay)
