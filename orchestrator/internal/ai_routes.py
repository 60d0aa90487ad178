"""Internal AI API (bots only, each for itself): replies, knowledge, speech, transcription.

Every route works from the calling bot's own config in the store (persona, system prompt,
``llm_backend``, ``llm_params``, ``knowledge_base_ids``, ``tts_*``). A backend that fails for
good answers 503 with a clear detail; the bot then sends its fallback text.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, Response, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator import crud
from orchestrator.api.ai_deps import (
    WARM_UP_RETRY_AFTER_S,
    AIDep,
    AIHolder,
    ai_errors,
    read_upload,
    warming_up,
)
from orchestrator.api.deps import BoxDep
from orchestrator.internal.routes import BotDep
from orchestrator.models import BotInstance
from orchestrator.schemas import check_voice_name

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/internal", tags=["internal"])

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # the OpenAI transcription API's own limit


class HistoryItem(BaseModel):
    """One earlier message, oldest first."""

    role: str = Field(default="user", max_length=16)
    text: str = Field(default="", max_length=8000)


class ReplyRequest(BaseModel):
    """``POST /internal/llm/reply`` body."""

    text: str = Field(max_length=8000)
    history: list[HistoryItem] = Field(default_factory=list, max_length=200)
    customer: str = Field(default="", max_length=200)


class RagSearchRequest(BaseModel):
    """``POST /internal/rag/search`` body: searches the bot's linked bases."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=50)


class QARequest(BaseModel):
    """``POST /internal/knowledge/qa`` body; ``kb_id`` defaults to the first linked base."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000)
    answer: str = Field(min_length=1, max_length=8000)
    kb_id: str | None = Field(default=None, max_length=64)


class TTSRequest(BaseModel):
    """``POST /internal/tts`` body; ``voice`` defaults to the bot's ``tts_voice``."""

    text: str = Field(min_length=1, max_length=2000)
    voice: str | None = Field(default=None, max_length=200)

    @field_validator("voice")
    @classmethod
    def _voice(cls, value: str | None) -> str | None:
        return check_voice_name(value)


def _kb_ids(bot: BotInstance) -> list[str]:
    return [str(i) for i in (bot.config or {}).get("knowledge_base_ids") or []]


@router.post("/llm/reply")
async def llm_reply(
    request: Request, body: ReplyRequest, bot: BotDep, box: BoxDep
) -> dict[str, Any]:
    """The bot's answer to a customer message (503 when its LLM fails: send the fallback).

    While the orchestrator warms up its models after a start, a bot with knowledge bases gets
    503 with ``Retry-After``: it waits and asks again rather than sending its fallback text.
    """
    if _kb_ids(bot) and warming_up(request):
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the orchestrator is loading its models; ask again shortly",
            headers={"Retry-After": str(WARM_UP_RETRY_AFTER_S)},
        )
    holder: AIHolder = request.app.state.ai
    built = holder.built
    ai = built if built is not None else await asyncio.to_thread(holder.get)  # off the loop
    config = crud.instance_settings(bot, box, reveal=False)
    history = [h.model_dump() for h in body.history]
    with ai_errors():
        result = await ai.reply(config, body.text, history)
    logger.info(
        "llm reply",
        extra={
            "bot_id": bot.id,
            "backend": result["backend"],
            "escalate": result["escalate"],
            "tokens": result["usage"].get("total_tokens", 0),
        },
    )
    return {
        "text": result["text"],
        "confidence": result["confidence"],
        "sources": result["sources"],
        "usage": result["usage"],
        "escalate": result["escalate"],
        "reason": result.get("reason", ""),
    }


@router.post("/rag/search")
async def rag_search(body: RagSearchRequest, bot: BotDep, ai: AIDep) -> dict[str, Any]:
    """The best passages from the bot's linked knowledge bases."""
    with ai_errors():
        results = await ai.retrieve(_kb_ids(bot), body.query, body.k)
    return {
        "results": [
            {"text": r.text, "score": round(r.score, 6), "source": r.source, "kb_id": r.kb_id}
            for r in results
        ]
    }


@router.post("/knowledge/qa", status_code=status.HTTP_201_CREATED)
async def add_qa(body: QARequest, bot: BotDep, ai: AIDep) -> dict[str, Any]:
    """Add an owner's answer as a Q/A entry to one of the bot's linked bases."""
    linked = _kb_ids(bot)
    if not linked:
        raise HTTPException(status.HTTP_409_CONFLICT, "this bot has no knowledge base linked")
    kb_id = body.kb_id or linked[0]
    if kb_id not in linked:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"knowledge base {kb_id!r} is not linked to this bot"
        )
    with ai_errors():
        info = await ai.kb.add_qa(kb_id, body.question, body.answer)
    return {"kb_id": kb_id, **info.as_dict()}


@router.post(
    "/tts",
    response_class=Response,
    responses={200: {"content": {"audio/ogg": {}}, "description": "OGG/Opus voice note"}},
)
async def tts(body: TTSRequest, bot: BotDep, ai: AIDep) -> Response:
    """Speak a text with the bot's TTS engine and voice; answers OGG/Opus bytes."""
    config = bot.config or {}
    voice = body.voice or str(config.get("tts_voice") or "") or None
    engine = str(config.get("tts_engine") or "") or None
    with ai_errors():
        audio = await ai.tts(body.text, voice, engine=engine)
    return Response(content=audio, media_type="audio/ogg")


@router.post("/stt")
async def stt(
    bot: BotDep,
    ai: AIDep,
    file: Annotated[UploadFile, File(description="the voice message (OGG/Opus, MP3, ...)")],
) -> dict[str, str]:
    """Transcribe a customer's voice message."""
    data = await read_upload(file, MAX_AUDIO_BYTES, "audio")
    if not data:
        raise HTTPException(422, "empty audio file")
    mime = (file.content_type or "audio/ogg").split(";")[0].strip() or "audio/ogg"
    with ai_errors():
        text = await ai.transcribe(data, mime)
    logger.info("voice note transcribed", extra={"bot_id": bot.id, "chars": len(text)})
    return {"text": text}
