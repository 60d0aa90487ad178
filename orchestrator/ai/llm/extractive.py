"""Answers straight from the knowledge base — backend ``extractive``, the offline default."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

import numpy as np
import numpy.typing as npt

from orchestrator.ai.llm.base import ChatMessage, LLMBackend, LLMParams, LLMResult
from orchestrator.ai.rag.types import SearchResult

logger = logging.getLogger(__name__)

Retriever = Callable[[str], Awaitable[Sequence[SearchResult]]]
SentenceEncoder = Callable[[list[str]], npt.NDArray[np.float32]]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\u00C0-\u024F\u0400-\u04FF])")
_MIN_ANSWER_CHARS = 40


def split_sentences(text: str) -> list[str]:
    """Split a passage into sentences (good enough for picking an answer)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class ExtractiveBackend(LLMBackend):
    """Reply with the best knowledge-base passage, or hand over to a person.

    No model is involved: the last user message is the query; the best passage scoring at
    least ``min_score`` is the answer (for a Q/A entry, only its answer). Otherwise the reply
    is ``escalation_text`` with ``escalate=True`` so the bot can open a handover.

    With an ``encoder`` the reply is narrowed to the sentence of the top passages closest to
    the question (plus the next one when it is very short), which reads like an answer
    rather than a page excerpt; that sentence's score may also clear ``min_score`` when the
    whole passage, diluted by other topics, does not.

    Args:
        retriever: async ``query -> results`` (best first); ``None`` means no knowledge.
        encoder: blocking ``texts -> unit vectors`` (the knowledge base's embedder).
        min_score: cosine similarity a passage needs to be used.
        escalation_text: the reply when nothing scores high enough.
    """

    name = "extractive"

    def __init__(
        self,
        *,
        retriever: Retriever | None,
        encoder: SentenceEncoder | None = None,
        min_score: float = 0.4,
        escalation_text: str = "A colleague will get back to you shortly.",
    ) -> None:
        self.retriever = retriever
        self.encoder = encoder
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
        text, score = (best.answer or best.text, best.score) if best else ("", 0.0)
        if best is not None and best.answer is None and self.encoder is not None:
            sentence, sentence_score, source = await asyncio.to_thread(
                self._best_sentence, query, results[:3]
            )
            if sentence and sentence_score >= score - 0.05:
                text, score = sentence, max(score, sentence_score)
                best = next(r for r in results if r.source == source)
        if best is None or score < self.min_score:
            logger.info(
                "extractive: nothing above %.2f (best %.3f); escalating", self.min_score, score
            )
            return LLMResult(
                text=self.escalation_text,
                model=self.name,
                confidence=max(0.0, score),
                escalate=True,
            )
        return LLMResult(
            text=text, model=self.name, confidence=max(0.0, min(1.0, score)), sources=[best.source]
        )

    def _best_sentence(
        self, query: str, results: Sequence[SearchResult]
    ) -> tuple[str, float, str]:
        assert self.encoder is not None  # noqa: S101 - checked by the caller
        candidates: list[tuple[str, str]] = []  # (answer text, source)
        for result in results:
            sentences = split_sentences(result.text)
            for i, sentence in enumerate(sentences):
                answer = sentence
                if len(sentence) < _MIN_ANSWER_CHARS and i + 1 < len(sentences):
                    answer = f"{sentence} {sentences[i + 1]}"
                candidates.append((answer, result.source))
        if not candidates:
            return "", 0.0, ""
        vectors = self.encoder([query] + [c[0] for c in candidates])
        scores = vectors[1:] @ vectors[0]
        top = int(np.argmax(scores))
        return candidates[top][0], float(scores[top]), candidates[top][1]
