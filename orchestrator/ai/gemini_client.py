"""Building `google-genai` clients and mapping their errors (shared by LLM and STT)."""

from __future__ import annotations

import aiohttp
import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from orchestrator.ai.retry import RETRYABLE_STATUS, RetryableError, parse_retry_after


def make_gemini_client(
    *, api_key: str | None, base_url: str | None, timeout_s: float
) -> genai.Client:
    """Build a Gemini Developer API client.

    Args:
        api_key: the API key (sent as ``x-goog-api-key``); a placeholder is used when empty
            so a keyless local server can stand in.
        base_url: API root override, e.g. ``http://127.0.0.1:9000/``; requests then go to
            ``{base_url}/v1beta/models/{model}:generateContent``.
        timeout_s: per-request timeout.

    Returns:
        A client whose own retries are off (our retry policy applies instead).
    """
    options = genai_types.HttpOptions(timeout=int(timeout_s * 1000))
    if base_url:
        options.base_url = base_url
    return genai.Client(api_key=api_key or "unset", http_options=options)


def translate_gemini_error(exc: Exception) -> Exception:
    """Map a ``google-genai`` or transport exception to :class:`RetryableError` if transient.

    Args:
        exc: what the client raised.

    Returns:
        A :class:`RetryableError` for 408/409/429/5xx, timeouts and connection errors;
        ``exc`` itself otherwise.
    """
    if isinstance(exc, genai_errors.APIError):
        if exc.code in RETRYABLE_STATUS:
            headers = getattr(exc.response, "headers", None) or {}
            retry_after = parse_retry_after(headers.get("retry-after"))
            return RetryableError(str(exc), status=exc.code, retry_after=retry_after)
        return exc
    if isinstance(exc, TimeoutError | httpx.TransportError | aiohttp.ClientError):
        return RetryableError(f"{type(exc).__name__}: {exc}")
    return exc
