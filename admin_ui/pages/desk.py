"""The Desk (``orchestrator/api/routes/handovers.py``): conversations handed to a person —
pending and taken handovers across the bots the user may see, the conversation beside the one
picked, Take / Reply / Resolve, and the navigation badge with the pending count. Guests see
the desk without controls (the API refuses their writes anyway)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi
from admin_ui.common import UserDep, render
from admin_ui.pages.conversations import _chat

router = APIRouter(include_in_schema=False)

REASONS = {
    "ask_for_person": "asked for a person",
    "frustration": "frustrated",
    "llm_escalate": "the AI could not answer",
    "manager_button": "pressed the manager button",
    "operator_message": "an operator wrote",
    "message_echoes": "answered from the business phone",
}


def _base(kind: str, bot_id: str) -> str:
    return f"/admin/{kind}/instances/{quote(bot_id)}"


async def _open(api: AdminApi) -> tuple[list[dict[str, Any]], str]:
    res = await api.get("/admin/handovers")
    if not res.ok or not isinstance(res.data, list):
        return [], res.message
    return list(res.data), ""


async def _panel(
    api: AdminApi, kind: str, bot_id: str, handover_id: int, *, with_chat: bool = True
) -> dict[str, Any] | None:
    """The picked handover (any status) with its conversation."""
    res = await api.get(f"{_base(kind, bot_id)}/handovers")
    if not res.ok or not isinstance(res.data, list):
        return None
    found = next((h for h in res.data if int(h.get("id", 0)) == handover_id), None)
    if found is None:
        return None
    item = {**found, "bot_id": bot_id, "bot_kind": kind}
    if with_chat:
        item["chat"] = await _chat(api, kind, bot_id, str(found.get("customer_key") or ""))
    return item


async def _proposals(api: AdminApi) -> tuple[list[dict[str, Any]], str]:
    """Suggested answers (owner answers → knowledge base) waiting for a decision."""
    res = await api.get("/admin/answer-proposals")
    if not res.ok or not isinstance(res.data, list):
        return [], res.message
    return list(res.data), ""


def _picked(request: Request) -> tuple[str, str, int] | None:
    q = request.query_params
    kind, bot_id, raw = q.get("kind") or "", q.get("bot") or "", q.get("id") or ""
    if not kind or not bot_id or not raw.isdigit() or len(raw) > 15:
        return None
    return kind, bot_id, int(raw)


@router.get("/desk", response_class=HTMLResponse)
async def desk_page(request: Request, user: UserDep) -> HTMLResponse:
    """Pending and taken handovers; the picked one's conversation and controls."""
    picked = _picked(request)
    async with AdminApi(request) as api:
        rows, error = await _open(api)
        panel = await _panel(api, *picked) if picked else None
        proposals, proposals_error = await _proposals(api)
    return render(
        request, "desk.html", user=user, section="desk", rows=rows, error=error, panel=panel,
        picked=picked, reasons=REASONS, panel_error="", proposals=proposals,
        proposals_error=proposals_error, proposal_errors={},
    )


@router.get("/ui/desk/list", response_class=HTMLResponse)
async def desk_list(request: Request, user: UserDep) -> HTMLResponse:
    """The handover list (polled)."""
    picked = _picked(request)
    async with AdminApi(request) as api:
        rows, error = await _open(api)
    return render(
        request, "_desk_list.html", user=user, rows=rows, error=error, picked=picked,
        reasons=REASONS,
    )


@router.get("/ui/desk/badge", response_class=HTMLResponse)
async def desk_badge(request: Request, user: UserDep) -> HTMLResponse:
    """The navigation badge: how many handovers wait for a person (polled)."""
    async with AdminApi(request) as api:
        res = await api.get("/admin/handovers/count")
    pending = int(res.data.get("pending", 0)) if res.ok and isinstance(res.data, dict) else 0
    return render(request, "_desk_badge.html", pending=pending)


