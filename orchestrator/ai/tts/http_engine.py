"""TTS engines served over HTTP (XTTS, OpenVoice): POST text, get audio back."""

from __future__ import annotations

import asyncio
import logging

import httpx

from orchestrator.ai.tts.base import TTSBackend, TTSError
from orchestrator.ai.tts.ogg import audio_to_ogg_opus

logger = logging.getLogger(__name__)


class HTTPTTSBackend(TTSBackend):
    """A TTS server answering ``POST {base_url}{path}`` with audio bytes.

    The request body is ``{"text", "voice", "language"}`` (JSON). Whatever audio comes
    back (WAV, FLAC, OGG) is converted to OGG/Opus; OGG/Opus is passed through.

    Args:
        name: ``xtts`` or ``openvoice`` (for logs and errors).
        base_url: the server root.
        path: endpoint path.
        language: sent as ``language``.
        timeout_s: request timeout.
        sample_rate: Opus output rate when converting.
        transport: an ``httpx`` transport (tests).
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        path: str = "/tts",
        language: str = "en",
        timeout_s: float = 60.0,
        sample_rate: int = 24000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.language = language
        self.sample_rate = sample_rate
        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)

    async def synthesize(self, text: str, voice: str | None = None) -> bytes:
        """POST the text and convert the answer; see :meth:`TTSBackend.synthesize`."""
        if not text.strip():
            raise TTSError("nothing to say")
        try:
            response = await self.client.post(
                self.path, json={"text": text, "voice": voice, "language": self.language}
            )
        except httpx.HTTPError as exc:
            raise TTSError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise TTSError(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
        data = response.content
        if data.startswith(b"OggS") and b"OpusHead" in data[:128]:
            return data
        return await asyncio.to_thread(audio_to_ogg_opus, data, target_rate=self.sample_rate)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
