"""Start, stop, restart, status and logs of bots, and the fleet overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse

from orchestrator import crud
from orchestrator.api.deps import CurrentUser, SessionDep
from orchestrator.api.routes.instances import ManagedInstance, VisibleInstance
from orchestrator.models import BotInstance
from orchestrator.supervisor import Supervisor, SupervisorError

router = APIRouter(tags=["fleet"])


def supervisor_of(request: Request) -> Supervisor:
    """The app's supervisor."""
    return request.app.state.supervisor  # type: ignore[no-any-return]


def _set_auto_start(session: SessionDep, instance: BotInstance, value: bool) -> None:
    instance.auto_start = value
    session.add(instance)
    session.commit()


@router.post("/admin/{kind}/instances/{instance_id}/start")
async def start_bot(
    request: Request, instance: ManagedInstance, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Start the bot and set ``auto_start``; a disabled bot or a taken port → 409."""
    if not instance.enabled:
        raise HTTPException(status.HTTP_409_CONFLICT, "bot is disabled; enable it before starting")
    try:
        result = await supervisor_of(request).start(instance.id, instance.kind)
    except SupervisorError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    _set_auto_start(session, instance, True)
    crud.audit(
        session=session,
        actor=user,
        action="bot.start",
        object_type=instance.kind,
        object_id=instance.id,
    )
    return result


@router.post("/admin/{kind}/instances/{instance_id}/stop")
async def stop_bot(
    request: Request, instance: ManagedInstance, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Stop the bot (SIGTERM, 5 s, SIGKILL) and clear ``auto_start``."""
    _set_auto_start(session, instance, False)
    result = await supervisor_of(request).stop(instance.id, instance.kind)
    crud.audit(
        session=session,
        actor=user,
        action="bot.stop",
        object_type=instance.kind,
        object_id=instance.id,
    )
    return result


@router.post("/admin/{kind}/instances/{instance_id}/restart")
async def restart_bot(
    request: Request, instance: ManagedInstance, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Stop then start; ``auto_start`` is kept as it is."""
    if not instance.enabled:
        raise HTTPException(status.HTTP_409_CONFLICT, "bot is disabled; enable it before starting")
    try:
        result = await supervisor_of(request).restart(instance.id, instance.kind)
    except SupervisorError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    crud.audit(
        session=session,
        actor=user,
        action="bot.restart",
        object_type=instance.kind,
        object_id=instance.id,
    )
    return result


@router.get("/admin/{kind}/instances/{instance_id}/status")
def bot_status(request: Request, instance: VisibleInstance) -> dict[str, Any]:
    """State, pid, port, uptime, RSS, CPU, restarts, last exit code and error."""
    result = supervisor_of(request).status(instance.id, instance.kind)
    result["port"] = result["port"] or instance.webhook_port
    result["auto_start"] = instance.auto_start
    result["enabled"] = instance.enabled
    return result


@router.get("/admin/{kind}/instances/{instance_id}/logs", response_model=None)
def bot_logs(
    request: Request,
    instance: VisibleInstance,
    lines: Annotated[int, Query(ge=1, le=5000)] = 100,
    format: Annotated[str, Query(pattern="^(json|text)$")] = "json",  # noqa: A002 - query name
) -> dict[str, Any] | PlainTextResponse:
    """The last ``lines`` lines of ``logs/{kind}_bot_{id}.log``."""
    tail = supervisor_of(request).tail(instance.kind, instance.id, lines)
    if format == "text":
        return PlainTextResponse("\n".join(tail) + ("\n" if tail else ""))
    return {"id": instance.id, "kind": instance.kind, "lines": tail}


@router.get("/admin/fleet")
def fleet(request: Request, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Every bot the caller may see, with its status."""
    owner = user.id if user.role == "user" else None
    sup = supervisor_of(request)
    out = []
    for instance in crud.list_instances(session=session, owner_id=owner):
        st = sup.status(instance.id, instance.kind)
        st.update(
            name=instance.name,
            enabled=instance.enabled,
            auto_start=instance.auto_start,
            owner_id=instance.owner_id,
            port=st["port"] or instance.webhook_port,
        )
        out.append(st)
    return out
