"""The bots page: the list with live state, add a bot, start/stop/restart/delete
(``orchestrator/api/routes/fleet.py``; creation and deletion through the instance API)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape

from admin_ui.api_client import AdminApi
from admin_ui.common import UiUser, UserDep, channels_of, fleet, render

router = APIRouter(include_in_schema=False)


def _bot_list(
    request: Request, user: UiUser, bots: list[dict[str, Any]], selected: str, error: str = ""
) -> HTMLResponse:
    return render(
        request, "_bot_list.html", user=user, bots=bots, selected=selected, list_error=error
    )


@router.get("/bots", response_class=HTMLResponse)
async def bots_page(request: Request, user: UserDep) -> HTMLResponse:
    """Every bot the user may see; pick one on the left."""
    async with AdminApi(request) as api:
        bots = await fleet(api)
    return render(request, "bots.html", user=user, bots=bots, selected="", bot=None, tab="")


@router.get("/ui/bots", response_class=HTMLResponse)
async def bot_list_fragment(request: Request, user: UserDep, selected: str = "") -> HTMLResponse:
    """The left panel, polled for live status."""
    async with AdminApi(request) as api:
        bots = await fleet(api)
    return _bot_list(request, user, bots, selected)


@router.get("/ui/slug", response_class=HTMLResponse)
async def slug_preview(request: Request, user: UserDep, name: str = "") -> HTMLResponse:
    """The id a bot named ``name`` would get (``GET /admin/slug``: exact for admins, the plain
    slug for anyone else, so the answer tells nothing about other users' ids)."""
    if not name.strip():
        return HTMLResponse('<span class="muted">type a name</span>')
    async with AdminApi(request) as api:
        res = await api.get("/admin/slug", params={"name": name})
    if not res.ok or not isinstance(res.data, dict):
        message = escape(res.message or "no id for this name")
        return HTMLResponse(f'<span class="muted">{message}</span>')
    return render(
        request, "_slug.html", slug=res.data.get("slug", ""), exact=bool(res.data.get("exact"))
    )


@router.post("/ui/bots", response_class=HTMLResponse)
async def add_bot(request: Request, user: UserDep) -> Response:
    """Create a bot (kind + name); on success go to its settings."""
    form = await request.form()
    kind = str(form.get("kind") or "")
    name = str(form.get("name") or "").strip()
    channel = channels_of(request).get(kind)
    errors: dict[str, str] = {}
    if channel is None:
        errors["kind"] = "pick a channel"
    if not name:
        errors["name"] = "give the bot a name"
    body: dict[str, Any] = {"name": name}
    template = str(form.get("template") or "")
    if template:  # the "Start from" select; none: the API's default (answer from documents)
        body["template"] = template
    settings = request.app.state.settings
    if form.get("sandbox") and channel is not None:
        body.update(channel.sandbox_values(f"http://127.0.0.1:{settings.sandbox_port}"))
    if not errors:
        async with AdminApi(request) as api:
            res = await api.post(f"/admin/{quote(kind)}/instances", json=body)
        if res.ok:
            response = HTMLResponse("")
            response.headers["HX-Redirect"] = f"/bots/{kind}/{quote(str(res.data['id']))}/settings"
            return response
        errors = res.field_errors or {"name": res.message}
    return render(
        request,
        "_add_bot.html",
        user=user,
        errors=errors,
        kind=kind,
        name=name,
        sandbox=bool(form.get("sandbox")),
        sandbox_on=settings.sandbox,
    )


@router.post("/ui/bots/{kind}/{bot_id}/control/{action}", response_class=HTMLResponse)
async def bot_action(
    request: Request, user: UserDep, kind: str, bot_id: str, action: str
) -> Response:
    """Start, stop, restart or delete; answers the refreshed left panel."""
    if action not in ("start", "stop", "restart", "delete"):
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    selected = str(request.query_params.get("selected") or "")
    base = f"/admin/{quote(kind)}/instances/{quote(bot_id)}"
    async with AdminApi(request) as api:
        if action == "delete":
            res = await api.call("DELETE", base)
        else:
            res = await api.post(f"{base}/{action}")
        if res.ok and action == "delete":
            response = HTMLResponse("")
            response.headers["HX-Redirect"] = "/bots"
            return response
        bots = await fleet(api)
    error = "" if res.ok else f"{bot_id}: {res.message}"
    return _bot_list(request, user, bots, selected, error)
