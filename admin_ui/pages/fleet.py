"""The fleet overview (``/admin/fleet`` and ``/admin/conversations/stats``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi
from admin_ui.common import UserDep, fleet, render

router = APIRouter(include_in_schema=False)


async def _fleet_rows(api: AdminApi) -> list[dict[str, Any]]:
    bots = await fleet(api)
    stats = await api.get("/admin/conversations/stats")
    today = {}
    if stats.ok and isinstance(stats.data, list):
        today = {s["id"]: s for s in stats.data}
    for b in bots:
        b["messages_today"] = today.get(b["id"], {}).get("messages_today", 0)
    return bots


@router.get("/fleet", response_class=HTMLResponse)
async def fleet_page(request: Request, user: UserDep) -> HTMLResponse:
    """Every bot with state, memory, uptime, restarts and messages today."""
    async with AdminApi(request) as api:
        rows = await _fleet_rows(api)
    return render(request, "fleet.html", user=user, rows=rows)


@router.get("/ui/fleet", response_class=HTMLResponse)
async def fleet_fragment(request: Request, user: UserDep) -> HTMLResponse:
    """The fleet table, polled."""
    async with AdminApi(request) as api:
        rows = await _fleet_rows(api)
    return render(request, "_fleet_rows.html", user=user, rows=rows)
