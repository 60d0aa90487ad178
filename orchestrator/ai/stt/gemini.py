"""Transcription with Gemini: the audio as inline data plus a "transcribe" instruction."""

from __future__ import annotations

import asyncio

from google.genai import errors as genai_errors
from google.genai import types as genai_types

from orchestrator.ai.gemini_client import make_gemini_client, translate_gemini_error
from orchestrator.ai.retry import RetryableError, RetryPolicy, call_with_retries
from orchestrator.ai.stt.base import STTBackend, STTError

PROMPT = (
    "Transcribe this voice message verbatim in its original language. "
    "Answer with the transcript only."
)


class GeminiSTTBackend(STTBackend):
    """``generateContent`` with an ``inlineData`` audio part.

    Args:
        api_key: Gemini API key.
        model: e.g. ``gemini-2.5-flash``.
        base_url: API root override (tests).
        timeout_s: timeout of one request.
        total_timeout_s: deadline for all attempts.
        retry: retry policy.
    """

    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        total_timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.model = model
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s
        self.retry = retry or RetryPolicy()
        self.client = make_gemini_client(api_key=api_key, base_url=base_url, timeout_s=timeout_s)

    async def _attempt(self, audio: bytes, mime: str) -> str:
        contents = [
            genai_types.Content(
                role="user",
                parts=[
                    genai_types.Part(text=PROMPT),
                    genai_types.Part.from_bytes(data=audio, mime_type=mime.split(";")[0].strip()),
                ],
            )
        ]
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.client.aio.models.generate_content(
                    model=self.model,
                    contents=contents,  # type: ignore[arg-type]
                )
        except Exception as exc:  # noqa: BLE001 - translated and re-raised just below
            raise translate_gemini_error(exc) from exc
        return (response.text or "").strip()

    async def transcribe(self, audio: bytes, mime: str) -> str:
        """See :meth:`STTBackend.transcribe`."""
        try:
            async with asyncio.timeout(self.total_timeout_s):
                return await call_with_retries(
                    lambda: self._attempt(audio, mime), self.retry, what="stt gemini"
                )
        except (RetryableError, TimeoutError, genai_errors.APIError) as exc:
            raise STTError(f"transcription failed: {exc}") from exc

    async def aclose(self) -> None:
        """Close the client's HTTP sessions."""
        await self.client.aio.aclose()
