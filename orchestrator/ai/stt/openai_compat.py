"""OpenAI-compatible ``POST /audio/transcriptions`` (Whisper servers, OpenAI)."""

from __future__ import annotations

import asyncio

import openai
from openai import AsyncOpenAI

from orchestrator.ai.llm.openai_compat import translate_openai_error
from orchestrator.ai.retry import RetryableError, RetryPolicy, call_with_retries
from orchestrator.ai.stt.base import STTBackend, STTError, filename_for


class OpenAISTTBackend(STTBackend):
    """Transcriptions through the ``openai`` client.

    Args:
        base_url: API root including ``/v1``.
        api_key: bearer key.
        model: e.g. ``whisper-1``.
        timeout_s: timeout of one request.
        total_timeout_s: deadline for all attempts.
        retry: retry policy.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout_s: float = 60.0,
        total_timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.model = model
        self.total_timeout_s = total_timeout_s
        self.retry = retry or RetryPolicy()
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=0
        )

    async def _attempt(self, audio: bytes, mime: str) -> str:
        try:
            result = await self.client.audio.transcriptions.create(
                model=self.model,
                file=(filename_for(mime), audio, mime.split(";")[0]),
            )
        except Exception as exc:  # noqa: BLE001 - translated and re-raised just below
            raise translate_openai_error(exc) from exc
        return str(getattr(result, "text", result)).strip()

    async def transcribe(self, audio: bytes, mime: str) -> str:
        """See :meth:`STTBackend.transcribe`."""
        try:
            async with asyncio.timeout(self.total_timeout_s):
                return await call_with_retries(
                    lambda: self._attempt(audio, mime), self.retry, what="stt transcriptions"
                )
        except (RetryableError, TimeoutError, openai.OpenAIError) as exc:
            raise STTError(f"transcription failed: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.close()
