"""AI previews and usage: ``/admin/ai/test``, ``/admin/tts/test``, ``/admin/ai/usage``.

A preview sends nothing to any customer and records no usage, so every role that may see the
bot may run one (guests included).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from orchestrator import crud
from orchestrator.api.ai_deps import AIDep, ai_errors
from orchestrator.api.deps import BoxDep, CurrentUser, SessionDep
from orchestrator.api.routes.instances import can_see, visible_instance
from orchestrator.models import BotInstance, TokenUsage
from orchestrator.schemas import Kind

router = APIRouter(tags=["ai"])

VOICE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"


class HistoryItem(BaseModel):
    """One earlier message of a conversation."""

    role: str = Field(default="user", pattern=r"^(user|assistant)$")
    text: str = Field(max_length=8000)


class AITestRequest(BaseModel):
    """``POST /admin/ai/test`` body: the bot (kind and id) and a customer message."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    bot_id: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=8000)
    history: list[HistoryItem] = Field(default_factory=list, max_length=100)


class TTSTestRequest(BaseModel):
    """``POST /admin/tts/test`` body."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    voice: str | None = Field(default=None, pattern=VOICE_PATTERN)
    engine: str | None = Field(default=None, pattern=r"^(piper|xtts|openvoice)$")


@router.post("/admin/ai/test")
async def preview_reply(
    body: AITestRequest, session: SessionDep, user: CurrentUser, box: BoxDep, ai: AIDep
) -> dict[str, Any]:
    """Preview the bot's answer to a message (nothing is sent, no usage is recorded)."""
    instance = visible_instance(session, body.kind, body.bot_id, user)
    config = crud.instance_settings(instance, box, reveal=False)
    with ai_errors():
        result = await ai.reply(
            config,
            body.message,
            [h.model_dump() for h in body.history],
            record_usage=False,
        )
    return {
        "text": result["text"],
        "confidence": result["confidence"],
        "sources": result["sources"],
        "escalate": result["escalate"],
        "usage": result["usage"],
        "backend": result["backend"],
        "model": result["model"],
    }


@router.post(
    "/admin/tts/test",
    response_class=Response,
    responses={200: {"content": {"audio/ogg": {}}, "description": "OGG/Opus voice note"}},
)
async def preview_tts(body: TTSTestRequest, _user: CurrentUser, ai: AIDep) -> Response:
    """Speak a text with a TTS engine and voice; answers OGG/Opus bytes."""
    if body.voice and ".." in body.voice:
        raise HTTPException(422, "voice must be a plain name")
    with ai_errors():
        audio = await ai.tts(body.text, body.voice or None, engine=body.engine)
    return Response(content=audio, media_type="audio/ogg")


@router.get("/admin/ai/usage")
def token_usage(
    session: SessionDep,
    user: CurrentUser,
    bot_id: Annotated[str | None, Query(max_length=64)] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    """Tokens used per bot per UTC day (the last ``days`` days), newest first."""
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    query = select(TokenUsage).where(TokenUsage.day >= since)
    if bot_id is not None:
        instance = session.get(BotInstance, bot_id)
        if instance is None or not can_see(user, instance):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"bot {bot_id!r} not found")
        query = query.where(TokenUsage.bot_id == bot_id)
    elif user.role == "user":
        own = crud.list_instances(session=session, owner_id=user.id)
        query = query.where(col(TokenUsage.bot_id).in_([i.id for i in own]))
    rows = session.exec(query.order_by(col(TokenUsage.day).desc(), col(TokenUsage.bot_id))).all()
    return {
        "bot_id": bot_id,
        "usage": [
            {
                "bot_id": r.bot_id,
                "day": r.day.isoformat(),
                "requests": r.requests,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "total_tokens": r.prompt_tokens + r.completion_tokens,
            }
            for r in rows
        ],
    }
