"""The contract between the bot runtime (``shared.botkit``) and routing (``shared.routing``).

The runtime loads a customer's :class:`ConversationState` from the bot's SQLite, calls
``shared.routing.route(message, state, funnel)`` and then persists what the returned
:class:`RouteResult` says: the new state, the events, the replies (through the outbox). Routing
itself does no I/O, so it is the same for every channel and trivially testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.channels.base import Reply


@dataclass(slots=True)
class ConversationState:
    """What routing may read and change about one customer.

    Attributes:
        funnel_state: the active free-text step (``custom_step_1``...) or ``None``.
        segment: ``diy`` / ``basic`` / ``custom`` once determined, else ``None``.
        answers: quiz answers so far, question id -> option id.
        discovery: free-text answers of the custom discovery, step id -> text.
        profile_name: the name the customer shows, when known.
        data: any other per-customer funnel data (JSON-serialisable).
    """

    funnel_state: str | None = None
    segment: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    discovery: dict[str, str] = field(default_factory=dict)
    profile_name: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RouteEvent:
    """Something worth recording in the bot's ``events`` table (``quiz_answer``, ``segment``)."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RouteResult:
    """What routing decided for one inbound message.

    Attributes:
        replies: channel-neutral replies to send, in order.
        state: the customer's state after this message (always set; may equal the input).
        events: events to record.
        needs_llm: no funnel step took the message: the runtime asks the orchestrator's LLM
            (or sends the configured fallback text) and sends that after ``replies``.
        handler: name of the handler that took the message, for logs and tests.
    """

    replies: list[Reply]
    state: ConversationState
    events: list[RouteEvent] = field(default_factory=list)
    needs_llm: bool = False
    handler: str = ""
