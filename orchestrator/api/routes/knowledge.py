"""Knowledge bases: ``/admin/knowledge`` (create, upload, build, search, export, import).

RBAC as for bots: admins see and manage every base; a user sees and manages the bases they
own (another user's base is a 404); a guest reads (list, status, search, export) and every
write is a 403.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Path,
    Query,
    Response,
    UploadFile,
    status,
)
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from orchestrator import crud
from orchestrator.api.ai_deps import AIDep, ai_errors, read_upload
from orchestrator.api.deps import CurrentUser, SessionDep, WriterUser
from orchestrator.models import BotInstance, KnowledgeBase, User, utcnow
from orchestrator.schemas import UserId

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/admin/knowledge", tags=["knowledge"])

KbIdPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class KnowledgeBaseCreate(BaseModel):
    """``POST /admin/knowledge`` body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    owner_id: UserId | None = None


class KnowledgeBaseUpdate(BaseModel):
    """``PATCH /admin/knowledge/{kb_id}`` body: (admins) give the base to another user."""

    model_config = ConfigDict(extra="forbid")

    owner_id: UserId | None = None


class SearchRequest(BaseModel):
    """A test query against one base."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=50)


def can_see(user: User, kb: KnowledgeBase) -> bool:
    """Admins and guests see every base; a user sees the bases they own."""
    return user.role in ("admin", "guest") or kb.owner_id == user.id


def visible_base(session: Session, kb_id: str, user: User) -> KnowledgeBase:
    """The base if it exists and ``user`` may see it; else 404."""
    kb = session.get(KnowledgeBase, kb_id)
    if kb is None or not can_see(user, kb):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"knowledge base {kb_id!r} not found")
    return kb


def _visible(kb_id: KbIdPath, session: SessionDep, user: CurrentUser) -> KnowledgeBase:
    return visible_base(session, kb_id, user)


def _managed(kb_id: KbIdPath, session: SessionDep, user: CurrentUser) -> KnowledgeBase:
    kb = visible_base(session, kb_id, user)
    if user.role == "guest":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "guests have read-only access")
    return kb


VisibleBase = Annotated[KnowledgeBase, Depends(_visible)]
ManagedBase = Annotated[KnowledgeBase, Depends(_managed)]


def _public(kb: KnowledgeBase, kb_status: Any | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": kb.id,
        "name": kb.name,
        "owner_id": kb.owner_id,
        "created_at": kb.created_at.isoformat(),
        "documents": [],
        "document_count": 0,
        "chunks": 0,
        "vectors": 0,
        "embedding_model": "",
        "built_at": None,
        "building": False,
        "build": None,
    }
    if kb_status is not None:
        data = kb_status.as_dict()
        for key in ("documents", "document_count", "chunks", "vectors", "embedding_model"):
            out[key] = data[key]
        out["built_at"] = data["built_at"]
        out["build"] = data.get("build")
        out["building"] = bool((out["build"] or {}).get("building"))
    return out


async def _status_or_none(ai: Any, kb_id: str) -> Any | None:
    if not ai.kb.exists(kb_id):
        logger.warning("knowledge base %s has no files on disk", kb_id)
        return None
    with ai_errors():
        return await ai.kb.status(kb_id)


def _owner_for(body_owner: int | None, user: User, session: Session) -> int | None:
    if body_owner is None or body_owner == user.id:
        return user.id
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins assign bases to others")
    if session.get(User, body_owner) is None:
        raise crud.FieldError(["body", "owner_id"], "no such user")
    return body_owner


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_base(
    body: KnowledgeBaseCreate, session: SessionDep, user: WriterUser, ai: AIDep
) -> dict[str, Any]:
    """Create an empty knowledge base owned by the caller."""
    owner_id = _owner_for(body.owner_id, user, session)
    kb_id = crud.new_random_id(session=session, kind="kb")
    with ai_errors():
        kb_status = await ai.kb.create(body.name, kb_id=kb_id)
    kb = KnowledgeBase(id=kb_id, name=body.name, owner_id=owner_id, created_at=utcnow())
    session.add(kb)
    crud.audit(
        session=session,
        actor=user,
        action="knowledge.create",
        object_type="knowledge",
        object_id=kb_id,
        detail={"name": body.name},
    )
    session.refresh(kb)
    return _public(kb, kb_status)


@router.get("")
async def list_bases(session: SessionDep, user: CurrentUser, ai: AIDep) -> list[dict[str, Any]]:
    """Every knowledge base the caller may see, with document and chunk counts."""
    query = select(KnowledgeBase).order_by(KnowledgeBase.name, KnowledgeBase.id)
    if user.role == "user":
        query = query.where(KnowledgeBase.owner_id == user.id)
    rows = list(session.exec(query).all())
    return [_public(kb, await _status_or_none(ai, kb.id)) for kb in rows]


@router.post("/import", status_code=status.HTTP_201_CREATED)
async def import_base(
    session: SessionDep,
    user: WriterUser,
    ai: AIDep,
    file: Annotated[UploadFile, File(description="a ZIP made by the export route")],
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> dict[str, Any]:
    """Create a base from an export ZIP (refused above 250 MB)."""
    limit = ai.settings.max_import_bytes
    if file.size is not None and file.size > limit:
        raise HTTPException(
            413,
            f"archive is larger than the {limit} byte limit",
        )
    data = await read_upload(file, limit, "archive")
    kb_id = crud.new_random_id(session=session, kind="kb")
    with ai_errors():
        kb_status = await ai.kb.import_zip(data, name=name or None, kb_id=kb_id)
    kb = KnowledgeBase(id=kb_id, name=kb_status.name, owner_id=user.id, created_at=utcnow())
    session.add(kb)
    crud.audit(
        session=session,
        actor=user,
        action="knowledge.import",
        object_type="knowledge",
        object_id=kb_id,
        detail={"name": kb_status.name, "bytes": len(data)},
    )
    session.refresh(kb)
    return _public(kb, kb_status)


@router.get("/{kb_id}")
async def get_base(kb: VisibleBase, ai: AIDep) -> dict[str, Any]:
    """Status of a base: documents, chunks, vectors, embedding model, built at."""
    return _public(kb, await _status_or_none(ai, kb.id))


@router.get("/{kb_id}/topics")
async def get_topics(
    kb: VisibleBase, ai: AIDep, limit: Annotated[int, Query(ge=1, le=50)] = 8
) -> list[dict[str, str]]:
    """The base's sections (heading and text) in document order, for a menu of topics."""
    with ai_errors():
        return await ai.kb.topics(kb.id, limit)
    return []  # pragma: no cover - ai_errors re-raises


