"""LLM backends behind one interface (`LLMBackend`) and a router (`get_backend`)."""

from orchestrator.ai.llm.base import (
    ChatMessage,
    LLMBackend,
    LLMError,
    LLMParams,
    LLMResult,
    Usage,
)
from orchestrator.ai.llm.router import get_backend

__all__ = [
    "ChatMessage",
    "LLMBackend",
    "LLMError",
    "LLMParams",
    "LLMResult",
    "Usage",
    "get_backend",
]
