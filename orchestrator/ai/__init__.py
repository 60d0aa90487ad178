"""Shared AI backends: LLM router, RAG on FAISS, TTS and STT — offline by default.

The package is self-contained: it depends on nothing else in ``orchestrator`` so the admin
and internal routes can build one :class:`AIService` from :class:`AISettings` and inject it.

Names are resolved lazily (PEP 562): ``import orchestrator.ai.config`` stays cheap, and the
heavy stack (FAISS, numpy, the model clients) loads only when :class:`AIService` is first
used, so the orchestrator starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.ai.config import AISettings, ProviderConfig
    from orchestrator.ai.service import AIService, ReplyResult
    from orchestrator.ai.usage import UsageRecorder

__all__ = ["AIService", "AISettings", "ProviderConfig", "ReplyResult", "UsageRecorder"]

_WHERE = {
    "AIService": "orchestrator.ai.service",
    "ReplyResult": "orchestrator.ai.service",
    "AISettings": "orchestrator.ai.config",
    "ProviderConfig": "orchestrator.ai.config",
    "UsageRecorder": "orchestrator.ai.usage",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
