"""Answers straight from the knowledge base — backend ``extractive``, the offline default."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from orchestrator.ai.llm.base import ChatMessage, LLMBackend, LLMParams, LLMResult
from orchestrator.ai.rag.types import SearchResult

logger = logging.getLogger(__name__)

Retriever = Callable[[str], Awaitable[Sequence[SearchResult]]]


class ExtractiveBackend(LLMBackend):
    """Reply with the best knowledge-base passage, or hand over to a person.

    No model is involved: the last user message is the query; the best passage scoring at
    least ``min_score`` is the answer (for a Q/A entry, only its answer). Otherwise the reply
    is ``escalation_text`` with ``escalate=True`` so the bot can open a handover.

    Args:
        retriever: async ``query -> results`` (best first); ``None`` means no knowledge.
        min_score: cosine similarity a passage needs to be used.
        escalation_text: the reply when nothing scores high enough.
    """

    name = "extractive"

    def __init__(
        self,
        *,
        retriever: Retriever | None,
        min_score: float = 0.45,
        escalation_text: str = "A colleague will get back to you shortly.",
    ) -> None:
        self.retriever = retriever
        self.min_score = min_score
        self.escalation_text = escalation_text

    async def generate(
        self, messages: list[ChatMessage], *, params: LLMParams | None = None
    ) -> LLMResult:
        """Pick the best passage for the last user message; see :meth:`LLMBackend.generate`."""
        query = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        results: Sequence[SearchResult] = []
        if query.strip() and self.retriever is not None:
            results = await self.retriever(query)
        best = max(results, key=lambda r: r.score, default=None)
        if best is None or best.score < self.min_score:
            logger.info("extractive: no passage above %.2f (best %.3f); escalating",
                        self.min_score, best.score if best else 0.0)
            return LLMResult(
                text=self.escalation_text, model=self.name,
                confidence=best.score if best else 0.0, escalate=True,
            )
        return LLMResult(
            text=best.answer or best.text,
            model=self.name,
            confidence=max(0.0, min(1.0, best.score)),
            sources=[best.source],
        )