@router.patch("/{kb_id}")
async def update_base(
    body: KnowledgeBaseUpdate, kb: ManagedBase, session: SessionDep, user: CurrentUser, ai: AIDep
) -> dict[str, Any]:
    """Reassign a base to another user (``owner_id``; admins only), e.g. before deleting its
    owner. An empty body changes nothing."""
    if "owner_id" in body.model_fields_set and body.owner_id != kb.owner_id:
        if user.role != "admin":
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins reassign bases")
        if body.owner_id is None or session.get(User, body.owner_id) is None:
            raise crud.FieldError(["body", "owner_id"], "no such user")
        kb.owner_id = body.owner_id
    session.add(kb)
    crud.audit(
        session=session,
        actor=user,
        action="knowledge.update",
        object_type="knowledge",
        object_id=kb.id,
        detail={"fields": sorted(body.model_fields_set)},
    )
    session.refresh(kb)
    return _public(kb, await _status_or_none(ai, kb.id))


@router.delete("/{kb_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_base(
    kb: ManagedBase, session: SessionDep, user: CurrentUser, ai: AIDep
) -> Response:
    """Delete a base and its files; bots linked to it are unlinked."""
    kb_id = kb.id
    if ai.kb.exists(kb_id):
        with ai_errors():
            await ai.kb.delete(kb_id)
    for bot in session.exec(select(BotInstance)).all():
        linked = list((bot.config or {}).get("knowledge_base_ids") or [])
        if kb_id in linked:
            bot.config = {**bot.config, "knowledge_base_ids": [i for i in linked if i != kb_id]}
            session.add(bot)
    session.delete(kb)
    crud.retire_id(session=session, kind="kb", object_id=kb_id)
    crud.audit(
        session=session,
        actor=user,
        action="knowledge.delete",
        object_type="knowledge",
        object_id=kb_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


WaitQuery = Annotated[
    bool,
    Query(
        description="true (default): answer when the index is written; false: answer 202 at "
        "once and build in the background (follow `build` in GET /admin/knowledge/{kb_id})"
    ),
]


@router.post("/{kb_id}/documents", status_code=status.HTTP_201_CREATED)
async def upload_document(
    kb: ManagedBase,
    user: CurrentUser,
    session: SessionDep,
    ai: AIDep,
    response: Response,
    file: Annotated[UploadFile, File(description="PDF, TXT, MD or HTML")],
    wait: WaitQuery = True,
) -> dict[str, Any]:
    """Add a PDF / TXT / MD / HTML document: parsed, chunked, embedded and indexed.

    With ``wait=false`` the answer is a 202 saying ``building`` with the build's progress
    (``build``); what only reading the document can tell (no text, too many passages) then
    ends that build as ``failed`` with the reason instead of being this request's error."""
    from orchestrator.ai.rag.ingest import UnsupportedDocumentError, document_kind

    filename = file.filename or "document.txt"
    with ai_errors():
        document_kind(filename, b"")  # an unsupported type is refused before reading it
    limit = ai.settings.max_upload_bytes
    if file.size is not None and file.size > limit:
        raise HTTPException(
            413,
            f"{filename} is larger than the {limit} byte limit",
        )
    data = await read_upload(file, limit, filename)
    if not wait:
        with ai_errors():
            doc_id, clean_name, build = await ai.kb.start_add_document(kb.id, filename, data)
        crud.audit(
            session=session,
            actor=user,
            action="knowledge.document.add",
            object_type="knowledge",
            object_id=kb.id,
            detail={"filename": clean_name, "doc_id": doc_id, "background": True},
        )
        response.status_code = status.HTTP_202_ACCEPTED
        return {"id": doc_id, "filename": clean_name, "building": True, "build": build}
    with ai_errors():
        try:
            info = await ai.kb.add_document(kb.id, filename, data)
        except UnsupportedDocumentError as exc:  # a supported type that cannot be read
            raise HTTPException(422, str(exc)) from exc
    crud.audit(
        session=session,
        actor=user,
        action="knowledge.document.add",
        object_type="knowledge",
        object_id=kb.id,
        detail={"filename": info.filename, "chunks": info.chunks},
    )
    return {**info.as_dict(), "building": False, "build": ai.kb.progress(kb.id)}


@router.delete("/{kb_id}/documents/{doc_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(
    kb: ManagedBase,
    doc_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    user: CurrentUser,
    session: SessionDep,
    ai: AIDep,
) -> Response:
    """Remove a document and its vectors."""
    with ai_errors():
        await ai.kb.delete_document(kb.id, doc_id)
    crud.audit(
        session=session,
        actor=user,
        action="knowledge.document.delete",
        object_type="knowledge",
        object_id=kb.id,
        detail={"doc_id": doc_id},
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{kb_id}/build")
async def build_base(
    kb: ManagedBase, ai: AIDep, response: Response, wait: WaitQuery = True
) -> dict[str, Any]:
    """Re-parse, re-chunk and re-embed every document (off the event loop); ``wait=false``
    answers 202 at once with the build's progress in ``build``."""
    with ai_errors():
        if wait:
            kb_status = await ai.kb.rebuild(kb.id)
        else:
            kb_status = await ai.kb.start_rebuild(kb.id)
            response.status_code = status.HTTP_202_ACCEPTED
    return _public(kb, kb_status)


@router.post("/{kb_id}/search")
async def search_base(kb: VisibleBase, body: SearchRequest, ai: AIDep) -> dict[str, Any]:
    """Test query: the best passages with their cosine scores and sources."""
    with ai_errors():
        results = await ai.kb.search(kb.id, body.query, body.k)
    return {
        "results": [
            {"text": r.text, "score": round(r.score, 6), "source": r.source, "doc_id": r.doc_id}
            for r in results
        ]
    }


@router.get("/{kb_id}/export")
async def export_base(kb: VisibleBase, ai: AIDep) -> Response:
    """A ZIP with a manifest, the chunks, the FAISS index and the original documents."""
    with ai_errors():
        data = await ai.kb.export_zip(kb.id)
    return Response(
        content=data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="kb-{kb.id}.zip"'},
    )
