"""Bot instance API, the same for each kind: ``/admin/{kind}/instances``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status

from orchestrator import crud
from orchestrator.api.deps import (
    BoxDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    SupervisorDep,
    WriterUser,
)
from orchestrator.models import BotInstance, User
from orchestrator.schemas import InstanceCreate, InstanceFields
from orchestrator.settings import Settings
from shared.channels import registry


def known_kind(
    kind: Annotated[str, Path(max_length=64, description="a registered channel kind")],
) -> str:
    """``kind`` if the channel registry knows it (``GET /admin/channels``), else 404."""
    if not registry.is_kind(kind):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no channel kind {kind!r}")
    return kind


router = APIRouter(
    prefix="/admin/{kind}/instances", tags=["instances"], dependencies=[Depends(known_kind)]
)

KindPath = Annotated[
    str, Path(max_length=64, description="whatsapp, sms, telegram or a plugin channel")
]
IdPath = Annotated[str, Path(max_length=64)]


def instance_rules(settings: Settings) -> crud.InstanceRules:
    """What a bot's settings may hold here: ports from the bot port range (never the
    orchestrator's or the sandbox's), provider URLs official or allowed by the admin."""
    return crud.InstanceRules.from_settings(settings)


def can_see(user: User, instance: BotInstance) -> bool:
    """Admins and guests see every bot; a user sees the bots they own."""
    return user.role in ("admin", "guest") or instance.owner_id == user.id


def visible_instance(session: SessionDep, kind: str, instance_id: str, user: User) -> BotInstance:
    """The instance if it exists, is of ``kind`` and ``user`` may see it; else 404."""
    instance = session.get(BotInstance, instance_id)
    if instance is None or instance.kind != kind or not can_see(user, instance):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{kind} bot {instance_id!r} not found")
    return instance


def managed_instance(session: SessionDep, kind: str, instance_id: str, user: User) -> BotInstance:
    """Like :func:`visible_instance`, and ``user`` may change it (guests: 403)."""
    instance = visible_instance(session, kind, instance_id, user)
    if user.role == "guest":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "guests have read-only access")
    return instance


def _managed(
    kind: KindPath, instance_id: IdPath, session: SessionDep, user: CurrentUser
) -> BotInstance:
    return managed_instance(session, known_kind(kind), instance_id, user)


def _visible(
    kind: KindPath, instance_id: IdPath, session: SessionDep, user: CurrentUser
) -> BotInstance:
    return visible_instance(session, known_kind(kind), instance_id, user)


ManagedInstance = Annotated[BotInstance, Depends(_managed)]
VisibleInstance = Annotated[BotInstance, Depends(_visible)]


@router.get("")
def list_instances(
    kind: KindPath, session: SessionDep, user: CurrentUser, box: BoxDep
) -> list[dict[str, Any]]:
    """Every bot of this kind the caller may see (secrets masked)."""
    owner = user.id if user.role == "user" else None
    rows = crud.list_instances(session=session, kind=kind, owner_id=owner)
    tail = user.role != "guest"  # a guest sees no character of a secret
    return [crud.instance_settings(i, box, reveal=False, show_tail=tail) for i in rows]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_instance(
    kind: KindPath,
    instance_in: InstanceCreate,
    session: SessionDep,
    user: WriterUser,
    box: BoxDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Create a bot; its id is a slug of its name. Users own what they create."""
    owner_id = user.id
    if instance_in.owner_id is not None and instance_in.owner_id != user.id:
        if user.role != "admin":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins assign bots to others")
        if session.get(User, instance_in.owner_id) is None:
            raise crud.FieldError(["body", "owner_id"], "no such user")
        owner_id = instance_in.owner_id
    instance = crud.create_instance(
        session=session,
        kind=kind,
        instance_in=instance_in,
        owner_id=owner_id,
        box=box,
        rules=instance_rules(settings),
    )
    crud.audit(
        session=session,
        actor=user,
        action="instance.create",
        object_type=kind,
        object_id=instance.id,
        detail={"name": instance.name},
    )
    return crud.instance_settings(instance, box, reveal=False, show_tail=True)


@router.get("/{instance_id}")
def get_instance(instance: VisibleInstance, box: BoxDep, user: CurrentUser) -> dict[str, Any]:
    """One bot's settings (secrets masked; a guest sees no character of them)."""
    return crud.instance_settings(instance, box, reveal=False, show_tail=user.role != "guest")


@router.put("/{instance_id}")
async def update_instance(
    supervisor: SupervisorDep,
    instance_in: InstanceFields,
    instance: ManagedInstance,
    session: SessionDep,
    user: CurrentUser,
    box: BoxDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Change a bot's settings; omitted or masked secrets keep their stored values."""
    if "owner_id" in instance_in.model_fields_set and instance_in.owner_id != instance.owner_id:
        if user.role != "admin":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins reassign bots")
        if instance_in.owner_id is not None and session.get(User, instance_in.owner_id) is None:
            raise crud.FieldError(["body", "owner_id"], "no such user")
    instance = crud.update_instance(
        session=session,
        instance=instance,
        instance_in=instance_in,
        box=box,
        rules=instance_rules(settings),
    )
    crud.audit(
        session=session,
        actor=user,
        action="instance.update",
        object_type=instance.kind,
        object_id=instance.id,
        detail={"fields": sorted(instance_in.model_fields_set)},
    )
    await supervisor.reload(instance.id)
    return crud.instance_settings(instance, box, reveal=False, show_tail=True)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_instance(
    supervisor: SupervisorDep,
    instance: ManagedInstance,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> Response:
    """Delete a bot, stopping it first if it runs, with its database (customers, messages),
    logs and pid file. Its id is retired: no later bot gets it (nor its data)."""
    await supervisor.forget(instance.id)
    kind, instance_id = instance.kind, instance.id
    crud.delete_instance_rows(session=session, instance=instance)
    crud.audit(
        session=session,
        actor=user,
        action="instance.delete",
        object_type=kind,
        object_id=instance_id,
        commit=False,
    )
    session.commit()
    crud.purge_bot_files(
        data_dir=settings.data_dir, logs_dir=settings.logs_dir, kind=kind, instance_id=instance_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