@router.get("/ui/desk/{kind}/{bot_id}/{handover_id}", response_class=HTMLResponse)
async def desk_panel(
    request: Request, user: UserDep, kind: str, bot_id: str, handover_id: int
) -> HTMLResponse:
    """The picked handover's status and controls (polled)."""
    async with AdminApi(request) as api:
        panel = await _panel(api, kind, bot_id, handover_id)
    return render(
        request, "_desk_panel.html", user=user, panel=panel, reasons=REASONS, panel_error=""
    )


@router.get("/ui/desk/{kind}/{bot_id}/{handover_id}/head", response_class=HTMLResponse)
async def desk_head(
    request: Request, user: UserDep, kind: str, bot_id: str, handover_id: int
) -> HTMLResponse:
    """The picked handover's status line with Take / Resolve (polled: a colleague's take or a
    timeout shows without a reload; the reply box is left alone)."""
    async with AdminApi(request) as api:
        panel = await _panel(api, kind, bot_id, handover_id, with_chat=False)
    if panel is None:
        return HTMLResponse('<div class="chat-head muted">That handover is not there.</div>')
    return render(request, "_desk_head.html", user=user, panel=panel, reasons=REASONS)


@router.post("/ui/desk/{kind}/{bot_id}/{handover_id}/{action}", response_class=HTMLResponse)
async def desk_action(
    request: Request, user: UserDep, kind: str, bot_id: str, handover_id: int, action: str
) -> HTMLResponse:
    """Take, Reply or Resolve; answers the panel again (with the refusal in place)."""
    error = ""
    text = ""
    async with AdminApi(request) as api:
        url = f"{_base(kind, bot_id)}/handovers/{handover_id}"
        if action == "reply":
            form = await request.form()
            text = str(form.get("text") or "")
            res = await api.post(f"{url}/reply", json={"text": text})
        elif action in ("take", "resolve"):
            res = await api.post(f"{url}/{action}")
        else:
            res = None
            error = f"unknown action {action!r}"
        if res is not None and not res.ok:
            error = res.field_errors.get("text") or res.message
        panel = await _panel(api, kind, bot_id, handover_id)
    page = render(
        request, "_desk_panel.html", user=user, panel=panel, reasons=REASONS,
        panel_error=error, text=text if error else "", sent=action == "reply" and not error,
    )
    if action == "resolve" and not error:
        page.headers["HX-Trigger"] = "proposals-changed"  # a new suggested answer may be there
    return page


@router.get("/ui/desk/proposals", response_class=HTMLResponse)
async def desk_proposals(request: Request, user: UserDep) -> HTMLResponse:
    """The "Suggested answers" section (refreshed after a resolve)."""
    async with AdminApi(request) as api:
        proposals, error = await _proposals(api)
    return render(
        request, "_desk_proposals.html", user=user, proposals=proposals,
        proposals_error=error, proposal_errors={},
    )


@router.post(
    "/ui/desk/proposals/{kind}/{bot_id}/{proposal_id}/{action}", response_class=HTMLResponse
)
async def desk_proposal_action(
    request: Request, user: UserDep, kind: str, bot_id: str, proposal_id: int, action: str
) -> HTMLResponse:
    """Accept (with the edited question and answer) or Drop a suggested answer; answers the
    section again (with a refusal beside the proposal)."""
    errors: dict[int, str] = {}
    async with AdminApi(request) as api:
        url = f"{_base(kind, bot_id)}/answer-proposals/{proposal_id}"
        if action == "accept":
            form = await request.form()
            body = {
                "question": str(form.get("question") or ""),
                "answer": str(form.get("answer") or ""),
            }
            res = await api.post(f"{url}/accept", json=body)
        elif action == "drop":
            res = await api.post(f"{url}/drop")
        else:
            res = None
            errors[proposal_id] = f"unknown action {action!r}"
        if res is not None and not res.ok:
            fe = res.field_errors
            errors[proposal_id] = fe.get("question") or fe.get("answer") or res.message
        proposals, error = await _proposals(api)
    return render(
        request, "_desk_proposals.html", user=user, proposals=proposals,
        proposals_error=error, proposal_errors=errors,
        accepted=proposal_id if action == "accept" and not errors else None,
    )
