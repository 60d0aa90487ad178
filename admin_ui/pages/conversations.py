"""A bot's Conversations and Test chat tabs (``orchestrator/api/routes/conversations.py``):
customers and their messages, the operator's send box, and the phone simulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi
from admin_ui.channels import UiChannel
from admin_ui.common import UserDep, channels_of, render

router = APIRouter(include_in_schema=False)


def _base(kind: str, bot_id: str) -> str:
    return f"/admin/{kind}/instances/{quote(bot_id)}"


async def _chat(api: AdminApi, kind: str, bot_id: str, customer: str) -> dict[str, Any]:
    res = await api.get(f"{_base(kind, bot_id)}/conversations/{quote(customer, safe='')}")
    if not res.ok or not isinstance(res.data, dict):
        return {"customer_key": customer, "customer": None, "messages": [], "error": res.message}
    return {**res.data, "error": ""}


async def conversations_tab(
    request: Request, api: AdminApi, bot: dict[str, Any]
) -> dict[str, Any]:
    """What the Conversations tab shows: the customers and, when one is picked, their chat."""
    kind, bot_id = bot["kind"], bot["id"]
    res = await api.get(f"{_base(kind, bot_id)}/conversations")
    customer = str(request.query_params.get("customer") or "")
    return {
        "customers": res.data if res.ok and isinstance(res.data, list) else [],
        "customer": customer,
        "chat": await _chat(api, kind, bot_id, customer) if customer else None,
    }


async def chat_tab(request: Request, api: AdminApi, bot: dict[str, Any]) -> dict[str, Any]:
    """What the Test chat tab shows: the test customer (a fresh one in the channel's id
    scheme unless ``?to=`` names one) and where the replies poll starts."""
    kind, bot_id = bot["kind"], bot["id"]
    channel = channels_of(request).get(kind) or UiChannel(kind=kind, label=kind)
    chosen = str(request.query_params.get("to") or "").strip()
    to = chosen or channel.test_customer()
    replies = await api.get(f"{_base(kind, bot_id)}/simulate/replies", params={"to": to})
    return {
        "to": to,
        # a customer named in the URL (or a fresh one asked for) replaces the one the browser
        # keeps for this bot (sessionStorage, see app.js); otherwise the kept one comes back
        "to_chosen": bool(chosen) or "new" in request.query_params,
        "simulator": channel.simulator,
        "customer_id_scheme": channel.customer_id_scheme,
        "sim_error": "" if replies.ok else replies.message,
        "since": replies.data.get("last_seq", 0) if replies.ok else 0,
    }


@router.get("/ui/bots/{kind}/{bot_id}/sim-state", response_class=HTMLResponse)
async def sim_state(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """The test chat's notice of the bot's state (polled: it follows a start or a stop)."""
    async with AdminApi(request) as api:
        res = await api.get(f"{_base(kind, bot_id)}/status")
    st = res.data if res.ok and isinstance(res.data, dict) else {"state": "stopped"}
    return render(request, "_sim_state.html", st=st, bot={"kind": kind, "id": bot_id})


@router.get("/ui/bots/{kind}/{bot_id}/chat-view", response_class=HTMLResponse)
async def chat_fragment(
    request: Request, user: UserDep, kind: str, bot_id: str, customer: str
) -> HTMLResponse:
    """One customer's messages as bubbles (polled)."""
    async with AdminApi(request) as api:
        chat = await _chat(api, kind, bot_id, customer)
    return render(
        request, "_chat_messages.html", chat=chat, bot={"kind": kind, "id": bot_id}, user=user
    )


@router.post("/ui/bots/{kind}/{bot_id}/send", response_class=HTMLResponse)
async def operator_send(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """Send an operator message, then show the conversation again."""
    form = await request.form()
    to = str(form.get("to") or "")
    text = str(form.get("text") or "")
    async with AdminApi(request) as api:
        res = await api.post(f"{_base(kind, bot_id)}/messages", json={"to": to, "text": text})
        chat = await _chat(api, kind, bot_id, to)
    return render(
        request,
        "_send_box.html",
        bot={"kind": kind, "id": bot_id},
        customer=to,
        user=user,
        send_error="" if res.ok else (res.field_errors.get("text") or res.message),
        sent=res.ok,
        text="" if res.ok else text,
        chat=chat,
    )


@router.post("/ui/bots/{kind}/{bot_id}/simulate", response_class=HTMLResponse)
async def simulate(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """Type (or tap a button) as the test customer; answers the customer's bubble."""
    form = await request.form()
    to = str(form.get("to") or "").strip()
    text = str(form.get("text") or "")
    payload = str(form.get("payload") or "") or None
    now_ts = time.time()
    async with AdminApi(request) as api:
        res = await api.post(
            f"{_base(kind, bot_id)}/simulate", json={"from": to, "text": text, "payload": payload}
        )
    error = ""
    if not res.ok:
        error = res.field_errors.get("text") or res.field_errors.get("from") or res.message
    return render(
        request,
        "_sim_sent.html",
        text=text,
        payload=payload,
        error=error,
        now=datetime.now(UTC).isoformat(),
        now_ts=now_ts,
    )


@router.get("/ui/bots/{kind}/{bot_id}/replies", response_class=HTMLResponse)
async def simulate_replies(
    request: Request, user: UserDep, kind: str, bot_id: str, to: str, since: int = 0
) -> HTMLResponse:
    """New bot messages to the test customer, rendered as the channel shows them (polled)."""
    async with AdminApi(request) as api:
        res = await api.get(
            f"{_base(kind, bot_id)}/simulate/replies", params={"to": to, "since": since}
        )
    data = res.data if res.ok and isinstance(res.data, dict) else {}
    return render(
        request,
        "_sim_replies.html",
        bot={"kind": kind, "id": bot_id},
        to=to,
        messages=data.get("messages", []),
        since=data.get("last_seq", since),
        user=user,
        error="" if res.ok else res.message,
    )
