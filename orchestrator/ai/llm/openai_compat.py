"""OpenAI-compatible chat completions (vLLM, llama.cpp server, OpenAI) — backend ``vllm``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import openai
from openai import AsyncOpenAI

from orchestrator.ai.llm.base import ChatMessage, LLMBackend, LLMError, LLMParams, LLMResult, Usage
from orchestrator.ai.retry import (
    RETRYABLE_STATUS,
    RetryableError,
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
)

logger = logging.getLogger(__name__)


def translate_openai_error(exc: Exception) -> Exception:
    """Map an ``openai`` exception to :class:`RetryableError` when another try may help.

    Args:
        exc: the exception raised by the client.

    Returns:
        A :class:`RetryableError` for 408/409/429/5xx, timeouts and connection errors;
        ``exc`` itself otherwise.
    """
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in RETRYABLE_STATUS:
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            return RetryableError(str(exc), status=exc.status_code, retry_after=retry_after)
        return exc
    if isinstance(exc, openai.APIConnectionError | TimeoutError):
        return RetryableError(f"{type(exc).__name__}: {exc}")
    return exc


class OpenAICompatBackend(LLMBackend):
    """Chat completions through the official ``openai`` async client.

    The client's own retries are off (``max_retries=0``) so :mod:`orchestrator.ai.retry`
    applies one policy, honouring ``Retry-After``, to every backend.

    Args:
        base_url: API root including ``/v1``.
        api_key: bearer key (vLLM accepts any string unless started with ``--api-key``).
        model: default model; ``params["model"]`` overrides it.
        timeout_s: timeout of one request.
        total_timeout_s: deadline for all attempts together.
        retry: retry policy.
        name: backend name in errors and logs.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout_s: float = 30.0,
        total_timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        name: str = "vllm",
    ) -> None:
        self.name = name
        self.model = model
        self.total_timeout_s = total_timeout_s
        self.retry = retry or RetryPolicy()
        self.client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=0
        )

    async def _attempt(self, body: dict[str, Any]) -> LLMResult:
        try:
            completion = await self.client.chat.completions.create(**body)
        except Exception as exc:  # noqa: BLE001 - translated and re-raised just below
            raise translate_openai_error(exc) from exc
        if not completion.choices:
            raise LLMError("no choices in completion", backend=self.name)
        text = completion.choices[0].message.content or ""
        usage = Usage()
        if completion.usage is not None:
            usage = Usage(
                prompt_tokens=completion.usage.prompt_tokens or 0,
                completion_tokens=completion.usage.completion_tokens or 0,
            )
        return LLMResult(text=text.strip(), usage=usage, model=completion.model or body["model"])

    async def generate(
        self, messages: list[ChatMessage], *, params: LLMParams | None = None
    ) -> LLMResult:
        """Call ``POST {base_url}/chat/completions``; see :meth:`LLMBackend.generate`."""
        params = params or {}
        model = params.get("model") or self.model
        if not model:
            raise LLMError("no model configured", backend=self.name)
        body: dict[str, Any] = {"model": model, "messages": list(messages)}
        for key in ("temperature", "max_tokens", "top_p", "stop"):
            if key in params:
                body[key] = params[key]  # type: ignore[literal-required]
        try:
            async with asyncio.timeout(self.total_timeout_s):
                return await call_with_retries(
                    lambda: self._attempt(body), self.retry, what=f"{self.name} chat"
                )
        except RetryableError as exc:
            raise LLMError(
                f"{self.name}: gave up after retries: {exc}", backend=self.name, status=exc.status
            ) from exc
        except TimeoutError as exc:
            raise LLMError(
                f"{self.name}: no reply within {self.total_timeout_s}s", backend=self.name
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(
                f"{self.name}: HTTP {exc.status_code}: {exc.message}",
                backend=self.name,
                status=exc.status_code,
            ) from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"{self.name}: {exc}", backend=self.name) from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.close()
