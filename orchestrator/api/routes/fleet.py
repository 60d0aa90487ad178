"""Start, stop, restart, status and logs of bots, and the fleet overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from orchestrator import crud
from orchestrator.api.deps import CurrentUser, SessionDep, SupervisorDep
from orchestrator.api.routes.instances import ManagedInstance, VisibleInstance
from orchestrator.models import BotInstance
from orchestrator.supervisor import SupervisorError

router = APIRouter(tags=["fleet"])


def _finish(
    session: SessionDep, bot_id: str, user: CurrentUser, action: str, auto_start: bool | None
) -> None:
    """Record what was done (and the new ``auto_start``) in one short transaction."""
    instance = session.get(BotInstance, bot_id)
    if instance is None:  # deleted meanwhile
        return
    if auto_start is not None:
        instance.auto_start = auto_start
        session.add(instance)
    crud.audit(
        session=session,
        actor=user,
        action=action,
        object_type=instance.kind,
        object_id=bot_id,
        commit=False,
    )
    session.commit()


def _release(session: SessionDep, instance: BotInstance) -> tuple[str, str, bool]:
    """Read what the supervisor needs, then end the read transaction so no pooled connection
    is held while the (slow) start or stop is awaited. Like ``_finish`` it runs in the
    threadpool: blocking the event loop on the pool or on SQLite's write lock would stall the
    very requests that would free them."""
    values = (instance.id, instance.kind, instance.enabled)
    session.rollback()
    return values


async def _start(
    sup: SupervisorDep,
    instance: BotInstance,
    session: SessionDep,
    user: CurrentUser,
    *,
    restart: bool,
) -> dict[str, Any]:
    bot_id, kind, enabled = await run_in_threadpool(_release, session, instance)
    if not enabled:  # checked before a restart stops it
        raise HTTPException(status.HTTP_409_CONFLICT, "bot is disabled; enable it before starting")
    try:
        result = await (sup.restart if restart else sup.start)(bot_id, kind)
    except SupervisorError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    action, auto_start = ("bot.restart", None) if restart else ("bot.start", True)
    await run_in_threadpool(_finish, session, bot_id, user, action, auto_start)
    return result


@router.post("/admin/{kind}/instances/{instance_id}/start")
async def start_bot(
    sup: SupervisorDep, instance: ManagedInstance, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Start the bot and set ``auto_start``; a disabled bot or a taken port → 409."""
    return await _start(sup, instance, session, user, restart=False)


@router.post("/admin/{kind}/instances/{instance_id}/stop")
async def stop_bot(
    sup: SupervisorDep, instance: ManagedInstance, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Stop the bot (SIGTERM, 5 s, SIGKILL) and clear ``auto_start``."""
    bot_id, kind, _enabled = await run_in_threadpool(_release, session, instance)
    await run_in_threadpool(_finish, session, bot_id, user, "bot.stop", False)
    return await sup.stop(bot_id, kind)


@router.post("/admin/{kind}/instances/{instance_id}/restart")
async def restart_bot(
    sup: SupervisorDep, instance: ManagedInstance, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Stop then start; ``auto_start`` is kept as it is."""
    return await _start(sup, instance, session, user, restart=True)


@router.get("/admin/{kind}/instances/{instance_id}/status")
def bot_status(sup: SupervisorDep, instance: VisibleInstance) -> dict[str, Any]:
    """State, pid, port, uptime, RSS, CPU, restarts, last exit code and error."""
    result = sup.status(instance.id, instance.kind)
    result["port"] = result["port"] or instance.webhook_port
    result["auto_start"] = instance.auto_start
    result["enabled"] = instance.enabled
    return result


@router.get("/admin/{kind}/instances/{instance_id}/logs", response_model=None)
def bot_logs(
    sup: SupervisorDep,
    instance: VisibleInstance,
    lines: Annotated[int, Query(ge=1, le=5000)] = 100,
    format: Annotated[str, Query(pattern="^(json|text)$")] = "json",  # noqa: A002 - query name
) -> dict[str, Any] | PlainTextResponse:
    """The last ``lines`` lines of ``logs/{kind}_bot_{id}.log``."""
    tail = sup.tail(instance.kind, instance.id, lines)
    if format == "text":
        return PlainTextResponse("\n".join(tail) + ("\n" if tail else ""))
    return {"id": instance.id, "kind": instance.kind, "lines": tail}


@router.get("/admin/fleet")
def fleet(sup: SupervisorDep, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Every bot the caller may see, with its status."""
    owner = user.id if user.role == "user" else None
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
