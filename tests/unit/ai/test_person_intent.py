"""Requests for a person recognised with the knowledge bases' embedding model (issue 13): the
bots' phrase list misses paraphrases; the orchestrator's reply path catches them when the
model is loaded, and answers ``escalate=True, reason="ask_for_person"`` without generating."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.ai import AIService, AISettings
from orchestrator.ai.intent import PersonRequestDetector
from orchestrator.ai.rag.embeddings import Embedder
from shared.botkit.handoff import asks_for_person

PARAPHRASES = (
    "Is there somebody real I could chat with?",
    "I'd prefer talking to somebody from the team",
    "I don't want a bot, I want somebody real",
)
QUESTIONS = (
    "How much does the basic package cost?",
    "What are your opening hours?",
    "Do you ship to Germany?",
    "How long is a gift card valid?",
    "The manager of my team wants a demo next week",
)


def test_paraphrases_the_phrase_list_misses_are_recognised(embedder: Embedder) -> None:
    detector = PersonRequestDetector(embedder)
    for text in PARAPHRASES:
        assert not asks_for_person(text)  # the offline list alone does not catch these
        assert detector.matches(text), (text, detector.score(text))
    for text in QUESTIONS:
        assert not detector.matches(text), (text, detector.score(text))


def test_without_a_loaded_model_nothing_is_loaded_or_matched(tmp_path: Path) -> None:
    cold = Embedder()
    detector = PersonRequestDetector(cold)
    assert not detector.available
    assert detector.score(PARAPHRASES[0]) == 0.0
    assert not cold.loaded  # the check never loads the model itself


@pytest.fixture
async def service(tmp_path: Path, embedder: Embedder) -> AsyncIterator[AIService]:
    settings = AISettings(data_dir=tmp_path / "data", escalation_text="A colleague will reply.")
    svc = AIService(settings, embedder=embedder)
    yield svc
    await svc.aclose()


async def test_reply_escalates_a_request_for_a_person(service: AIService) -> None:
    bot = {"id": "shop", "llm_backend": "extractive"}
    result = await service.reply(bot, PARAPHRASES[0], [])
    assert result["escalate"] is True
    assert result.get("reason") == "ask_for_person"
    assert result["text"] == "A colleague will reply."
    other = await service.reply(bot, QUESTIONS[0], [])
    assert other.get("reason", "") == ""
