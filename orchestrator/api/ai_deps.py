"""The orchestrator's one `AIService`: built lazily, wired to the store, injected into routes.

Importing the AI stack (FAISS, numpy, the model clients) takes a couple of seconds, so
``create_app`` only makes an :class:`AIHolder`; the service is built on first use or by a
background warm-up after startup, which then loads the embedding model too. While that warm-up
runs, ``POST /internal/llm/reply`` for a bot with knowledge bases answers 503 with
``Retry-After`` (:func:`warming_up`): the bot waits and asks again instead of sending its
fallback text.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from orchestrator.ai.config import ProviderConfig
from orchestrator.models import LLMProvider, TokenUsage
from orchestrator.security import SecretBox
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from orchestrator.ai.service import AIService
    from orchestrator.ai.usage import UsageRecord

logger = logging.getLogger(__name__)

#: Provider kinds as the admin API names them → the AI package's names.
PROVIDER_KINDS = {"openai-compatible": "openai", "gemini": "gemini"}


def provider_config(row: LLMProvider, box: SecretBox) -> ProviderConfig:
    """A provider row as the AI package takes it (API key decrypted)."""
    kind = PROVIDER_KINDS.get(row.kind, "openai")
    return ProviderConfig(
        kind=kind,  # type: ignore[arg-type]
        base_url=row.base_url or None,
        api_key=box.decrypt(row.api_key_enc).get("api_key") or None,
        model=row.model,
    )


def _add_usage(engine: Engine, record: UsageRecord) -> None:
    for attempt in range(3):
        with Session(engine) as session:
            row = session.exec(
                select(TokenUsage).where(
                    TokenUsage.bot_id == record.bot_id, TokenUsage.day == record.day
                )
            ).first()
            if row is None:
                row = TokenUsage(bot_id=record.bot_id, day=record.day)
            row.requests += 1
            row.prompt_tokens += record.prompt_tokens
            row.completion_tokens += record.completion_tokens
            session.add(row)
            try:
                session.commit()
                return
            except IntegrityError:  # another writer inserted the day's row first
                session.rollback()
                if attempt == 2:
                    raise


class AIHolder:
    """Builds the app's :class:`AIService` once, on first use, thread-safely.

    Args:
        settings: orchestrator settings (``Settings.ai_settings()``).
        engine: the store, for ``cloud:`` providers and token usage.
        box: decrypts provider API keys.
    """

    def __init__(self, settings: Settings, engine: Engine, box: SecretBox) -> None:
        self._settings = settings
        self._engine = engine
        self._box = box
        self._lock = threading.Lock()
        self._service: AIService | None = None
        self._warming = False

    @property
    def warming(self) -> bool:
        """Whether the start-up warm-up (AI stack, embedding model) is still running."""
        return self._warming

    @property
    def built(self) -> AIService | None:
        """The service if it has been built, else ``None``."""
        return self._service

    def _lookup_provider(self, provider_id: str) -> ProviderConfig | None:
        with Session(self._engine) as session:
            row = session.get(LLMProvider, provider_id)
            return provider_config(row, self._box) if row is not None else None

    async def _persist_usage(self, record: UsageRecord) -> None:
        await asyncio.to_thread(_add_usage, self._engine, record)

    def get(self) -> AIService:
        """The service, built on the first call."""
        if self._service is not None:
            return self._service
        with self._lock:
            if self._service is None:
                from orchestrator.ai.service import AIService

                service = AIService(self._settings.ai_settings(), providers=self._lookup_provider)
                service.usage.add_hook(self._persist_usage)
                self._service = service
                logger.info("AI service ready")
        return self._service

    async def warm_up(self) -> None:
        """Import the AI stack and load the embedding model in a worker thread.

        :attr:`warming` is true meanwhile. A model that fails to load is logged and left to
        load (and fail with a clear error) on first use.
        """
        self._warming = True
        try:
            await asyncio.to_thread(self._warm)
        finally:
            self._warming = False

    def _warm(self) -> None:
        service = self.get()
        try:
            service.embedder.load()
        except Exception as exc:  # a missing or broken model: reported when a request needs it
            logger.warning("embedding model warm-up failed", extra={"error": str(exc)})
        else:
            logger.info("embedding model loaded")

    async def aclose(self) -> None:
        """Close the service's clients and threads if it was built."""
        if self._service is not None:
            await self._service.aclose()
            self._service = None


def install_ai(app: FastAPI, settings: Settings, engine: Engine, box: SecretBox) -> AIHolder:
    """Put an :class:`AIHolder` on ``app.state.ai`` with its warm-up and shutdown hooks."""
    holder = AIHolder(settings, engine, box)
    app.state.ai = holder
    tasks: set[asyncio.Task[None]] = set()

    async def _warm(_app: FastAPI) -> None:
        holder._warming = True  # from the start, not from the task's first step
        task = asyncio.create_task(holder.warm_up())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _close(_app: FastAPI) -> None:
        for task in list(tasks):
            task.cancel()
        await holder.aclose()

    app.state.startup_hooks.append(_warm)
    app.state.shutdown_hooks.append(_close)
    return holder


WARM_UP_RETRY_AFTER_S = 5


def warming_up(request: Request) -> bool:
    """Whether the orchestrator is still warming up its models (see :class:`AIHolder`)."""
    holder: AIHolder | None = getattr(request.app.state, "ai", None)
    return holder is not None and holder.warming


def get_ai(request: Request) -> AIService:
    """The app's AI service (built on first use)."""
    holder: AIHolder = request.app.state.ai
    return holder.get()


if TYPE_CHECKING:
    AIDep = Annotated[AIService, Depends(get_ai)]
else:  # the real class would import the whole AI stack at startup
    AIDep = Annotated[Any, Depends(get_ai)]


def _tts_status(message: str) -> int:
    # What the caller can fix (voice, engine, text) is a 422; an engine that failed is a 503.
    bad_input = ("unknown", "not found", "nothing to say", "no base URL", "no audio")
    return 422 if any(m in message for m in bad_input) else status.HTTP_503_SERVICE_UNAVAILABLE


@contextmanager
def ai_errors() -> Iterator[None]:
    """Turn AI-package errors into HTTP answers with a message (never a bare 500).

    Knowledge-base errors keep their status; an unsupported document is 415; a backend that
    failed for good (LLM, STT, TTS engine down) is 503 so a bot sends its fallback text.
    """
    from orchestrator.ai.llm.base import LLMError
    from orchestrator.ai.rag.ingest import UnsupportedDocumentError
    from orchestrator.ai.rag.store import KnowledgeBaseError
    from orchestrator.ai.stt.base import STTError
    from orchestrator.ai.tts.base import TTSError

    try:
        yield
    except KnowledgeBaseError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    except UnsupportedDocumentError as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from exc
    except LLMError as exc:
        logger.warning("LLM backend failed", extra={"backend": exc.backend, "error": str(exc)})
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"LLM backend {exc.backend!r} failed: {exc}; send the fallback text",
        ) from exc
    except STTError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"speech-to-text unavailable: {exc}"
        ) from exc
    except TTSError as exc:
        raise HTTPException(_tts_status(str(exc)), f"text-to-speech failed: {exc}") from exc


async def read_upload(upload: Any, limit: int, what: str) -> bytes:
    """Read an ``UploadFile`` of at most ``limit`` bytes; larger → 413."""
    data: bytes = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            413,
            f"{what} is larger than the {limit} byte limit",
        )
    return data
