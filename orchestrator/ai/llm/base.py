"""The LLM backend interface."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Literal, TypedDict


class ChatMessage(TypedDict):
    """One chat turn, in the OpenAI shape every backend converts from."""

    role: Literal["system", "user", "assistant"]
    content: str


class LLMParams(TypedDict, total=False):
    """Generation parameters a bot may set in ``llm_params``."""

    model: str
    temperature: float
    max_tokens: int
    top_p: float
    stop: list[str]


@dataclass
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class LLMResult:
    """What a backend produced.

    Attributes:
        text: the reply text.
        usage: token counts (zeros for backends that do not count).
        model: the model that answered.
        confidence: 0..1; remote models report 1.0 unless they say otherwise.
        escalate: ``True`` when a person should take over (e.g. extractive found nothing).
        sources: where the answer came from (extractive: document names).
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    confidence: float = 1.0
    escalate: bool = False
    sources: list[str] = field(default_factory=list)


class LLMError(Exception):
    """A backend could not produce a reply (after its retries).

    The caller turns this into the bot's fallback text; ``backend`` and ``status`` say why.
    """

    def __init__(self, message: str, *, backend: str, status: int | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        self.status = status


class LLMBackend(abc.ABC):
    """A chat model.

    Implementations are named after their technology (``openai_compat``, ``gemini``,
    ``local``, ``extractive``) and must never block the event loop or hang: remote calls
    have timeouts and bounded retries; local work runs in a thread.
    """

    name: str = "base"

    @abc.abstractmethod
    async def generate(
        self, messages: list[ChatMessage], *, params: LLMParams | None = None
    ) -> LLMResult:
        """Produce the assistant's next message.

        Args:
            messages: system prompt first (optional), then the conversation, the new user
                message last.
            params: generation parameters; unknown keys are ignored.

        Returns:
            The reply with usage and model.

        Raises:
            LLMError: the backend failed for good (timeouts, retries exhausted, bad config).
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release network clients; the default has nothing to release."""
