"""`AIService`: the one object the orchestrator's routes call for replies, speech and STT."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from orchestrator.ai.config import AISettings, ProviderConfig
from orchestrator.ai.grounding import check_grounding, retrieval_query
from orchestrator.ai.intent import PersonRequestDetector
from orchestrator.ai.llm.base import ChatMessage, LLMBackend, LLMError, LLMParams, Usage
from orchestrator.ai.llm.extractive import ExtractiveBackend, search_hint
from orchestrator.ai.llm.local import LocalLlamaBackend
from orchestrator.ai.llm.router import get_backend, provider_backend, retry_policy
from orchestrator.ai.rag.embeddings import Embedder, shared_embedder
from orchestrator.ai.rag.ingest import ExtractLimits
from orchestrator.ai.rag.store import KnowledgeBaseStore
from orchestrator.ai.rag.types import SearchResult
from orchestrator.ai.stt.base import STTBackend, STTError
from orchestrator.ai.stt.gemini import GeminiSTTBackend
from orchestrator.ai.stt.openai_compat import OpenAISTTBackend
from orchestrator.ai.tts.base import TTSBackend, TTSError
from orchestrator.ai.tts.http_engine import HTTPTTSBackend
from orchestrator.ai.tts.piper import PiperBackend
from orchestrator.ai.usage import UsageRecorder

logger = logging.getLogger(__name__)

ProviderLookup = Callable[[str], ProviderConfig | None | Awaitable[ProviderConfig | None]]

_LLM_PARAM_KEYS = ("model", "temperature", "max_tokens", "top_p", "stop")


class ReplyResult(TypedDict):
    """The answer of ``POST /internal/llm/reply`` and ``POST /admin/ai/test``."""

    text: str
    confidence: float
    sources: list[str]
    usage: dict[str, int]
    escalate: bool
    backend: str
    model: str
    #: why it escalates, when it is not the answer's confidence: ``ask_for_person``.
    reason: NotRequired[str]


def build_system_prompt(bot_config: Mapping[str, Any], passages: Sequence[SearchResult]) -> str:
    """Persona, then the bot's system prompt, then the retrieved passages with sources.

    Args:
        bot_config: the bot's flat config (``persona``, ``system_prompt``).
        passages: knowledge-base passages relevant to the new message.

    Returns:
        The system message (may be empty).
    """
    parts = [str(bot_config.get(key) or "").strip() for key in ("persona", "system_prompt")]
    prompt = "\n\n".join(p for p in parts if p)
    if passages:
        lines = [
            "Answer using the knowledge base passages below when they are relevant. "
            "If they do not contain the answer, say you will ask a colleague; do not invent "
            "facts.",
        ]
        for i, passage in enumerate(passages, 1):
            lines.append(f"[{i}] (source: {passage.source})\n{passage.text}")
        prompt = (prompt + "\n\n" if prompt else "") + "\n\n".join(lines)
    return prompt


def history_messages(history: Sequence[Mapping[str, Any]], limit: int) -> list[ChatMessage]:
    """Convert ``[{"role", "text"|"content"}]`` to chat messages, keeping the last ``limit``."""
    messages: list[ChatMessage] = []
    for item in list(history)[-limit:] if limit > 0 else []:
        text = str(item.get("text") or item.get("content") or "").strip()
        if not text:
            continue
        if item.get("role") in ("assistant", "bot", "model"):
            messages.append({"role": "assistant", "content": text})
        else:
            messages.append({"role": "user", "content": text})
    return messages


class AIService:
    """Replies, knowledge bases, speech and transcription for every bot.

    Build one per orchestrator (models load once, lazily, and are shared) and ``aclose`` it
    on shutdown.

    Args:
        settings: AI settings.
        providers: resolves ``cloud:{provider_id}`` to a provider (sync or async); the
            orchestrator passes a DB lookup that decrypts the key.
        usage: token usage recorder; a new in-memory one when ``None``.
        embedder: embedder; the process-wide one for the settings' model when ``None``.
        kb: knowledge-base store; built under ``{data_dir}/kb`` when ``None``.
    """

    def __init__(
        self,
        settings: AISettings,
        *,
        providers: ProviderLookup | None = None,
        usage: UsageRecorder | None = None,
        embedder: Embedder | None = None,
        kb: KnowledgeBaseStore | None = None,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.usage = usage or UsageRecorder()
        self.embedder = embedder or shared_embedder(settings.embedding_model_path)
        #: Requests for a person the bots' phrase list missed (only with the model loaded).
        self.person_requests = PersonRequestDetector(self.embedder)
        self.kb = kb or KnowledgeBaseStore(
            settings.kb_dir,
            self.embedder,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            embed_batch=settings.embed_batch,
            max_import_bytes=settings.max_import_bytes,
            max_upload_bytes=settings.max_upload_bytes,
            max_chunks=settings.max_chunks,
            max_import_expanded_bytes=settings.max_import_expanded_bytes,
            max_import_entries=settings.max_import_entries,
            extract_limits=ExtractLimits(
                pdf_timeout_s=settings.pdf_timeout_s,
                pdf_max_pages=settings.pdf_max_pages,
                max_chars=settings.max_document_chars,
            ),
        )
        self._backends: dict[str, LLMBackend] = {}
        self._local: LocalLlamaBackend | None = None
        self._tts: dict[str, TTSBackend] = {}
        self._stt: STTBackend | None = None

    # -- LLM --------------------------------------------------------------------------------

    def local_backend(self) -> LocalLlamaBackend:
        """The shared in-process llama.cpp engine (loads on its first generation)."""
        if self._local is None:
            self._local = LocalLlamaBackend(
                model_path=self.settings.local_model_path,
                cache_dir=Path(self.settings.data_dir) / "models",
                n_ctx=self.settings.local_n_ctx,
                threads=self.settings.local_threads,
                timeout_s=self.settings.llm_total_timeout_s,
            )
        return self._local

    async def _backend(
        self, name: str, passages: Sequence[SearchResult], query: str = ""
    ) -> LLMBackend:
        if name == "extractive":

            async def retrieve(_query: str) -> Sequence[SearchResult]:
                return passages

            return ExtractiveBackend(
                retriever=retrieve,
                encoder=self.embedder.encode,
                min_score=self.settings.extractive_min_score,
                escalation_text=self.settings.escalation_text,
                query=query or None,
            )
        if name == "local":
            return self.local_backend()
        key = name
        if name.startswith("cloud:"):
            provider = await self._provider(name.removeprefix("cloud:"))
            if provider is None:
                raise LLMError(f"unknown LLM provider {name!r}", backend=name)
            # A provider edited by an admin gets a fresh client.
            key = f"{name}|{provider.model_dump_json()}"
            if key not in self._backends:
                self._backends[key] = provider_backend(provider, self.settings, name=name)
        if key not in self._backends:
            self._backends[key] = get_backend(name, settings=self.settings)
        return self._backends[key]

    async def _provider(self, provider_id: str) -> ProviderConfig | None:
        if self.providers is None:
            return None
        found = self.providers(provider_id)
        if inspect.isawaitable(found):
            found = await found
        return found

    async def retrieve(
        self, kb_ids: Sequence[str | int], query: str, k: int | None = None
    ) -> list[SearchResult]:
        """Passages for ``query`` from the bases that exist among ``kb_ids``, best first."""
        existing = [str(i) for i in kb_ids if self.kb.exists(i)]
        missing = [str(i) for i in kb_ids if str(i) not in existing]
        if missing:
            logger.warning("knowledge bases not found, skipped: %s", missing)
        return await self.kb.search_many(existing, query, k or self.settings.rag_top_k)

    async def reply(
        self,
        bot_config: Mapping[str, Any],
        text: str,
        history: Sequence[Mapping[str, Any]] = (),
        *,
        record_usage: bool = True,
    ) -> ReplyResult:
        """Answer a customer's message as the bot would.

        The system prompt is the bot's ``persona`` and ``system_prompt`` plus the passages of
        its ``knowledge_base_ids`` found for the question (hybrid search; kept when their
        cosine score reaches ``rag_min_score`` or they contain at least ``rag_min_lexical``
        of the question's words); ``llm_backend`` picks the backend and ``llm_params``
        (model, temperature, max_tokens, top_p, stop) tune it.

        The search query is the customer's question alone (with their previous message
        only when the question refers back to it, never the bot's own messages; see
        :func:`~orchestrator.ai.grounding.retrieval_query`). For a bot with knowledge bases,
        a generative backend's answer must pass the grounding check
        (:func:`~orchestrator.ai.grounding.check_grounding`); one that does not is replaced
        by ``escalation_text`` with ``escalate=True``.

        Args:
            bot_config: the bot's flat config (as ``GET /internal/config`` returns it).
            text: the new customer message.
            history: earlier messages, ``[{"role": "user"|"assistant", "text"}]``, oldest
                first; all are used up to the ``llm_history_messages`` hard cap.
            record_usage: ``False`` for previews (``POST /admin/ai/test``).

        Returns:
            ``{text, confidence, sources, usage, escalate, backend, model}``. ``confidence``
            is the backend's own for ``extractive``; for generative backends it is 1.0 for a
            bot without knowledge bases, else the best passage score (how grounded it is),
            0 when the grounding check failed.

        Raises:
            LLMError: the backend failed for good; the bot should send ``fallback_text``.
        """
        backend_name = str(bot_config.get("llm_backend") or self.settings.default_llm_backend)
        if self.person_requests.available and text.strip():
            score = await asyncio.to_thread(self.person_requests.score, text)
            if score >= self.person_requests.threshold:
                # A request for a person (human handoff, issue 13): no answer to generate.
                return ReplyResult(
                    text=self.settings.escalation_text,
                    confidence=0.0,
                    sources=[],
                    usage={},
                    escalate=True,
                    backend="intent",
                    model=self.embedder.model_name,
                    reason="ask_for_person",
                )
        kb_ids = list(bot_config.get("knowledge_base_ids") or [])
        history = list(history)
        last = history[-1] if history else {}
        said = str(last.get("text") or last.get("content") or "").strip()
        if last.get("role") == "user" and said == text.strip():
            history.pop()  # bots record the message before asking: it is not history yet
        query = retrieval_query(text, history)
        passages: list[SearchResult] = []
        if kb_ids and text.strip():
            # Extractive answers pick a sentence among more passages than a prompt holds.
            k = self.settings.rag_top_k
            extractive = backend_name == "extractive"
            hint = search_hint(query)
            passages = await self.retrieve(
                kb_ids, f"{query} {hint}" if hint else query, max(k, 6) if extractive else k
            )
        relevant = [
            p
            for p in passages
            if p.score >= self.settings.rag_min_score or p.lexical >= self.settings.rag_min_lexical
        ]
        # Extractive weighs every retrieved passage itself (its own threshold decides).
        backend = await self._backend(
            backend_name, passages if backend_name == "extractive" else relevant, query
        )
        messages: list[ChatMessage] = []
        system = build_system_prompt(bot_config, relevant)
        if system:
            messages.append({"role": "system", "content": system})
        messages.extend(history_messages(history, self.settings.llm_history_messages))
        messages.append({"role": "user", "content": text})
        raw_params = bot_config.get("llm_params") or {}
        params = LLMParams(
            **{
                k: raw_params[k]
                for k in _LLM_PARAM_KEYS  # type: ignore[typeddict-item]
                if k in raw_params
            }
        )
        result = await backend.generate(messages, params=params)
        escalate = result.escalate
        text_out = result.text
        if isinstance(backend, ExtractiveBackend):
            confidence, sources = result.confidence, result.sources
        else:
            confidence = 1.0 if not kb_ids else max((p.score for p in relevant), default=0.0)
            sources = list(dict.fromkeys(p.source for p in relevant))
            if kb_ids and not escalate:
                owner_text = [str(bot_config.get(k) or "") for k in ("persona", "system_prompt")]
                grounding = check_grounding(result.text, relevant, owner_text)
                if not grounding.supported:
                    logger.info(
                        "%s: answer not grounded in the knowledge base (%s); escalating",
                        backend.name,
                        grounding.reason,
                    )
                    text_out, escalate, confidence = self.settings.escalation_text, True, 0.0
        if record_usage and result.usage.total_tokens:
            await self.usage.record(
                str(bot_config.get("id", "")),
                result.usage,
                backend=backend.name,
                model=result.model,
            )
        return ReplyResult(
            text=text_out,
            confidence=round(max(0.0, min(1.0, confidence)), 4),
            sources=sources,
            usage=result.usage.as_dict(),
            escalate=escalate,
            backend=backend.name,
            model=result.model,
        )

    # -- TTS --------------------------------------------------------------------------------

    def tts_backend(self, engine: str | None = None) -> TTSBackend:
        """The TTS engine named ``engine`` (``piper``, ``xtts``, ``openvoice``), built once.

        Raises:
            TTSError: unknown engine or an HTTP engine without a base URL.
        """
        engine = engine or self.settings.tts_engine
        if engine not in self._tts:
            if engine == "piper":
                self._tts[engine] = PiperBackend(
                    default_voice=self.settings.piper_voice_path,
                    voices_dir=self.settings.piper_voices_dir,
                    sample_rate=self.settings.tts_sample_rate,
                )
            elif engine in ("xtts", "openvoice"):
                base_url = (
                    self.settings.xtts_base_url
                    if engine == "xtts"
                    else self.settings.openvoice_base_url
                )
                if not base_url:
                    raise TTSError(f"{engine}: no base URL configured")
                self._tts[engine] = HTTPTTSBackend(
                    name=engine,
                    base_url=base_url,
                    timeout_s=self.settings.tts_timeout_s,
                    sample_rate=self.settings.tts_sample_rate,
                )
            else:
                raise TTSError(f"unknown TTS engine {engine!r}")
        return self._tts[engine]

    async def tts(
        self, text: str, voice: str | None = None, *, engine: str | None = None
    ) -> bytes:
        """Speak ``text`` as an OGG/Opus voice note.

        Args:
            text: what to say.
            voice: a voice of the engine (piper: ``.onnx`` path or name in the voices dir).
            engine: ``piper``, ``xtts`` or ``openvoice``; ``settings.tts_engine`` if ``None``.

        Returns:
            OGG/Opus bytes (``audio/ogg``).

        Raises:
            TTSError: nothing could be produced.
        """
        return await self.tts_backend(engine).synthesize(text, voice)

    # -- STT --------------------------------------------------------------------------------

    def stt_backend(self) -> STTBackend:
        """The configured transcription backend, built once.

        Raises:
            STTError: none is configured.
        """
        if self._stt is None:
            s = self.settings
            kind = s.stt_backend or (
                "gemini" if s.gemini_api_key else "openai" if s.stt_base_url else None
            )
            common: dict[str, Any] = {
                "timeout_s": s.llm_timeout_s,
                "total_timeout_s": s.llm_total_timeout_s,
                "retry": retry_policy(s),
            }
            if kind == "gemini":
                model = s.stt_model if s.stt_model.startswith("gemini") else s.gemini_model
                self._stt = GeminiSTTBackend(
                    api_key=s.gemini_api_key, model=model, base_url=s.gemini_base_url, **common
                )
            elif kind == "openai":
                self._stt = OpenAISTTBackend(
                    base_url=s.stt_base_url or s.vllm_base_url,
                    api_key=s.stt_api_key,
                    model=s.stt_model,
                    **common,
                )
            else:
                raise STTError("no speech-to-text backend configured")
        return self._stt

    async def transcribe(self, audio: bytes, mime: str = "audio/ogg") -> str:
        """Transcribe a voice message; the bot handles the result as ``[voice] text``.

        Raises:
            STTError: not configured or the service failed for good.
        """
        return await self.stt_backend().transcribe(audio, mime)

    # -- usage / lifecycle ------------------------------------------------------------------

    def usage_today(self, bot_id: str) -> dict[str, Any]:
        """Today's (UTC) token totals of a bot."""
        return self.usage.get(bot_id).as_dict()

    async def aclose(self) -> None:
        """Close HTTP clients and worker threads."""
        for backend in list(self._backends.values()):
            await backend.aclose()
        for tts in list(self._tts.values()):
            await tts.aclose()
        if self._stt is not None:
            await self._stt.aclose()
        self._backends.clear()
        self._tts.clear()
        self._stt = None
        self.kb.close()


def empty_usage() -> Usage:
    """A zero usage (for routes building error answers)."""
    return Usage()
