"""The setup flow: a new bot for a business in one form, then "Try it" in the test chat.

name → what you do → hours and time zone → language → where customers write (sandbox-connected
by default when the sandbox is on) → how the bot starts (a template) → documents. On submit it
calls the admin API as the signed-in user: ``POST /admin/{kind}/instances`` with ``template`` and
``business``; with documents, ``POST /admin/knowledge`` + ``.../documents`` (each upload is
indexed before it answers) and a ``PUT`` linking the base; then ``.../start``. The done page
links to the bot's Test chat tab.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from admin_ui.api_client import AdminApi
from admin_ui.common import UserDep, channels_of, render
from shared.funnel.templates import timezone_names

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

MAX_FILES = 10
FIELDS = ("name", "about", "hours", "timezone", "language", "currency", "contact")


async def _templates(api: AdminApi, language: str = "en") -> list[dict[str, Any]]:
    res = await api.get("/admin/templates", params={"language": language})
    return list(res.data) if res.ok and isinstance(res.data, list) else []


def _context(request: Request, **values: Any) -> dict[str, Any]:
    settings = request.app.state.settings
    channels = channels_of(request).all
    ctx: dict[str, Any] = {
        "values": {"language": "en", "template": "documents"},
        "errors": {},
        "form_error": "",
        "kind": channels[0].kind if channels else "",
        "sandbox": True,
        "sandbox_on": bool(settings.sandbox),
        "timezones": timezone_names(),
    }
    ctx.update(values)
    return ctx


@router.get("/setup", response_class=HTMLResponse)
async def setup_page(request: Request, user: UserDep) -> HTMLResponse:
    """The setup form."""
    async with AdminApi(request) as api:
        templates = await _templates(api)
    return render(request, "setup.html", user=user, templates=templates, **_context(request))


@router.get("/ui/template-select", response_class=HTMLResponse)
async def template_select(request: Request, user: UserDep) -> HTMLResponse:
    """The "Start from" select of the Add bot form (filled from ``GET /admin/templates``)."""
    async with AdminApi(request) as api:
        templates = await _templates(api)
    return render(request, "_template_select.html", templates=templates, selected="documents")


@router.post("/ui/setup", response_class=HTMLResponse)
async def setup_submit(request: Request, user: UserDep) -> Response:
    """Create the bot (and its knowledge base); on success go to the done page."""
    form = await request.form()
    values = {key: str(form.get(key) or "").strip() for key in FIELDS}
    template = str(form.get("template") or "documents")
    values["template"] = template
    kind = str(form.get("kind") or "")
    sandbox = bool(form.get("sandbox"))
    uploads = [f for f in form.getlist("documents") if isinstance(f, UploadFile) and f.filename]
    channel = channels_of(request).get(kind)
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "Tell us the name of your business."
    if channel is None:
        errors["kind"] = "Pick where your customers will write to you."
    if len(uploads) > MAX_FILES:
        errors["documents"] = f"Upload at most {MAX_FILES} documents here; add more later."
    settings = request.app.state.settings
    form_error = ""
    async with AdminApi(request) as api:
        if not errors and channel is not None:
            business = {k: values[k] for k in FIELDS}
            body: dict[str, Any] = {
                "name": values["name"],
                "template": template,
                "business": business,
            }
            if sandbox and settings.sandbox:
                body.update(channel.sandbox_values(f"http://127.0.0.1:{settings.sandbox_port}"))
            res = await api.post(f"/admin/{quote(kind)}/instances", json=body)
            if res.ok and isinstance(res.data, dict):
                bot_id = str(res.data["id"])
                problem = await _add_documents(api, kind, bot_id, values["name"], uploads)
                started = await api.post(f"/admin/{quote(kind)}/instances/{quote(bot_id)}/start")
                target = f"/setup/done?kind={quote(kind)}&bot={quote(bot_id)}"
                if problem:
                    target += "&problem=" + quote(problem[:300])
                if not started.ok:
                    target += "&not_started=" + quote(started.message[:300])
                response = HTMLResponse("")
                response.headers["HX-Redirect"] = target
                return response
            errors = _field_errors(res.field_errors)
            form_error = "" if errors else res.message
        templates = await _templates(api)
    return render(
        request,
        "_setup_form.html",
        user=user,
        templates=templates,
        **_context(
            request,
            values=values,
            errors=errors,
            form_error=form_error,
            kind=kind,
            sandbox=sandbox,
        ),
    )


def _field_errors(api_errors: dict[str, str]) -> dict[str, str]:
    """The API's field errors, on the setup form's own fields (``business → timezone``)."""
    out: dict[str, str] = {}
    for field, message in api_errors.items():
        if field == "business":
            sub, _, rest = message.partition(": ")
            if sub in FIELDS and rest:
                out[sub] = rest
                continue
            out["form"] = message
        elif field in FIELDS or field in ("template", "kind"):
            out[field] = message
        else:
            out["form"] = f"{field}: {message}"
    return out


async def _add_documents(
    api: AdminApi, kind: str, bot_id: str, name: str, uploads: list[UploadFile]
) -> str:
    """A knowledge base with the uploaded documents, linked to the bot; ``""`` or what failed."""
    if not uploads:
        return ""
    res = await api.post("/admin/knowledge", json={"name": f"{name} documents"[:200]})
    if not res.ok or not isinstance(res.data, dict):
        return f"The documents were not saved: {res.message}"
    kb_id = str(res.data["id"])
    failed: list[str] = []
    for upload in uploads:
        added = await api.post(
            f"/admin/knowledge/{quote(kb_id)}/documents",  # indexed before it answers
            files={"file": (upload.filename, upload.file, upload.content_type or "")},
        )
        if not added.ok:
            failed.append(f"{upload.filename}: {added.message}")
    linked = await api.call(
        "PUT",
        f"/admin/{quote(kind)}/instances/{quote(bot_id)}",
        json={"knowledge_base_ids": [kb_id]},
    )
    if not linked.ok:
        failed.append(f"linking the documents to the bot: {linked.message}")
    elif not failed:
        problem = await _add_topics(api, kind, bot_id, kb_id)
        if problem:
            failed.append(problem)
    return "; ".join(failed)


async def _add_topics(api: AdminApi, kind: str, bot_id: str, kb_id: str) -> str:
    """The bot's menu gets the documents' topics (``with_topics``); ``""`` or what failed."""
    from shared.funnel.templates import TemplateError, with_topics

    topics = await api.get(f"/admin/knowledge/{quote(kb_id)}/topics")
    bot = await api.get(f"/admin/{quote(kind)}/instances/{quote(bot_id)}")
    if not topics.ok or not isinstance(topics.data, list) or not isinstance(bot.data, dict):
        return ""  # the bot works without a topics menu
    funnel = bot.data.get("funnel")
    if not isinstance(funnel, dict) or not topics.data:
        return ""
    language = str((bot.data.get("business") or {}).get("language") or "en")
    try:
        funnel = with_topics(funnel, topics.data, language)
    except TemplateError:
        return ""
    saved = await api.call(
        "PUT", f"/admin/{quote(kind)}/instances/{quote(bot_id)}", json={"funnel": funnel}
    )
    return "" if saved.ok else f"adding the topics menu: {saved.message}"


@router.get("/setup/{kind}/{bot_id}", response_class=HTMLResponse)
async def profile_page(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """An existing bot's business profile, editable; the template can be applied again."""
    async with AdminApi(request) as api:
        res = await api.get(f"/admin/{quote(kind, safe='')}/instances/{quote(bot_id, safe='')}")
        templates = await _templates(api)
    bot = res.data if res.ok and isinstance(res.data, dict) else None
    values: dict[str, Any] = {"language": "en", "template": "documents"}
    if bot is not None:
        values.update({k: v for k, v in (bot.get("business") or {}).items() if k in FIELDS})
        values.setdefault("name", bot.get("name", ""))
        values["template"] = bot.get("template") or "documents"
    return render(
        request,
        "setup.html",
        user=user,
        templates=templates,
        bot=bot,
        not_found="" if bot is not None else bot_id,
        **_context(request, values=values),
    )


