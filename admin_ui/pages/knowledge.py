"""Knowledge bases: upload, build, status, test query (``/admin/knowledge``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Path, Request, UploadFile, status
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi, ApiResult
from admin_ui.common import UiUser, UserDep, channels_of, render

router = APIRouter(include_in_schema=False)

KB_MISSING = "Knowledge bases are not available on this orchestrator yet."


async def _kb_list(api: AdminApi) -> tuple[list[dict[str, Any]] | None, str]:
    res = await api.get("/admin/knowledge")
    if res.status in (404, 405):
        return None, KB_MISSING
    if not res.ok:
        return [], res.message
    data = res.data
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    return (list(data) if isinstance(data, list) else []), ""


async def kb_links(request: Request, api: AdminApi) -> dict[str, list[str]]:
    """Which bots (their names) each knowledge base is linked to, for the delete confirmation:
    the API unlinks them when the base is deleted, so the owner is told first."""
    kinds = [c.kind for c in channels_of(request).all]
    found = await asyncio.gather(*(api.get(f"/admin/{quote(k)}/instances") for k in kinds))
    links: dict[str, list[str]] = {}
    for res in found:
        rows = res.data if res.ok else None
        if isinstance(rows, dict):
            rows = rows.get("items")
        for bot in rows if isinstance(rows, list) else []:
            if not isinstance(bot, dict):
                continue
            for kb_id in bot.get("knowledge_base_ids") or []:
                links.setdefault(str(kb_id), []).append(str(bot.get("name") or bot.get("id")))
    return links


@router.get("/knowledge", response_class=HTMLResponse)
async def knowledge_page(request: Request, user: UserDep) -> HTMLResponse:
    """Knowledge bases: upload, build, status, test query."""
    async with AdminApi(request) as api:
        bases, error = await _kb_list(api)
        links = await kb_links(request, api)
    return render(
        request,
        "knowledge.html",
        user=user,
        bases=bases,
        kb_error=error,
        errors={},
        notice="",
        kb_links=links,
    )


@router.post("/ui/knowledge", response_class=HTMLResponse)
async def knowledge_create(request: Request, user: UserDep) -> HTMLResponse:
    """Create a knowledge base."""
    form = await request.form()
    name = str(form.get("name") or "").strip()
    async with AdminApi(request) as api:
        res = await api.post("/admin/knowledge", json={"name": name})
        bases, error = await _kb_list(api)
        links = await kb_links(request, api)
    errors = {} if res.ok else (res.field_errors or {"name": res.message})
    if res.status in (404, 405):
        errors, error = {}, KB_MISSING
    return render(
        request,
        "_kb_list.html",
        user=user,
        bases=bases,
        kb_error=error,
        errors=errors,
        notice=f"Created {name}." if res.ok else "",
        kb_links=links,
    )


@router.get("/ui/knowledge/{kb_id}", response_class=HTMLResponse)
async def knowledge_status(request: Request, user: UserDep, kb_id: str) -> HTMLResponse:
    """One base's status card."""
    async with AdminApi(request) as api:
        res = await api.get(f"/admin/knowledge/{quote(kb_id)}")
        links = await kb_links(request, api)
    base = res.data if res.ok and isinstance(res.data, dict) else {"id": kb_id}
    return render(
        request,
        "_kb_card.html",
        user=user,
        base=base,
        error="" if res.ok else res.message,
        notice="",
        results=None,
        kb_links=links,
    )


