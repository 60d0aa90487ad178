"""Pick an LLM backend by name: ``vllm``, ``gemini``, ``cloud:{provider_id}``, ``local``,
``extractive``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.ai.config import AISettings, ProviderConfig
from orchestrator.ai.llm.base import LLMBackend, LLMError
from orchestrator.ai.llm.extractive import ExtractiveBackend, Retriever, SentenceEncoder
from orchestrator.ai.llm.gemini import GeminiBackend
from orchestrator.ai.llm.local import LocalLlamaBackend
from orchestrator.ai.llm.openai_compat import OpenAICompatBackend
from orchestrator.ai.retry import RetryPolicy

ProviderResolver = Callable[[str], ProviderConfig | None]

BACKEND_NAMES = ("vllm", "gemini", "local", "extractive")


def retry_policy(settings: AISettings) -> RetryPolicy:
    """The retry policy the settings describe."""
    return RetryPolicy(
        max_retries=settings.llm_max_retries,
        base_delay_s=settings.llm_backoff_base_s,
        max_delay_s=settings.llm_backoff_max_s,
    )


def provider_backend(provider: ProviderConfig, settings: AISettings, *, name: str) -> LLMBackend:
    """Build a remote backend from a provider description.

    Args:
        provider: kind, base URL, key and default model.
        settings: timeouts and retry policy.
        name: backend name reported in errors (e.g. ``cloud:openrouter``).

    Returns:
        An :class:`OpenAICompatBackend` or :class:`GeminiBackend`.
    """
    common: dict[str, Any] = {
        "timeout_s": settings.llm_timeout_s,
        "total_timeout_s": settings.llm_total_timeout_s,
        "retry": retry_policy(settings),
        "name": name,
    }
    if provider.kind == "gemini":
        return GeminiBackend(
            api_key=provider.api_key,
            model=provider.model or settings.gemini_model,
            base_url=provider.base_url,
            **common,
        )
    if not provider.base_url:
        raise LLMError(f"{name}: provider has no base URL", backend=name)
    return OpenAICompatBackend(
        base_url=provider.base_url,
        api_key=provider.api_key or "EMPTY",
        model=provider.model,
        **common,
    )


def get_backend(
    name: str | None,
    *,
    settings: AISettings,
    providers: ProviderResolver | None = None,
    retriever: Retriever | None = None,
    encoder: SentenceEncoder | None = None,
    local_backend: LocalLlamaBackend | None = None,
) -> LLMBackend:
    """Build the backend a bot's ``llm_backend`` names.

    Args:
        name: ``vllm``, ``gemini``, ``cloud:{provider_id}``, ``local`` or ``extractive``;
            empty means ``settings.default_llm_backend``.
        settings: AI settings (URLs, keys, models, timeouts).
        providers: looks up ``cloud:`` providers the admin configured.
        retriever: knowledge-base search for ``extractive``.
        encoder: sentence embedder ``extractive`` uses to narrow a passage to its answer.
        local_backend: the shared in-process engine (loaded once); a new one if ``None``.

    Returns:
        A ready backend. Remote ones hold an HTTP client: reuse them, ``aclose`` when done.

    Raises:
        LLMError: unknown name or unknown/misconfigured provider.
    """
    name = (name or settings.default_llm_backend or "extractive").strip()
    if name == "extractive":
        return ExtractiveBackend(
            retriever=retriever,
            encoder=encoder,
            min_score=settings.extractive_min_score,
            escalation_text=settings.escalation_text,
        )
    if name == "vllm":
        return provider_backend(
            ProviderConfig(
                kind="openai",
                base_url=settings.vllm_base_url,
                api_key=settings.vllm_api_key,
                model=settings.vllm_model,
            ),
            settings,
            name="vllm",
        )
    if name == "gemini":
        return provider_backend(
            ProviderConfig(
                kind="gemini",
                base_url=settings.gemini_base_url,
                api_key=settings.gemini_api_key,
                model=settings.gemini_model,
            ),
            settings,
            name="gemini",
        )
    if name == "local":
        return local_backend or LocalLlamaBackend(
            model_path=settings.local_model_path,
            cache_dir=Path(settings.data_dir) / "models",
            n_ctx=settings.local_n_ctx,
            threads=settings.local_threads,
            timeout_s=settings.llm_total_timeout_s,
        )
    if name.startswith("cloud:"):
        provider_id = name.removeprefix("cloud:")
        provider = providers(provider_id) if providers is not None else None
        if provider is None:
            raise LLMError(f"unknown LLM provider {provider_id!r}", backend=name)
        return provider_backend(provider, settings, name=name)
    raise LLMError(f"unknown LLM backend {name!r}", backend=name)
