"""The "needs attention" state: a misconfigured bot that refuses every update says so.

A webhook that keeps refusing updates (a wrong or missing signature secret) looks healthy from
the outside: the process runs and answers health checks. :class:`WebhookHealth` counts refused
webhooks; after :data:`REFUSALS_BEFORE_ATTENTION` in a row with none accepted in between it
reports an ``attention`` event with the reason to the orchestrator (the supervisor shows it on
the bot's header and the Fleet page), and an ``attention_cleared`` event once an update is
accepted again. A problem known at start (no secret configured at all) is reported at once with
:meth:`WebhookHealth.flag`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.orchestrator_client import OrchestratorClient

logger = logging.getLogger(__name__)

#: Consecutive refused webhooks (none accepted in between) before the bot asks for attention.
REFUSALS_BEFORE_ATTENTION = 3
ATTENTION_EVENT = "attention"
CLEARED_EVENT = "attention_cleared"


class WebhookHealth:
    """Counts refused and accepted webhooks and reports the "needs attention" state changes.

    Events go out in background tasks (a webhook answer never waits for the orchestrator).
    """

    def __init__(self, threshold: int = REFUSALS_BEFORE_ATTENTION) -> None:
        self.threshold = threshold
        self.refused_in_a_row = 0
        self.reason: str | None = None  # the attention currently reported
        self._tasks: set[asyncio.Task[bool]] = set()

    def refused(self, client: OrchestratorClient | None, reason: str) -> None:
        """A webhook was refused (bad or missing signature/secret) because of ``reason``."""
        self.refused_in_a_row += 1
        if self.refused_in_a_row >= self.threshold and self.reason is None:
            self.flag(
                client,
                f"{self.refused_in_a_row} webhooks in a row refused: {reason}",
            )

    def accepted(self, client: OrchestratorClient | None) -> None:
        """A webhook passed its checks: the attention (if any) is over."""
        self.refused_in_a_row = 0
        if self.reason is not None:
            self.reason = None
            logger.info("webhooks accepted again; attention cleared")
            self._send(client, CLEARED_EVENT, "an update was accepted")

    def flag(self, client: OrchestratorClient | None, reason: str) -> None:
        """Report ``reason`` as the bot's "needs attention" state now."""
        self.reason = reason
        logger.error("bot needs attention", extra={"reason": reason})
        self._send(client, ATTENTION_EVENT, reason)

    def _send(self, client: OrchestratorClient | None, type_: str, message: str) -> None:
        if client is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(client.post_event(type_, message))
        except RuntimeError:  # no loop (a unit test calling from sync code)
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
