"""One bot's page and its tabs (``orchestrator/api/routes/instances.py``): the settings forms,
linked knowledge bases, logs, the state line, the default funnel to start editing from and the
AI answer preview. The Conversations and Test chat tabs are filled by ``pages/conversations``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin_ui.api_client import AdminApi
from admin_ui.common import UiUser, UserDep, channels_of, fleet, log_line, render
from admin_ui.forms import TAB_NAMES, display_value, fields_for, parse_form
from admin_ui.pages.conversations import chat_tab, conversations_tab
from admin_ui.pages.followups import followups_tab
from admin_ui.pages.handoff import handoff_tab

router = APIRouter(include_in_schema=False)

FORM_TABS = ("settings", "ai", "tts", "access", "limits", "funnel")


def _base(kind: str, bot_id: str) -> str:
    return f"/admin/{quote(kind)}/instances/{quote(bot_id)}"


async def _instance(request: Request, api: AdminApi, kind: str, bot_id: str) -> dict[str, Any]:
    if channels_of(request).get(kind) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such kind of bot")
    res = await api.get(_base(kind, bot_id))
    if not res.ok or not isinstance(res.data, dict):
        raise HTTPException(res.status if res.status in (401, 404) else 404, res.message)
    return res.data


@router.get("/bots/{kind}/{bot_id}", response_model=None)
async def bot_page_default(kind: str, bot_id: str) -> Response:
    """A bot opens on its Settings tab."""
    return RedirectResponse(f"/bots/{kind}/{quote(bot_id)}/settings", status.HTTP_303_SEE_OTHER)


async def _tab_context(
    request: Request, api: AdminApi, user: UiUser, bot: dict[str, Any], tab: str
) -> dict[str, Any]:
    """What a tab needs besides the bot."""
    kind, bot_id = bot["kind"], bot["id"]
    ctx: dict[str, Any] = {}
    if tab in FORM_TABS:
        channel = channels_of(request).get(kind)
        fields = fields_for(tab, channel.form_fields() if channel else [])
        ctx["fields"] = channel.explain(fields) if channel else fields
        ctx["values"] = {f.name: display_value(f, bot.get(f.name)) for f in ctx["fields"]}
        ctx["errors"] = {}
        ctx["saved"] = False
        ctx["form_error"] = ""
        if tab == "ai":
            ctx["extra_options"] = await _cloud_providers(api)
        if tab == "funnel":
            ctx.update(await _funnel_document(api, bot))
    elif tab == "knowledge":
        ctx.update(await _knowledge_choices(api, bot))
    elif tab == "logs":
        res = await api.get(f"{_base(kind, bot_id)}/logs", params={"lines": 100})
        lines = res.data.get("lines", []) if res.ok and isinstance(res.data, dict) else []
        ctx["lines"] = [log_line(line) for line in lines]
    elif tab == "conversations":
        ctx.update(await conversations_tab(request, api, bot))
    elif tab == "chat":
        ctx.update(await chat_tab(request, api, bot))
    elif tab == "followups":
        ctx.update(followups_tab(bot))
    elif tab == "handoff":
        ctx.update(handoff_tab(bot))
    return ctx


@router.get("/bots/{kind}/{bot_id}/{tab}", response_class=HTMLResponse)
async def bot_page(
    request: Request, user: UserDep, kind: str, bot_id: str, tab: str
) -> HTMLResponse:
    """One bot, one tab."""
    if tab not in TAB_NAMES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such tab")
    async with AdminApi(request) as api:
        try:
            bot = await _instance(request, api, kind, bot_id)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
            bots = await fleet(api)
            response = render(
                request, "bots.html", user=user, bots=bots, selected="", bot=None, tab="",
                not_found=bot_id,
            )  # fmt: skip
            response.status_code = 404
            return response
        bots = await fleet(api)
        status_row = next((b for b in bots if b["id"] == bot_id), {"state": "stopped"})
        ctx = await _tab_context(request, api, user, bot, tab)
    return render(
        request,
        "bots.html",
        user=user,
        bots=bots,
        selected=f"{kind}/{bot_id}",
        bot=bot,
        st=status_row,
        tab=tab,
        **ctx,
    )


@router.get("/ui/bots/{kind}/{bot_id}/status", response_class=HTMLResponse)
async def bot_status_fragment(
    request: Request, user: UserDep, kind: str, bot_id: str
) -> HTMLResponse:
    """The state line above a bot's tabs, polled."""
    async with AdminApi(request) as api:
        res = await api.get(f"{_base(kind, bot_id)}/status")
    st = res.data if res.ok and isinstance(res.data, dict) else {"state": "stopped"}
    return render(request, "_bot_status.html", st=st, bot={"id": bot_id, "kind": kind})


