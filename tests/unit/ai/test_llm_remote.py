"""Remote LLM and STT backends with their real client libraries against local fakes."""

from __future__ import annotations

import re
import time

import pytest

from orchestrator.ai.config import AISettings, ProviderConfig
from orchestrator.ai.llm import LLMError, get_backend
from orchestrator.ai.llm.gemini import GeminiBackend
from orchestrator.ai.llm.openai_compat import OpenAICompatBackend
from orchestrator.ai.retry import RetryPolicy
from orchestrator.ai.stt import GeminiSTTBackend, OpenAISTTBackend, STTError
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.gemini_api import serve as serve_gemini
from tests.fakes.openai_api import FakeOpenAI, serve

FAST = RetryPolicy(max_retries=3, base_delay_s=0.05, max_delay_s=2.0)
MESSAGES = [
    {"role": "system", "content": "You are Ada, a helpful shop assistant."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Do you ship to Lisbon?"},
]


def openai_backend(base_url: str, **kwargs: object) -> OpenAICompatBackend:
    return OpenAICompatBackend(
        base_url=f"{base_url}/v1",
        api_key="sk-test",
        model="qwen-7b",
        timeout_s=2.0,
        total_timeout_s=8.0,
        retry=FAST,
        **kwargs,
    )


def gemini_backend(base_url: str) -> GeminiBackend:
    return GeminiBackend(
        api_key="gm-test",
        model="gemini-2.5-flash",
        base_url=base_url,
        timeout_s=2.0,
        total_timeout_s=8.0,
        retry=FAST,
    )


async def test_openai_reply_carries_messages_params_and_usage() -> None:
    fake = FakeOpenAI()
    async with serve(fake.app()) as url:
        backend = openai_backend(url)
        result = await backend.generate(MESSAGES, params={"temperature": 0.1, "max_tokens": 50})
        await backend.aclose()
    assert result.text == "echo: Do you ship to Lisbon?"
    assert result.model == "qwen-7b"
    assert result.usage.completion_tokens == 6
    assert result.usage.prompt_tokens > 0
    sent = fake.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer sk-test"
    assert sent["json"]["messages"] == MESSAGES
    assert sent["json"]["temperature"] == 0.1
    assert sent["json"]["max_tokens"] == 50


async def test_openai_429_retries_after_retry_after_then_succeeds() -> None:
    fake = FakeOpenAI()
    fake.fail_next(429, retry_after=0.6)
    fake.fail_next(503)
    async with serve(fake.app()) as url:
        backend = openai_backend(url)
        started = time.monotonic()
        result = await backend.generate(MESSAGES)
        elapsed = time.monotonic() - started
        await backend.aclose()
    assert result.text.startswith("echo:")
    assert len(fake.requests) == 3
    assert elapsed >= 0.6, "Retry-After was not honoured"


async def test_openai_persistent_500_gives_clear_error_without_hanging() -> None:
    fake = FakeOpenAI()
    fake.fail_always(500)
    async with serve(fake.app()) as url:
        backend = openai_backend(url)
        started = time.monotonic()
        with pytest.raises(LLMError) as info:
            await backend.generate(MESSAGES)
        await backend.aclose()
    assert time.monotonic() - started < 5
    assert info.value.status == 500
    assert info.value.backend == "vllm"
    assert "retries" in str(info.value)
    assert len(fake.requests) == 1 + FAST.max_retries


async def test_openai_client_error_is_not_retried() -> None:
    fake = FakeOpenAI()
    fake.fail_next(400)
    async with serve(fake.app()) as url:
        backend = openai_backend(url)
        with pytest.raises(LLMError) as info:
            await backend.generate(MESSAGES)
        await backend.aclose()
    assert info.value.status == 400
    assert len(fake.requests) == 1


async def test_openai_one_hang_times_out_then_retry_succeeds() -> None:
    fake = FakeOpenAI()
    fake.hang_next(3)
    async with serve(fake.app()) as url:
        backend = OpenAICompatBackend(
            base_url=f"{url}/v1",
            api_key="k",
            model="m",
            timeout_s=0.5,
            total_timeout_s=5,
            retry=FAST,
        )
        result = await backend.generate(MESSAGES)
        await backend.aclose()
    assert result.text.startswith("echo:")
    assert len(fake.requests) == 2


async def test_openai_hanging_server_hits_the_deadline() -> None:
    fake = FakeOpenAI()
    for _ in range(10):
        fake.hang_next(3)
    async with serve(fake.app()) as url:
        backend = OpenAICompatBackend(
            base_url=f"{url}/v1",
            api_key="k",
            model="m",
            timeout_s=0.5,
            total_timeout_s=1.5,
            retry=FAST,
        )
        started = time.monotonic()
        with pytest.raises(LLMError):
            await backend.generate(MESSAGES)
        elapsed = time.monotonic() - started
        await backend.aclose()
    assert elapsed < 2.5


async def test_gemini_reply_uses_system_instruction_roles_and_key() -> None:
    fake = FakeGemini()
    async with serve_gemini(fake.app()) as url:
        backend = gemini_backend(url)
        result = await backend.generate(MESSAGES, params={"max_tokens": 64})
        await backend.aclose()
    assert result.text == "echo: Do you ship to Lisbon?"
    assert result.usage.completion_tokens == 6
    assert result.usage.prompt_tokens > 0
    sent = fake.requests[0]
    # google-genai picks the API version (v1 or v1beta); the model and method are fixed.
    assert re.fullmatch(r"/v1(beta)?/models/gemini-2\.5-flash:generateContent", sent["path"])
    assert sent["api_key"] == "gm-test"
    body = sent["json"]
    system = body.get("systemInstruction") or body.get("system_instruction")
    assert system["parts"][0]["text"] == "You are Ada, a helpful shop assistant."
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"]["maxOutputTokens"] == 64


async def test_gemini_429_then_success() -> None:
    fake = FakeGemini()
    fake.fail_next(429, retry_after=0.4)
    async with serve_gemini(fake.app()) as url:
        backend = gemini_backend(url)
        started = time.monotonic()
        result = await backend.generate(MESSAGES)
        elapsed = time.monotonic() - started
        await backend.aclose()
    assert result.text.startswith("echo:")
    assert len(fake.requests) == 2
    assert elapsed >= 0.4


async def test_gemini_500_fails_clearly() -> None:
    fake = FakeGemini()
    fake.fail_always(500)
    async with serve_gemini(fake.app()) as url:
        backend = gemini_backend(url)
        with pytest.raises(LLMError) as info:
            await backend.generate(MESSAGES)
        await backend.aclose()
    assert info.value.status == 500
    assert info.value.backend == "gemini"
    assert len(fake.requests) == 4


async def test_router_builds_each_backend(ai_settings: AISettings) -> None:
    providers = {
        "acme": ProviderConfig(
            kind="gemini", base_url="http://127.0.0.1:1", api_key="x", model="gemini-x"
        )
    }
    assert get_backend("", settings=ai_settings).name == "extractive"
    vllm = get_backend("vllm", settings=ai_settings)
    assert isinstance(vllm, OpenAICompatBackend)
    cloud = get_backend("cloud:acme", settings=ai_settings, providers=providers.get)
    assert isinstance(cloud, GeminiBackend)
    assert cloud.name == "cloud:acme"
    assert get_backend("local", settings=ai_settings).name == "local"
    with pytest.raises(LLMError):
        get_backend("cloud:nope", settings=ai_settings, providers=providers.get)
    with pytest.raises(LLMError):
        get_backend("gpt-banana", settings=ai_settings)
    await vllm.aclose()
    await cloud.aclose()


async def test_openai_stt_sends_audio_file_and_retries() -> None:
    fake = FakeOpenAI()
    fake.transcript = "when do you open tomorrow"
    fake.fail_next(429, retry_after=0.1)
    async with serve(fake.app()) as url:
        stt = OpenAISTTBackend(base_url=f"{url}/v1", api_key="k", model="whisper-1", retry=FAST)
        text = await stt.transcribe(b"OggS" + b"\0" * 500, "audio/ogg; codecs=opus")
        await stt.aclose()
    assert text == "when do you open tomorrow"
    last = fake.requests[-1]
    assert last["model"] == "whisper-1"
    assert last["filename"] == "voice.ogg"
    assert last["size"] == 504


async def test_gemini_stt_sends_inline_audio() -> None:
    fake = FakeGemini()
    fake.transcript = "quanto custa o plano básico"
    async with serve_gemini(fake.app()) as url:
        stt = GeminiSTTBackend(api_key="k", model="gemini-2.5-flash", base_url=url, retry=FAST)
        text = await stt.transcribe(b"OggS" + b"\1" * 300, "audio/ogg")
        await stt.aclose()
    assert text == "quanto custa o plano básico"
    assert fake.requests[0]["audio_bytes"] == 304


async def test_stt_persistent_failure_raises() -> None:
    fake = FakeOpenAI()
    fake.fail_always(500)
    async with serve(fake.app()) as url:
        stt = OpenAISTTBackend(base_url=f"{url}/v1", api_key="k", model="whisper-1", retry=FAST)
        with pytest.raises(STTError):
            await stt.transcribe(b"x" * 10, "audio/ogg")
        await stt.aclose()