@router.post("/ui/setup/{kind}/{bot_id}", response_class=HTMLResponse)
async def profile_submit(request: Request, user: UserDep, kind: str, bot_id: str) -> Response:
    """Save the profile (``PUT`` ``business``); with "apply", make the funnel from the template
    again with it (``template``)."""
    form = await request.form()
    values = {key: str(form.get(key) or "").strip() for key in FIELDS}
    values["template"] = str(form.get("template") or "documents")
    errors: dict[str, str] = {}
    form_error = ""
    saved = False
    if not values["name"]:
        errors["name"] = "Tell us the name of your business."
    path = f"/admin/{quote(kind, safe='')}/instances/{quote(bot_id, safe='')}"
    async with AdminApi(request) as api:
        if not errors:
            body: dict[str, Any] = {"business": {k: values[k] for k in FIELDS}}
            if form.get("apply"):
                body["template"] = values["template"]
            res = await api.call("PUT", path, json=body)
            saved = res.ok
            if not res.ok:
                errors = _field_errors(res.field_errors)
                form_error = "" if errors else res.message
        current = await api.get(path)
        templates = await _templates(api)
    bot = current.data if current.ok and isinstance(current.data, dict) else None
    return render(
        request,
        "_setup_form.html",
        user=user,
        templates=templates,
        bot=bot,
        saved=saved,
        applied=saved and bool(form.get("apply")),
        **_context(request, values=values, errors=errors, form_error=form_error),
    )


@router.get("/setup/done", response_class=HTMLResponse)
async def setup_done(
    request: Request,
    user: UserDep,
    kind: str = "",
    bot: str = "",
    problem: str = "",
    not_started: str = "",
) -> HTMLResponse:
    """What was made, and "Try it"."""
    async with AdminApi(request) as api:
        res = await api.get(f"/admin/{quote(kind, safe='')}/instances/{quote(bot, safe='')}")
        found = res.ok and isinstance(res.data, dict)
        kbs: list[dict[str, Any]] = []
        if found:
            for kb_id in res.data.get("knowledge_base_ids") or []:
                kb = await api.get(f"/admin/knowledge/{quote(str(kb_id), safe='')}")
                if kb.ok and isinstance(kb.data, dict):
                    kbs.append(kb.data)
    return render(
        request,
        "setup_done.html",
        user=user,
        bot=res.data if found else None,
        kbs=kbs,
        problem=problem[:300],
        not_started=not_started[:300],
    )
