"""LLM providers bots use as ``cloud:{id}``: ``/admin/llm/providers`` (admins only).

API keys are encrypted at rest with the orchestrator's secret box and masked in every answer
like bot secrets; a PUT that omits the key or echoes its mask keeps the stored one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import select

from orchestrator import crud
from orchestrator.api.deps import AdminUser, BoxDep, SessionDep
from orchestrator.models import LLMProvider, utcnow
from orchestrator.security import SecretBox, is_mask, mask_secret

router = APIRouter(prefix="/admin/llm/providers", tags=["llm providers"])

ProviderKind = Literal["openai-compatible", "gemini"]
ProviderIdPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _check_url(value: str | None) -> str | None:
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/") if value else value


class ProviderFields(BaseModel):
    """Fields of a provider a client may send (all optional: one model serves PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: ProviderKind | None = None
    base_url: str | None = Field(default=None, max_length=500)
    api_key: str | None = Field(default=None, max_length=4096)
    model: str | None = Field(default=None, max_length=200)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _check_url(value)


class ProviderCreate(ProviderFields):
    """POST body: ``name`` and ``kind`` are required; ``id`` defaults to a slug of the name."""

    id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: ProviderKind = "openai-compatible"


def provider_public(row: LLMProvider, box: SecretBox) -> dict[str, Any]:
    """A provider as the API shows it (key masked)."""
    key = box.decrypt(row.api_key_enc).get("api_key", "")
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "backend": f"cloud:{row.id}",
        "base_url": row.base_url,
        "api_key": mask_secret(key, tail=True),  # admins only
        "model": row.model,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _get(session: SessionDep, provider_id: str) -> LLMProvider:
    row = session.get(LLMProvider, provider_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"LLM provider {provider_id!r} not found")
    return row


def _check_complete(row: LLMProvider) -> None:
    if row.kind == "openai-compatible" and not row.base_url:
        raise crud.FieldError(["body", "base_url"], "an openai-compatible provider needs one")


@router.get("")
def list_providers(_admin: AdminUser, session: SessionDep, box: BoxDep) -> list[dict[str, Any]]:
    """Every LLM provider (keys masked)."""
    rows = session.exec(select(LLMProvider).order_by(LLMProvider.name)).all()
    return [provider_public(r, box) for r in rows]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_provider(
    body: ProviderCreate, admin: AdminUser, session: SessionDep, box: BoxDep
) -> dict[str, Any]:
    """Add a provider; bots use it as ``llm_backend: cloud:{id}``."""
    provider_id = body.id or crud.slugify(body.name)
    if session.get(LLMProvider, provider_id) is not None:
        raise crud.FieldError(["body", "id"], f"provider {provider_id!r} already exists")
    if crud.id_taken(session=session, kind="provider", object_id=provider_id):
        # Bots name providers as ``cloud:{id}``: a new provider under a deleted one's id would
        # silently take over those bots (with another key and model). A default id gets a
        # suffix; an id asked for is refused.
        if body.id:
            raise crud.FieldError(
                ["body", "id"],
                f"id {provider_id!r} belonged to a deleted provider and is never reused; "
                "choose another id",
            )
        provider_id = crud.unique_slug(session=session, name=body.name, kind="provider")
    key = body.api_key or ""
    row = LLMProvider(
        id=provider_id,
        name=body.name,
        kind=body.kind,
        base_url=body.base_url or "",
        model=body.model or "",
        api_key_enc=box.encrypt({"api_key": key} if key and not is_mask(key) else {}),
    )
    _check_complete(row)
    session.add(row)
    crud.audit(
        session=session,
        actor=admin,
        action="llm_provider.create",
        object_type="llm_provider",
        object_id=provider_id,
        detail={"name": body.name, "kind": body.kind},
    )
    session.refresh(row)
    return provider_public(row, box)


@router.get("/{provider_id}")
def get_provider(
    provider_id: ProviderIdPath, _admin: AdminUser, session: SessionDep, box: BoxDep
) -> dict[str, Any]:
    """One provider (key masked)."""
    return provider_public(_get(session, provider_id), box)


@router.put("/{provider_id}")
def update_provider(
    provider_id: ProviderIdPath,
    body: ProviderFields,
    admin: AdminUser,
    session: SessionDep,
    box: BoxDep,
) -> dict[str, Any]:
    """Change a provider; an omitted or masked key keeps the stored one, ``""`` clears it."""
    row = _get(session, provider_id)
    fields = body.model_dump(exclude_unset=True)
    for key in ("name", "kind"):
        if key in fields and fields[key] is None:
            raise crud.FieldError(["body", key], "may not be null")
    if fields.get("name") is not None:
        row.name = fields["name"]
    if fields.get("kind") is not None:
        row.kind = fields["kind"]
    if "base_url" in fields:
        row.base_url = fields["base_url"] or ""
    if "model" in fields:
        row.model = fields["model"] or ""
    api_key = fields.get("api_key")
    if api_key is not None and not is_mask(api_key):
        row.api_key_enc = box.encrypt({"api_key": api_key} if api_key else {})
    _check_complete(row)
    row.updated_at = utcnow()
    session.add(row)
    crud.audit(
        session=session,
        actor=admin,
        action="llm_provider.update",
        object_type="llm_provider",
        object_id=row.id,
        detail={"fields": sorted(fields)},
    )
    session.refresh(row)
    return provider_public(row, box)


@router.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_provider(
    provider_id: ProviderIdPath, admin: AdminUser, session: SessionDep
) -> Response:
    """Remove a provider (bots naming it fall back to their fallback text)."""
    row = _get(session, provider_id)
    session.delete(row)
    crud.retire_id(session=session, kind="provider", object_id=provider_id)
    crud.audit(
        session=session,
        actor=admin,
        action="llm_provider.delete",
        object_type="llm_provider",
        object_id=provider_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
