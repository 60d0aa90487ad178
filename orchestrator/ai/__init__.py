"""Shared AI backends: LLM router, RAG on FAISS, TTS and STT — offline by default.

The package is self-contained: it depends on nothing else in ``orchestrator`` so the admin
and internal routes can build one :class:`AIService` from :class:`AISettings` and inject it.
"""

from orchestrator.ai.config import AISettings, ProviderConfig
from orchestrator.ai.service import AIService, ReplyResult
from orchestrator.ai.usage import UsageRecorder

__all__ = ["AIService", "AISettings", "ProviderConfig", "ReplyResult", "UsageRecorder"]