@router.post("/bots/{kind}/{bot_id}/{tab}", response_class=HTMLResponse)
async def save_tab(
    request: Request, user: UserDep, kind: str, bot_id: str, tab: str
) -> HTMLResponse:
    """Save one settings tab; errors come back next to their fields."""
    if tab not in (*FORM_TABS, "knowledge"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such tab")
    form = await request.form()
    async with AdminApi(request) as api:
        bot = await _instance(request, api, kind, bot_id)
        ctx = await _tab_context(request, api, user, bot, tab)
        if tab == "knowledge":
            ids = [str(v) for v in form.getlist("knowledge_base_ids") if str(v).strip()]
            typed = str(form.get("knowledge_base_ids_text") or "")
            ids += [p.strip() for p in typed.replace("\n", ",").split(",") if p.strip()]
            body: dict[str, Any] = {"knowledge_base_ids": list(dict.fromkeys(ids))}
            errors: dict[str, str] = {}
            echo: dict[str, Any] = {}
        else:
            body, errors, echo = parse_form(ctx["fields"], form)
        form_error = ""
        saved = False
        if not errors:
            res = await api.call("PUT", _base(kind, bot_id), json=body)
            if res.ok:
                saved = True
                bot = res.data
                ctx = await _tab_context(request, api, user, bot, tab)
            else:
                errors = res.field_errors
                form_error = res.message
                if errors and not any(f.name in errors for f in ctx.get("fields", [])):
                    form_error = "; ".join(f"{k}: {v}" for k, v in errors.items())
    if not saved and tab != "knowledge":
        ctx["values"] = {**ctx["values"], **echo}
    ctx.update(errors=errors, saved=saved, form_error=form_error)
    if tab == "knowledge":
        ctx.update(errors=errors, saved=saved, form_error=form_error or errors.get("", ""))
        if "knowledge_base_ids" in errors:
            ctx["form_error"] = errors["knowledge_base_ids"]
    template = "_tab_knowledge.html" if tab == "knowledge" else "_tab_form.html"
    return render(request, template, user=user, bot=bot, tab=tab, **ctx)


async def _funnel_document(api: AdminApi, bot: dict[str, Any]) -> dict[str, Any]:
    """What the funnel editor starts from: the bot's own funnel, else the built-in one
    (``GET /admin/funnels/default``); the templates it may start again from
    (``GET /admin/templates``) and the business values that fill them."""
    business = bot.get("business") if isinstance(bot.get("business"), dict) else None
    ctx: dict[str, Any] = {
        "funnel_templates": await _templates(api, (business or {}).get("language") or "en"),
        "funnel_business": business or {"name": str(bot.get("name") or "")[:80]},
        "funnel_template_id": bot.get("template") or "",
        "funnel_error": "",
    }
    own = bot.get("funnel")
    if isinstance(own, dict):
        return {**ctx, "funnel_doc": own, "funnel_is_default": False}
    res = await api.get("/admin/funnels/default")
    if res.ok and isinstance(res.data, dict):
        return {**ctx, "funnel_doc": res.data, "funnel_is_default": True}
    return {
        **ctx,
        "funnel_doc": {},
        "funnel_is_default": True,
        "funnel_error": f"The built-in funnel could not be loaded: {res.message}",
    }


async def _templates(api: AdminApi, language: str) -> list[dict[str, str]]:
    """``[{id, title}]`` of the funnel templates; empty when that API is not there."""
    res = await api.get("/admin/templates", params={"language": language})
    if not res.ok or not isinstance(res.data, list):
        return []
    return [
        {"id": str(t["id"]), "title": str(t.get("title") or t["id"])}
        for t in res.data
        if isinstance(t, dict) and t.get("id")
    ]


async def _cloud_providers(api: AdminApi) -> list[str]:
    res = await api.get("/admin/llm/providers")
    if not res.ok or not isinstance(res.data, list):
        return []
    return [f"cloud:{p['id']}" for p in res.data if isinstance(p, dict) and p.get("id")]


async def _knowledge_choices(api: AdminApi, bot: dict[str, Any]) -> dict[str, Any]:
    res = await api.get("/admin/knowledge")
    bases = res.data if res.ok and isinstance(res.data, list) else None
    if isinstance(res.data, dict) and isinstance(res.data.get("items"), list):
        bases = res.data["items"]
    return {
        "bases": bases,
        "kb_available": bases is not None,
        "linked": list(bot.get("knowledge_base_ids") or []),
        "errors": {},
        "saved": False,
        "form_error": "",
    }


@router.get("/ui/default-funnel", response_class=HTMLResponse)
async def default_funnel(request: Request, user: UserDep) -> HTMLResponse:
    """The built-in funnel as JSON text, to start editing from (``GET /admin/funnels/default``)."""
    async with AdminApi(request) as api:
        res = await api.get("/admin/funnels/default")
    if not res.ok or not isinstance(res.data, dict):
        return HTMLResponse(res.message, status_code=res.status, media_type="text/plain")
    text = json.dumps(res.data, indent=2, ensure_ascii=False)
    return HTMLResponse(text, media_type="text/plain")


@router.post("/ui/bots/{kind}/{bot_id}/ai-test", response_class=HTMLResponse)
async def ai_test(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """Preview the bot's AI answer to a message (``POST /admin/ai/test``)."""
    form = await request.form()
    message = str(form.get("message") or "").strip()
    if not message:
        return render(request, "_ai_test.html", error="type a question", result=None)
    async with AdminApi(request) as api:
        res = await api.post(
            "/admin/ai/test", json={"kind": kind, "bot_id": bot_id, "message": message}
        )
    if res.status in (404, 405) and not (isinstance(res.data, dict) and "bot" in res.message):
        return render(
            request,
            "_ai_test.html",
            error="The AI preview is not available on this orchestrator yet.",
            result=None,
        )
    if not res.ok:
        return render(request, "_ai_test.html", error=res.message, result=None)
    return render(request, "_ai_test.html", error="", result=res.data)


@router.get("/ui/bots/{kind}/{bot_id}/logs", response_class=HTMLResponse)
async def logs_fragment(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """The last 100 log lines (polled for a live tail)."""
    async with AdminApi(request) as api:
        res = await api.get(f"{_base(kind, bot_id)}/logs", params={"lines": 100})
    lines = res.data.get("lines", []) if res.ok and isinstance(res.data, dict) else []
    return render(
        request,
        "_log_lines.html",
        lines=[log_line(line) for line in lines],
        error="" if res.ok else res.message,
    )
