"""`AIService`: what the orchestrator routes call for replies, voice and transcripts."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import soundfile as sf

from orchestrator.ai import AIService, AISettings, ProviderConfig
from orchestrator.ai.llm import LLMError
from orchestrator.ai.rag.embeddings import Embedder
from orchestrator.ai.stt import STTError
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.gemini_api import serve as serve_gemini
from tests.fakes.openai_api import FakeOpenAI, serve

POLICY = (
    "Delivery to Lisbon takes three working days and costs 15 euros. "
    "Every inverter has a ten year warranty."
)


@pytest.fixture
async def service(tmp_path: Path, embedder: Embedder) -> AsyncIterator[AIService]:
    settings = AISettings(
        data_dir=tmp_path / "data",
        llm_backoff_base_s=0.05,
        llm_timeout_s=2.0,
        llm_total_timeout_s=8.0,
        escalation_text="A colleague will reply soon.",
    )
    svc = AIService(settings, embedder=embedder)
    yield svc
    await svc.aclose()


async def make_kb(service: AIService) -> str:
    kb = await service.kb.create("Policies")
    await service.kb.add_document(kb.id, "policy.txt", POLICY.encode())
    return kb.id


async def test_reply_builds_prompt_from_persona_prompt_and_passages(service: AIService) -> None:
    kb_id = await make_kb(service)
    fake = FakeOpenAI()
    fake.reply = lambda msgs: "It takes three working days."
    async with serve(fake.app()) as url:
        service.settings.vllm_base_url = f"{url}/v1"
        service.settings.vllm_model = "qwen"
        bot = {
            "id": "solar-bot",
            "llm_backend": "vllm",
            "persona": "You are Ada from SunCo.",
            "system_prompt": "Answer in one sentence.",
            "knowledge_base_ids": [kb_id, "deleted-kb"],
            "llm_params": {"temperature": 0.2, "max_tokens": 80, "ignored": True},
        }
        history = [
            {"role": "user", "text": "hi"},
            {"role": "assistant", "text": "Hello! How can I help?"},
        ]
        result = await service.reply(bot, "How long is delivery to Lisbon?", history)
    assert result["text"] == "It takes three working days."
    assert result["escalate"] is False
    assert result["sources"] == ["policy.txt"]
    assert 0.3 < result["confidence"] <= 1.0
    assert result["usage"]["completion_tokens"] == 5
    sent = fake.requests[0]["json"]
    system = sent["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are Ada from SunCo.\n\nAnswer in one sentence.")
    assert "three working days" in system["content"]
    assert "(source: policy.txt)" in system["content"]
    assert sent["messages"][1:] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "How long is delivery to Lisbon?"},
    ]
    assert sent["temperature"] == 0.2
    assert "ignored" not in sent
    today = service.usage_today("solar-bot")
    assert today["requests"] == 1
    assert today["total_tokens"] == result["usage"]["total_tokens"]


async def test_preview_does_not_count_usage_and_failure_raises(service: AIService) -> None:
    fake = FakeOpenAI()
    async with serve(fake.app()) as url:
        service.settings.vllm_base_url = f"{url}/v1"
        service.settings.vllm_model = "qwen"
        bot = {"id": "b1", "llm_backend": "vllm"}
        await service.reply(bot, "hello", record_usage=False)
        assert service.usage_today("b1")["requests"] == 0
        fake.fail_always(500)
        with pytest.raises(LLMError) as info:
            await service.reply(bot, "hello")
    assert info.value.status == 500


async def test_extractive_default_answers_or_escalates(service: AIService) -> None:
    kb_id = await make_kb(service)
    bot = {"id": "b2", "knowledge_base_ids": [kb_id]}  # no llm_backend: the offline default
    answer = await service.reply(bot, "what warranty do inverters have?")
    assert answer["backend"] == "extractive"
    assert answer["text"] == "Every inverter has a ten year warranty."
    assert answer["escalate"] is False
    assert answer["sources"] == ["policy.txt"]
    unknown = await service.reply(bot, "Can you recommend a good pizza place?")
    assert unknown["escalate"] is True
    assert unknown["text"] == "A colleague will reply soon."
    no_kb = await service.reply({"id": "b3"}, "anything")
    assert no_kb["escalate"] is True


async def test_cloud_provider_is_resolved_per_call(service: AIService) -> None:
    fake = FakeGemini()
    async with serve_gemini(fake.app()) as url:
        providers = {"7": ProviderConfig(kind="gemini", base_url=url, api_key="k7", model="g1")}

        async def lookup(provider_id: str) -> ProviderConfig | None:
            return providers.get(provider_id)

        service.providers = lookup
        result = await service.reply({"id": "b4", "llm_backend": "cloud:7"}, "ping")
        assert result["text"] == "echo: ping"
        assert result["backend"] == "cloud:7"
        assert fake.requests[0]["api_key"] == "k7"
        with pytest.raises(LLMError, match="unknown LLM provider"):
            await service.reply({"id": "b4", "llm_backend": "cloud:8"}, "ping")


async def test_tts_and_transcribe(service: AIService) -> None:
    audio = await service.tts("Your order has shipped.")
    info = sf.info(io.BytesIO(audio))
    assert (info.format, info.subtype) == ("OGG", "OPUS")
    assert 0.8 < info.duration < 4
    with pytest.raises(STTError):
        await service.transcribe(audio, "audio/ogg")
    fake = FakeOpenAI()
    fake.transcript = "your order has shipped"
    async with serve(fake.app()) as url:
        service.settings.stt_base_url = f"{url}/v1"
        assert await service.transcribe(audio, "audio/ogg") == "your order has shipped"
    assert fake.requests[0]["size"] == len(audio)
