"""Google Gemini through ``google-genai`` — backend ``gemini``."""

from __future__ import annotations

import asyncio
import logging

from google.genai import errors as genai_errors
from google.genai import types as genai_types

from orchestrator.ai.gemini_client import make_gemini_client, translate_gemini_error
from orchestrator.ai.llm.base import ChatMessage, LLMBackend, LLMError, LLMParams, LLMResult, Usage
from orchestrator.ai.retry import RetryableError, RetryPolicy, call_with_retries

logger = logging.getLogger(__name__)


def to_gemini_contents(
    messages: list[ChatMessage],
) -> tuple[str | None, list[genai_types.Content]]:
    """Split OpenAI-shaped messages into a system instruction and Gemini contents.

    Args:
        messages: chat messages; every ``system`` message joins the system instruction.

    Returns:
        ``(system_instruction or None, contents)`` with roles ``user``/``model``.
    """
    system_parts = [m["content"] for m in messages if m["role"] == "system"]
    contents = [
        genai_types.Content(
            role="model" if m["role"] == "assistant" else "user",
            parts=[genai_types.Part(text=m["content"])],
        )
        for m in messages
        if m["role"] != "system"
    ]
    return ("\n\n".join(system_parts) or None), contents


class GeminiBackend(LLMBackend):
    """``models.generateContent`` through the async ``google-genai`` client.

    Args:
        api_key: Gemini API key.
        model: default model; ``params["model"]`` overrides it.
        base_url: API root override (a local fake in tests, a proxy in production).
        timeout_s: timeout of one request.
        total_timeout_s: deadline for all attempts together.
        retry: retry policy.
        name: backend name in errors and logs.
    """

    def __init__(
        self,
        *,
        api_key: str | None,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        total_timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        name: str = "gemini",
    ) -> None:
        self.name = name
        self.model = model
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s
        self.retry = retry or RetryPolicy()
        self.client = make_gemini_client(api_key=api_key, base_url=base_url, timeout_s=timeout_s)

    async def _attempt(
        self,
        model: str,
        contents: list[genai_types.Content],
        config: genai_types.GenerateContentConfig,
    ) -> LLMResult:
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.client.aio.models.generate_content(
                    model=model,
                    contents=contents,
                    config=config,  # type: ignore[arg-type]
                )
        except Exception as exc:  # noqa: BLE001 - translated and re-raised just below
            raise translate_gemini_error(exc) from exc
        usage = Usage()
        if response.usage_metadata is not None:
            usage = Usage(
                prompt_tokens=response.usage_metadata.prompt_token_count or 0,
                completion_tokens=response.usage_metadata.candidates_token_count or 0,
            )
        text = response.text or ""
        return LLMResult(text=text.strip(), usage=usage, model=response.model_version or model)

    async def generate(
        self, messages: list[ChatMessage], *, params: LLMParams | None = None
    ) -> LLMResult:
        """Call ``POST {base}/v1beta/models/{model}:generateContent``.

        See :meth:`LLMBackend.generate`.
        """
        params = params or {}
        model = params.get("model") or self.model
        system, contents = to_gemini_contents(messages)
        config = genai_types.GenerateContentConfig(
            system_instruction=system,
            temperature=params.get("temperature"),
            max_output_tokens=params.get("max_tokens"),
            top_p=params.get("top_p"),
            stop_sequences=params.get("stop"),
        )
        try:
            async with asyncio.timeout(self.total_timeout_s):
                return await call_with_retries(
                    lambda: self._attempt(model, contents, config),
                    self.retry,
                    what=f"{self.name} generateContent",
                )
        except RetryableError as exc:
            raise LLMError(
                f"{self.name}: gave up after retries: {exc}", backend=self.name, status=exc.status
            ) from exc
        except TimeoutError as exc:
            raise LLMError(
                f"{self.name}: no reply within {self.total_timeout_s}s", backend=self.name
            ) from exc
        except genai_errors.APIError as exc:
            raise LLMError(
                f"{self.name}: HTTP {exc.code}: {exc.message}", backend=self.name, status=exc.code
            ) from exc
        except ValueError as exc:
            raise LLMError(f"{self.name}: {exc}", backend=self.name) from exc

    async def aclose(self) -> None:
        """Close the client's HTTP sessions."""
        await self.client.aio.aclose()
