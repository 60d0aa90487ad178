"""Piper TTS to OGG/Opus, HTTP TTS engines, and the in-process llama.cpp backend."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from aiohttp import web

from orchestrator.ai.llm.local import LocalLlamaBackend
from orchestrator.ai.tts import HTTPTTSBackend, PiperBackend, TTSError, encode_ogg_opus
from tests.fakes._server import serve

SENTENCE = "Hello! Your solar kit will be delivered on Tuesday morning between nine and noon."


def decode(data: bytes) -> tuple[np.ndarray, int, str, str]:
    info = sf.info(io.BytesIO(data))
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate, info.format, info.subtype


@pytest.fixture(scope="module")
def piper() -> PiperBackend:
    return PiperBackend(sample_rate=24000)


async def test_piper_returns_ogg_opus_of_plausible_duration(piper: PiperBackend) -> None:
    data = await piper.synthesize(SENTENCE)
    assert data[:4] == b"OggS"
    audio, rate, fmt, subtype = decode(data)
    assert (fmt, subtype) == ("OGG", "OPUS")
    assert rate == 24000
    duration = len(audio) / rate
    words = len(SENTENCE.split())
    # Speech runs at roughly 2-4 words per second.
    assert words / 4.5 < duration < words / 1.5
    assert float(np.sqrt(np.mean(audio**2))) > 0.01, "voice note is silent"
    assert len(data) < duration * 8000, "Opus at speech bitrates is a few KB per second"


async def test_longer_text_gives_longer_audio(piper: PiperBackend) -> None:
    short = decode(await piper.synthesize("Yes."))[0]
    long = decode(await piper.synthesize(SENTENCE + " " + SENTENCE))[0]
    assert len(long) > 4 * len(short)


async def test_piper_errors(piper: PiperBackend, tmp_path: Path) -> None:
    with pytest.raises(TTSError):
        await piper.synthesize("   ")
    with pytest.raises(TTSError):
        await piper.synthesize("hi", voice=str(tmp_path / "missing.onnx"))
    with pytest.raises(TTSError):
        await piper.synthesize("hi", voice="../../etc/passwd")


def test_encode_rejects_rates_opus_does_not_take() -> None:
    with pytest.raises(TTSError):
        encode_ogg_opus(np.zeros(100, dtype=np.float32), 22050, target_rate=22050)
    tone = np.sin(np.linspace(0, 2 * np.pi * 440, 22050)).astype(np.float32) * 0.5
    audio, rate, _, _ = decode(encode_ogg_opus(tone, 22050, target_rate=48000))
    assert rate == 48000
    assert abs(len(audio) / rate - 1.0) < 0.05


async def test_http_engine_converts_wav_to_ogg_opus() -> None:
    received: list[dict] = []

    async def tts(request: web.Request) -> web.Response:
        received.append(await request.json())
        buf = io.BytesIO()
        sf.write(buf, np.full(16000, 0.1, dtype=np.float32), 16000, format="WAV")
        return web.Response(body=buf.getvalue(), content_type="audio/wav")

    app = web.Application()
    app.router.add_post("/tts", tts)
    async with serve(app) as url:
        engine = HTTPTTSBackend(name="xtts", base_url=url)
        data = await engine.synthesize("Olá", voice="maria")
        await engine.aclose()
    assert received == [{"text": "Olá", "voice": "maria", "language": "en"}]
    audio, rate, fmt, subtype = decode(data)
    assert (fmt, subtype) == ("OGG", "OPUS")
    assert abs(len(audio) / rate - 1.0) < 0.05


async def test_http_engine_failure_is_a_tts_error() -> None:
    async def boom(request: web.Request) -> web.Response:
        return web.Response(status=500, text="gpu on fire")

    app = web.Application()
    app.router.add_post("/tts", boom)
    async with serve(app) as url:
        engine = HTTPTTSBackend(name="openvoice", base_url=url)
        with pytest.raises(TTSError, match="500"):
            await engine.synthesize("hi")
        await engine.aclose()


@pytest.mark.slow
async def test_local_backend_generates_tokens_from_the_bundled_gguf(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    backend = LocalLlamaBackend(cache_dir=tmp_path_factory.mktemp("models"), n_ctx=512)
    result = await backend.generate(
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours."},
        ],
        params={"max_tokens": 24, "temperature": 0.0},
    )
    assert result.usage.completion_tokens > 0
    assert result.usage.completion_tokens <= 24
    assert result.usage.prompt_tokens > 5
    assert result.text.strip()
    assert result.model.endswith(".gguf")
    # Loaded once: a second call reuses the engine.
    engine = backend._server
    again = await backend.generate([{"role": "user", "content": "Hi"}], params={"max_tokens": 4})
    assert backend._server is engine
    assert again.usage.completion_tokens > 0
