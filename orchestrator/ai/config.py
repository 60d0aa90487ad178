"""Settings for the AI backends.

`AISettings` is declared once, here: its own ``BaseSettings`` read from ``FLOTILLA_AI_*``
environment variables (``FLOTILLA_AI_VLLM_MODEL`` → ``vllm_model``). The orchestrator's
`Settings` holds one as ``settings.ai`` (``Settings(ai_vllm_model=...)`` still works) and
``Settings.ai_settings()`` gives it with the orchestrator's ``data_dir``; tests may build one
directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ProviderKind = Literal["openai", "gemini"]


class ProviderConfig(BaseModel):
    """A remote LLM/STT provider: an OpenAI-compatible server or the Gemini API.

    Attributes:
        kind: ``openai`` (any OpenAI-compatible server, e.g. vLLM) or ``gemini``.
        base_url: API root, e.g. ``http://vllm:8000/v1``; ``None`` means the vendor default.
        api_key: key in clear (the orchestrator decrypts it before building this).
        model: default model name.
    """

    kind: ProviderKind = "openai"
    base_url: str | None = None
    api_key: str | None = None
    model: str = ""


class AISettings(BaseSettings):
    """Every knob of the AI package, with offline defaults (environment: ``FLOTILLA_AI_<NAME>``;
    an empty value means unset, so the default applies).

    Attributes:
        data_dir: root of orchestrator data; knowledge bases live in ``{data_dir}/kb/{id}/``.
        default_llm_backend: used when a bot's ``llm_backend`` is empty.
        llm_timeout_s: timeout of one LLM request.
        llm_total_timeout_s: hard deadline for a reply including retries (never hang).
        llm_max_retries: retries after the first attempt on 429/5xx/timeouts.
        llm_backoff_base_s: first backoff delay; doubles each retry, with jitter.
        llm_backoff_max_s: cap of one backoff delay (and of an honoured Retry-After).
        llm_history_messages: hard cap on the earlier messages put in the prompt; the bot sends
            as many as its ``llm_history`` setting says (0–50) and all of them are used.
        vllm_base_url: OpenAI-compatible root for the ``vllm`` backend.
        vllm_api_key: its key (vLLM accepts any string by default).
        vllm_model: its model.
        gemini_api_key: key for the ``gemini`` backend and Gemini STT.
        gemini_base_url: API root override (tests point it at a local fake).
        gemini_model: model for ``gemini``.
        local_model_path: GGUF file for ``local``; ``None`` assembles the bundled Gemma 3 270M.
        local_n_ctx: context window of the local engine.
        local_threads: CPU threads of the local engine.
        embedding_model_path: sentence-transformers directory; ``None`` = bundled MiniLM.
        chunk_size: characters per chunk.
        chunk_overlap: characters shared by neighbouring chunks.
        embed_batch: passages embedded per batch of a knowledge-base build (its progress
            advances once per batch).
        rag_top_k: passages retrieved for a reply.
        rag_min_score: passages below this cosine score are not put in the prompt (unless
            they reach ``rag_min_lexical``).
        rag_min_lexical: passages containing at least this share of the question's content
            words are put in the prompt whatever their cosine score.
        extractive_min_score: the ``extractive`` backend answers only when its best unit
            scores this much (see ``orchestrator.ai.llm.extractive.unit_score``).
        escalation_text: what ``extractive`` says when it cannot answer.
        max_import_bytes: a knowledge-base ZIP above this size is refused.
        max_upload_bytes: an uploaded document above this size is refused.
        max_chunks: chunks one knowledge base may hold (upload, import, rebuild; 413 above).
        max_import_expanded_bytes: bytes a ZIP import may decompress to, counted while reading.
        max_import_entries: entries a ZIP import may have.
        pdf_timeout_s: a PDF is read in a worker process killed after this many seconds.
        pdf_max_pages: PDFs with more pages are refused.
        max_document_chars: documents with more extracted text than this are refused.
        tts_engine: ``piper``, ``xtts`` or ``openvoice``.
        piper_voice_path: piper ``.onnx`` voice; ``None`` = bundled en_US joe medium.
        piper_voices_dir: a ``voice`` name resolves to ``{piper_voices_dir}/{voice}.onnx``.
        tts_sample_rate: OGG/Opus output rate (8000, 12000, 16000, 24000 or 48000).
        xtts_base_url: root of an XTTS HTTP server.
        openvoice_base_url: root of an OpenVoice HTTP server.
        tts_timeout_s: timeout for HTTP TTS engines.
        stt_backend: ``openai`` (``/audio/transcriptions``) or ``gemini``; ``None`` disables.
        stt_base_url: OpenAI-compatible root for STT (defaults to ``vllm_base_url``).
        stt_api_key: its key.
        stt_model: transcription model (``whisper-1`` or a Gemini model).
    """

    data_dir: Path = Path("data")
    default_llm_backend: str = "extractive"
    llm_timeout_s: float = 30.0
    llm_total_timeout_s: float = 60.0
    llm_max_retries: int = 3
    llm_backoff_base_s: float = 0.5
    llm_backoff_max_s: float = 10.0
    llm_history_messages: int = Field(default=50, ge=0, le=200)
    vllm_base_url: str = "http://127.0.0.1:8001/v1"
    vllm_api_key: str = "EMPTY"
    vllm_model: str = ""
    gemini_api_key: str | None = None
    gemini_base_url: str | None = None
    gemini_model: str = "gemini-2.5-flash"
    local_model_path: Path | None = None
    local_n_ctx: int = 2048
    local_threads: int = 2
    embedding_model_path: Path | None = None
    chunk_size: int = Field(default=700, ge=100)
    chunk_overlap: int = Field(default=120, ge=0)
    embed_batch: int = Field(default=64, ge=1, le=4096)
    rag_top_k: int = 4
    rag_min_score: float = 0.25
    rag_min_lexical: float = 0.5
    extractive_min_score: float = 0.42
    escalation_text: str = "Thanks for your question! A colleague will get back to you shortly."
    max_import_bytes: int = 250 * 1024 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024
    max_chunks: int = Field(default=50_000, ge=1)
    max_import_expanded_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_import_entries: int = Field(default=10_000, ge=3)
    pdf_timeout_s: float = Field(default=120.0, gt=0)
    pdf_max_pages: int = Field(default=2000, ge=1)
    max_document_chars: int = Field(default=5_000_000, ge=1000)
    tts_engine: str = "piper"
    piper_voice_path: Path | None = None
    piper_voices_dir: Path | None = None
    tts_sample_rate: int = 24000
    xtts_base_url: str | None = None
    openvoice_base_url: str | None = None
    tts_timeout_s: float = 60.0
    stt_backend: str | None = None
    stt_base_url: str | None = None
    stt_api_key: str | None = None
    stt_model: str = "whisper-1"

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_AI_", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """``FLOTILLA_AI_STT_BACKEND=`` (or ``""`` passed in) means "not set": the default."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data

    @property
    def kb_dir(self) -> Path:
        """Directory holding one sub-directory per knowledge base."""
        return self.data_dir / "kb"
