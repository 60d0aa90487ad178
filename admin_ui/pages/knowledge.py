"""Knowledge bases: upload, build, status, test query (``/admin/knowledge``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Request, UploadFile, status
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi, ApiResult
from admin_ui.common import UserDep, render

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


@router.get("/knowledge", response_class=HTMLResponse)
async def knowledge_page(request: Request, user: UserDep) -> HTMLResponse:
    """Knowledge bases: upload, build, status, test query."""
    async with AdminApi(request) as api:
        bases, error = await _kb_list(api)
    return render(
        request, "knowledge.html", user=user, bases=bases, kb_error=error, errors={}, notice=""
    )


@router.post("/ui/knowledge", response_class=HTMLResponse)
async def knowledge_create(request: Request, user: UserDep) -> HTMLResponse:
    """Create a knowledge base."""
    form = await request.form()
    name = str(form.get("name") or "").strip()
    async with AdminApi(request) as api:
        res = await api.post("/admin/knowledge", json={"name": name})
        bases, error = await _kb_list(api)
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
    )


@router.get("/ui/knowledge/{kb_id}", response_class=HTMLResponse)
async def knowledge_status(request: Request, user: UserDep, kb_id: str) -> HTMLResponse:
    """One base's status card."""
    async with AdminApi(request) as api:
        res = await api.get(f"/admin/knowledge/{quote(kb_id)}")
    base = res.data if res.ok and isinstance(res.data, dict) else {"id": kb_id}
    return render(
        request,
        "_kb_card.html",
        user=user,
        base=base,
        error="" if res.ok else res.message,
        notice="",
        results=None,
    )


@router.post("/ui/knowledge/{kb_id}/{action}", response_class=HTMLResponse)
async def knowledge_action(
    request: Request,
    user: UserDep,
    kb_id: str,
    action: str,
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Upload a document, build the index or run a test query."""
    path = f"/admin/knowledge/{quote(kb_id)}"
    results = None
    async with AdminApi(request) as api:
        if action == "upload":
            if file is None or not file.filename:
                res = ApiResult(422, message="choose a file first")
            else:
                # Streamed from the spooled upload (on disk past 1 MiB), not read into memory;
                # the body-limit middleware checked the writer's token before it was received.
                res = await api.post(
                    f"{path}/documents",
                    files={"file": (file.filename, file.file, file.content_type or "")},
                )
        elif action == "build":
            res = await api.post(f"{path}/build")
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
    base = (
        status_res.data if status_res.ok and isinstance(status_res.data, dict) else {"id": kb_id}
    )
    notice = {"upload": "Uploaded.", "build": "Build started.", "search": ""}[action]
    return render(
        request,
        "_kb_card.html",
        user=user,
        base=base,
        error="" if res.ok else res.message,
        notice=notice if res.ok else "",
        results=results,
    )
