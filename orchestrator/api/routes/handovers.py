"""The human-handoff desk (issue 13): handovers across the bots a user may see, and Take /
Reply / Resolve on one.

Lists are read from each bot's own database opened read-only (``shared.store.reader``), like
the conversations; every change goes through the running bot's control API
(``/control/handovers/{id}/...``, ``shared.botkit.desk``), so the bot stays its database's one
writer and ownership changes with its handover row in one transaction. Admins see every bot,
users their own, guests every bot read-only (their Take/Reply/Resolve are 403).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from orchestrator import crud
from orchestrator.api.ai_deps import get_ai
from orchestrator.api.deps import CurrentUser, SessionDep, SupervisorDep
from orchestrator.api.routes import proposals
from orchestrator.api.routes.conversations import KEY_PATH, bot_db_path
from orchestrator.api.routes.instances import ManagedInstance, VisibleInstance
from orchestrator.models import BotInstance, User
from orchestrator.security import create_control_token
from orchestrator.settings import Settings
from orchestrator.supervisor import Supervisor
from shared.store.handovers import OPEN_STATUSES, STATUSES
from shared.store.reader import count_handovers, get_handover, list_handovers

logger = logging.getLogger(__name__)

router = APIRouter(tags=["handovers"])

Status = Literal["pending", "active", "resolved", "expired"]
HandoverId = Annotated[int, Path(ge=1, le=2**53)]


class HandoverReply(BaseModel):
    """``POST .../reply``: a person's text to the handover's customer."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4096)


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _visible_bots(session: SessionDep, user: User) -> list[BotInstance]:
    owner = user.id if user.role == "user" else None
    return list(crud.list_instances(session=session, owner_id=owner))


@router.get("/admin/handovers")
async def get_handovers(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Handovers (default: pending and active) across the bots the caller may see, oldest
    pending first, then the rest newest first."""
    statuses = tuple(dict.fromkeys(status_ or OPEN_STATUSES))
    settings = _settings(request)
    out: list[dict[str, Any]] = []
    for bot in _visible_bots(session, user):
        rows = await asyncio.to_thread(
            list_handovers,
            bot_db_path(settings, bot.kind, bot.id),
            statuses=statuses,
            limit=limit,
        )
        for row in rows:
            out.append({**row, "bot_id": bot.id, "bot_kind": bot.kind, "bot_name": bot.name})
    pending = sorted((h for h in out if h["status"] == "pending"), key=lambda h: h["created_at"])
    rest = sorted(
        (h for h in out if h["status"] != "pending"), key=lambda h: h["created_at"], reverse=True
    )
    return (pending + rest)[:limit]


@router.get("/admin/handovers/count")
async def get_handover_count(
    request: Request, session: SessionDep, user: CurrentUser
) -> dict[str, int]:
    """How many handovers wait for a person (``pending``) and are taken (``active``)."""
    settings = _settings(request)
    total = {"pending": 0, "active": 0}
    for bot in _visible_bots(session, user):
        counts = await asyncio.to_thread(count_handovers, bot_db_path(settings, bot.kind, bot.id))
        for key in total:
            total[key] += counts.get(key, 0)
    return total


@router.get(f"{KEY_PATH}/handovers")
async def get_bot_handovers(
    request: Request,
    instance: VisibleInstance,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """One bot's handovers (default: every status), newest first."""
    statuses = tuple(dict.fromkeys(status_ or STATUSES))
    path = bot_db_path(_settings(request), instance.kind, instance.id)
    return await asyncio.to_thread(list_handovers, path, statuses=statuses, limit=limit)


async def _bot_call(
    sup: Supervisor, instance: BotInstance, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """POST to the running bot's control API, passing its 404/409/422 on (409 when it does
    not run, 502 when it cannot be reached)."""
    watcher = sup.watchers.get(instance.id)
    if watcher is None or watcher.state != "running" or watcher.port is None:
        state = watcher.state if watcher is not None else "stopped"
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"bot {instance.id!r} is {state}; start it to use the desk"
        )
    token = create_control_token(sup.secret_key, instance_id=watcher.instance_id, gen=watcher.gen)
    url = f"http://{sup.bot_host(watcher.kind, watcher.instance_id)}:{watcher.port}{path}"
    try:
        res = await sup.http.post(
            url, headers={"Authorization": f"Bearer {token}"}, json=body, timeout=5.0
        )
    except httpx.HTTPError as exc:
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"bot {instance.id!r} did not answer; see its logs"
        ) from exc
    try:
        data = res.json()
    except ValueError:
        data = {}
    if res.status_code in (404, 409, 422):
        detail = data.get("detail") if isinstance(data, dict) else None
        raise HTTPException(res.status_code, str(detail or "refused by the bot"))
    if res.status_code // 100 != 2 or not isinstance(data, dict):
        raise HTTPException(
            status.HTTP_502_BAD_GATEWAY, f"bot {instance.id!r} refused; see its logs"
        )
    return data


def _known(request: Request, instance: BotInstance, handover_id: int) -> dict[str, Any]:
    found = get_handover(bot_db_path(_settings(request), instance.kind, instance.id), handover_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no handover {handover_id}")
    return found


@router.post(f"{KEY_PATH}/handovers/{{handover_id}}/take")
async def take_handover(
    request: Request,
    sup: SupervisorDep,
    instance: ManagedInstance,
    user: CurrentUser,
    handover_id: HandoverId,
) -> dict[str, Any]:
    """Take a handover: the caller answers the customer, the bot stays silent."""
    await asyncio.to_thread(_known, request, instance, handover_id)
    result = await _bot_call(
        sup, instance, f"/control/handovers/{handover_id}/take", {"assignee": user.username}
    )
    logger.info("handover taken", extra={"bot_id": instance.id, "handover_id": handover_id})
    return result


@router.post(f"{KEY_PATH}/handovers/{{handover_id}}/reply", status_code=status.HTTP_202_ACCEPTED)
async def reply_handover(
    request: Request,
    sup: SupervisorDep,
    instance: ManagedInstance,
    user: CurrentUser,
    handover_id: HandoverId,
    body: HandoverReply,
) -> dict[str, Any]:
    """Write to the handover's customer through the bot's outbox (takes a pending handover)."""
    if not body.text.strip():
        raise crud.FieldError(["body", "text"], "the message is empty")
    await asyncio.to_thread(_known, request, instance, handover_id)
    result = await _bot_call(
        sup,
        instance,
        f"/control/handovers/{handover_id}/reply",
        {"assignee": user.username, "text": body.text},
    )
    logger.info("handover reply queued", extra={"bot_id": instance.id, "handover_id": handover_id})
    return {"ok": True, **result}


@router.post(f"{KEY_PATH}/handovers/{{handover_id}}/resolve")
async def resolve_handover(
    request: Request,
    session: SessionDep,
    sup: SupervisorDep,
    instance: ManagedInstance,
    user: CurrentUser,
    handover_id: HandoverId,
) -> dict[str, Any]:
    """Give the conversation back to the bot."""
    await asyncio.to_thread(_known, request, instance, handover_id)
    result = await _bot_call(
        sup, instance, f"/control/handovers/{handover_id}/resolve", {"assignee": user.username}
    )
    logger.info("handover resolved", extra={"bot_id": instance.id, "handover_id": handover_id})
    # Owner answers → knowledge base: the question and the person's replies become a proposal.
    result["answer_proposal"] = await proposals.after_resolve(
        request, session, lambda: get_ai(request), instance, handover_id
    )
    return result