@router.post("/ui/knowledge/{kb_id}/{action}", response_class=HTMLResponse)
async def knowledge_action(
    request: Request,
    user: UserDep,
    kb_id: str,
    action: str,
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Upload a document, build the index, run a test query or delete the base."""
    path = f"/admin/knowledge/{quote(kb_id)}"
    results = None
    if action == "delete":
        return await _delete_base(request, user, kb_id)
    async with AdminApi(request) as api:
        if action == "upload":
            if file is None or not file.filename:
                res = ApiResult(422, message="choose a file first")
            else:
                # Streamed from the spooled upload (on disk past 1 MiB), not read into memory;
                # the body-limit middleware checked the writer's token before it was received.
                res = await api.post(
                    f"{path}/documents?wait=false",  # answers at once; the card shows progress
                    files={"file": (file.filename, file.file, file.content_type or "")},
                )
        elif action == "build":
            res = await api.post(f"{path}/build?wait=false")
        elif action == "search":
            form = await request.form()
            query = str(form.get("query") or "").strip()
            if not query:
                res = ApiResult(422, message="type a question")
            else:
                res = await api.post(f"{path}/search", json={"query": query, "k": 5})
                if res.ok and isinstance(res.data, dict):
                    results = res.data.get("results", [])
        else:
            raise HTTPException(status.HTTP_404_NOT_FOUND)
        status_res = await api.get(path)
        links = await kb_links(request, api)
    base = (
        status_res.data if status_res.ok and isinstance(status_res.data, dict) else {"id": kb_id}
    )
    notice = {
        "upload": "Uploaded; the index is being built.",
        "build": "Build started.",
        "search": "",
    }[action]
    return render(
        request,
        "_kb_card.html",
        user=user,
        base=base,
        error="" if res.ok else res.message,
        notice=notice if res.ok else "",
        results=results,
        kb_links=links,
    )


async def _delete_base(request: Request, user: UiUser, kb_id: str) -> HTMLResponse:
    """``DELETE /admin/knowledge/{kb_id}`` (the API unlinks the bots that used it); answers the
    whole list, saying which bots lost the base."""
    async with AdminApi(request) as api:
        before = await api.get(f"/admin/knowledge/{quote(kb_id)}")
        used_by = (await kb_links(request, api)).get(kb_id, [])
        res = await api.call("DELETE", f"/admin/knowledge/{quote(kb_id)}")
        bases, error = await _kb_list(api)
        links = await kb_links(request, api)
    name = before.data.get("name") if before.ok and isinstance(before.data, dict) else None
    notice = ""
    if res.ok:
        notice = f"Deleted the knowledge base “{name or kb_id}”."
        if used_by:
            notice += f" It was removed from: {', '.join(used_by)}."
    elif not error:
        error = res.message
    return render(
        request,
        "_kb_list.html",
        user=user,
        bases=bases,
        kb_error=error,
        errors={},
        notice=notice,
        kb_links=links,
    )


@router.post("/ui/knowledge/{kb_id}/documents/{doc_id}/delete", response_class=HTMLResponse)
async def knowledge_delete_document(
    request: Request,
    user: UserDep,
    kb_id: str,
    doc_id: Annotated[str, Path(max_length=64)],
) -> HTMLResponse:
    """Remove one document from a base (``DELETE /admin/knowledge/{kb_id}/documents/{doc_id}``);
    answers the base's card."""
    path = f"/admin/knowledge/{quote(kb_id)}"
    async with AdminApi(request) as api:
        before = await api.get(path)
        docs = before.data.get("documents") if before.ok and isinstance(before.data, dict) else []
        filename = next(
            (
                str(d.get("filename") or d.get("name") or doc_id)
                for d in docs or []
                if isinstance(d, dict) and str(d.get("id")) == doc_id
            ),
            doc_id,
        )
        res = await api.call("DELETE", f"{path}/documents/{quote(doc_id, safe='')}")
        status_res = await api.get(path)
        links = await kb_links(request, api)
    base = (
        status_res.data if status_res.ok and isinstance(status_res.data, dict) else {"id": kb_id}
    )
    return render(
        request,
        "_kb_card.html",
        user=user,
        base=base,
        error="" if res.ok else res.message,
        notice=f"Removed {filename}." if res.ok else "",
        results=None,
        kb_links=links,
    )


@router.get("/ui/knowledge/{kb_id}/progress", response_class=HTMLResponse)
async def knowledge_progress(request: Request, user: UserDep, kb_id: str) -> HTMLResponse:
    """A base's build progress, polled every second while it builds; once the build is over
    the answer has the whole card reloaded once (fresh counts and documents), which stops the
    polling."""
    async with AdminApi(request) as api:
        res = await api.get(f"/admin/knowledge/{quote(kb_id)}")
    base = res.data if res.ok and isinstance(res.data, dict) else {"id": kb_id}
    build = base.get("build")
    return render(
        request,
        "_kb_progress.html",
        user=user,
        base=base,
        progress_error="" if res.ok else res.message,
        refresh_card=not (isinstance(build, dict) and build.get("building")),
    )
