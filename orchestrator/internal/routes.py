"""Internal API: bots only, each on its own instance (docs/internals.md)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from orchestrator import crud
from orchestrator.api.deps import BoxDep, SessionDep, SettingsDep
from orchestrator.models import BotInstance
from orchestrator.security import create_internal_token
from shared.tokens import TokenError, verify_internal_token

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/internal", tags=["internal"])
bearer = HTTPBearer(auto_error=False)


def current_bot(
    session: SessionDep,
    settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> BotInstance:
    """The instance whose bot holds this token (current spawn generation only)."""
    if creds is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bot token required")
    try:
        claims = verify_internal_token(settings.resolved_secret_key(), creds.credentials)
    except TokenError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid bot token: {exc}") from exc
    instance = session.get(BotInstance, str(claims.get("sub")))
    if instance is None or instance.kind != claims.get("kind"):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "token names no such bot")
    if claims.get("gen") != instance.spawn_generation:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "token of an earlier run of this bot")
    return instance


BotDep = Annotated[BotInstance, Depends(current_bot)]


def own_instance(instance_id: str, bot: BotDep) -> BotInstance:
    """A path naming another bot's id is refused."""
    if instance_id != bot.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a bot may reach only its own instance")
    return bot


@router.get("/config")
def get_config(bot: BotDep, box: BoxDep) -> dict[str, Any]:
    """The calling bot's config, secrets in clear."""
    return crud.instance_settings(bot, box, reveal=True)


@router.get("/instances/{instance_id}/config")
def get_instance_config(
    bot: Annotated[BotInstance, Depends(own_instance)], box: BoxDep
) -> dict[str, Any]:
    """Same as ``/internal/config``, addressed by id (another bot's id → 403)."""
    return crud.instance_settings(bot, box, reveal=True)


@router.post("/token/refresh")
def refresh_token(bot: BotDep, settings: SettingsDep) -> dict[str, Any]:
    """A fresh token for the same spawn generation."""
    token = create_internal_token(
        settings.resolved_secret_key(),
        instance_id=bot.id,
        kind=bot.kind,
        gen=bot.spawn_generation,
        minutes=settings.internal_token_minutes,
    )
    return {"token": token, "expires_in": settings.internal_token_minutes * 60}


class BotEvent(BaseModel):
    """A lifecycle or error event a bot reports."""

    type: str = Field(min_length=1, max_length=64)
    message: str = Field(default="", max_length=4000)
    data: dict[str, Any] = Field(default_factory=dict)


@router.post("/events", status_code=status.HTTP_202_ACCEPTED)
def post_event(
    request: Request, bot: BotDep, session: SessionDep, event: Annotated[BotEvent, Body()]
) -> dict[str, bool]:
    """Record a bot's event in the audit log and the orchestrator log."""
    logger.info(
        "bot event",
        extra={"bot_id": bot.id, "event": event.type, "event_message": event.message},
    )
    crud.audit(
        session=session,
        actor=None,
        action=f"bot.event.{event.type}",
        object_type=bot.kind,
        object_id=bot.id,
        detail={"message": event.message, **event.data},
    )
    supervisor = getattr(request.app.state, "supervisor", None)
    if supervisor is not None:
        supervisor.note_bot_event(bot.id, event.type, event.message)
    events = getattr(request.app.state, "bot_events", None)
    if events is not None:
        events.append({"bot_id": bot.id, "type": event.type, "message": event.message})
    return {"ok": True}
