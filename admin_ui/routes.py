"""The admin UI: server-rendered pages and htmx fragments over the admin API.

Pages are full HTML documents; ``/ui/...`` routes answer htmx with fragments. Every read and
write goes through :class:`~admin_ui.api_client.AdminApi` with the signed-in user's token, so
what a role may see and do is decided by the API, not here; the UI only hides what would fail.
Fragments answer 200 with the error shown in place (htmx does not swap error answers).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from sqlmodel import Session

from admin_ui.api_client import AdminApi, ApiResult
from admin_ui.forms import TAB_NAMES, TABS, display_value, fields_for, is_secret, parse_form
from orchestrator import crud
from orchestrator.api.csrf import session_csrf_token
from orchestrator.api.deps import SESSION_COOKIE
from orchestrator.schemas import KINDS

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

router = APIRouter(include_in_schema=False)

KIND_LABELS = {"whatsapp": "WhatsApp", "sms": "SMS", "telegram": "Telegram"}
STATE_CLASS = {
    "running": "green",
    "stopped": "grey",
    "crashed": "red",
    "starting": "amber",
    "backoff": "amber",
    "stopping": "amber",
}
DEFAULT_FUNNEL = Path(__file__).resolve().parents[1] / "shared" / "funnel" / "default_funnel.json"


# ---------------------------------------------------------------- template helpers


def _ago(value: str | None) -> str:
    """``"3 min ago"`` for an ISO time."""
    if not value:
        return ""
    try:
        then = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return then.strftime("%Y-%m-%d")


def _clock(value: str | None) -> str:
    """``"14:05"`` (UTC) for an ISO time, with the date when it is not today."""
    if not value:
        return ""
    try:
        then = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    then = then.astimezone(UTC)
    if then.date() == datetime.now(UTC).date():
        return then.strftime("%H:%M")
    return then.strftime("%d %b %H:%M")


def _duration(seconds: float | None) -> str:
    """``"2 h 05 m"`` for an uptime."""
    if not seconds:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} m"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _log_line(line: str) -> dict[str, Any]:
    """A JSON log line split into time, level, message and the rest; plain text as is."""
    try:
        data = json.loads(line)
    except ValueError:
        return {"ts": "", "level": "", "msg": line, "extra": ""}
    if not isinstance(data, dict):
        return {"ts": "", "level": "", "msg": line, "extra": ""}
    ts = str(data.pop("ts", data.pop("time", "")))
    level = str(data.pop("level", data.pop("levelname", "")))
    msg = str(data.pop("msg", data.pop("message", "")))
    data.pop("bot_id", None)
    extra = " ".join(f"{k}={v}" for k, v in data.items() if v not in (None, ""))
    return {"ts": ts[11:23] if len(ts) > 19 else ts, "level": level, "msg": msg, "extra": extra}


def _chat_format(text: str | None) -> Markup:
    """WhatsApp-style ``*bold*``, ``_italic_``, ``~strike~`` on escaped text."""
    out = str(escape(text or ""))
    out = _BOLD_RE.sub(r"<b>\1</b>", out)
    out = _ITALIC_RE.sub(r"<i>\1</i>", out)
    out = _STRIKE_RE.sub(r"<s>\1</s>", out)
    return Markup(out)  # noqa: S704 - built from escaped text


_BOLD_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC_RE = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE_RE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")

templates.env.filters["chatfmt"] = _chat_format
templates.env.filters["ago"] = _ago
templates.env.filters["clock"] = _clock
templates.env.filters["duration"] = _duration
templates.env.filters["urlq"] = lambda v: quote(str(v), safe="")
templates.env.globals["KIND_LABELS"] = KIND_LABELS
templates.env.globals["STATE_CLASS"] = STATE_CLASS
templates.env.globals["TABS"] = TABS


# ---------------------------------------------------------------- session


@dataclass
class UiUser:
    """The signed-in user as the UI needs it."""

    id: int
    username: str
    role: str

    @property
    def can_write(self) -> bool:
        """Admins and users change things; guests only look."""
        return self.role != "guest"

    @property
    def is_admin(self) -> bool:
        """Admins manage users."""
        return self.role == "admin"


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def current_ui_user(request: Request) -> UiUser:
    """The user behind the session cookie; signed out → to ``/login`` (htmx: ``HX-Redirect``)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with AdminApi(request) as api:
            me = await api.get("/auth/me")
        if me.ok and isinstance(me.data, dict):
            return UiUser(
                id=int(me.data["id"]), username=me.data["username"], role=me.data["role"]
            )
    if _is_htmx(request):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, headers={"HX-Redirect": "/login"})
    raise HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": "/login"})


UserDep = Annotated[UiUser, Depends(current_ui_user)]


def render(request: Request, template: str, /, **context: Any) -> HTMLResponse:
    """Render a template with the request and the session's CSRF token in its context."""
    context.setdefault(
        "csrf_token", session_csrf_token(request.app.state.settings, dict(request.cookies))
    )
    return templates.TemplateResponse(request, template, context)


# ---------------------------------------------------------------- sign in / out


@router.get("/", response_model=None)
async def home(request: Request) -> Response:
    """Signed in: the bots page; signed out: the login page."""
    await current_ui_user(request)
    return RedirectResponse("/bots", status.HTTP_303_SEE_OTHER)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", error="", username="")


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Check the password through ``/auth/token`` and keep the token in an HttpOnly cookie."""
    form = await request.form()
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    async with AdminApi(request, token="") as api:
        res = await api.post("/auth/token", data={"username": username, "password": password})
    if not res.ok or not isinstance(res.data, dict):
        message = res.message if res.status in (401, 429) else "Enter a username and a password."
        response = render(request, "login.html", error=message, username=username)
        response.status_code = res.status if res.status in (401, 429) else 422
        return response
    redirect = RedirectResponse("/bots", status.HTTP_303_SEE_OTHER)
    redirect.set_cookie(
        SESSION_COOKIE,
        res.data["access_token"],
        max_age=int(res.data.get("expires_in") or 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    logger.info("signed in to the admin UI", extra={"username": username})
    return redirect


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    """Sign out: revoke the session's token (``POST /auth/logout``: every token of the user
    stops working, so a copied cookie is useless) and forget the cookie."""
    if request.cookies.get(SESSION_COOKIE):
        async with AdminApi(request) as api:
            await api.post("/auth/logout")
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# ---------------------------------------------------------------- bots page


async def _fleet(api: AdminApi) -> list[dict[str, Any]]:
    res = await api.get("/admin/fleet")
    return list(res.data) if res.ok and isinstance(res.data, list) else []


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
        bots = await _fleet(api)
    return render(request, "bots.html", user=user, bots=bots, selected="", bot=None, tab="")


@router.get("/ui/bots", response_class=HTMLResponse)
async def bot_list_fragment(request: Request, user: UserDep, selected: str = "") -> HTMLResponse:
    """The left panel, polled for live status."""
    async with AdminApi(request) as api:
        bots = await _fleet(api)
    return _bot_list(request, user, bots, selected)


@router.get("/ui/slug", response_class=HTMLResponse)
async def slug_preview(request: Request, user: UserDep, name: str = "") -> HTMLResponse:
    """The id a bot named ``name`` would get.

    Admins see every bot, so they get the exact id (a suffix when it is taken). Anyone else gets
    the plain slug of the name whether or not another user's bot (or a deleted one) holds it:
    the answer must not tell which ids other users have; creation adds the suffix."""
    if not name.strip():
        return HTMLResponse('<span class="muted">type a name</span>')
    if not user.is_admin:
        return render(request, "_slug.html", slug=crud.slugify(name), exact=False)
    with Session(request.app.state.engine) as session:
        slug = crud.unique_slug(session=session, name=name)
    return render(request, "_slug.html", slug=slug, exact=True)


@router.post("/ui/bots", response_class=HTMLResponse)
async def add_bot(request: Request, user: UserDep) -> Response:
    """Create a bot (kind + name); on success go to its settings."""
    form = await request.form()
    kind = str(form.get("kind") or "")
    name = str(form.get("name") or "").strip()
    errors: dict[str, str] = {}
    if kind not in KINDS:
        errors["kind"] = "pick a channel"
    if not name:
        errors["name"] = "give the bot a name"
    body: dict[str, Any] = {"name": name}
    sandbox_port = request.app.state.settings.sandbox_port
    if form.get("sandbox") and kind in KINDS:
        body.update(_sandbox_fields(kind, sandbox_port))
    if not errors:
        async with AdminApi(request) as api:
            res = await api.post(f"/admin/{kind}/instances", json=body)
        if res.ok:
            response = HTMLResponse("")
            response.headers["HX-Redirect"] = f"/bots/{kind}/{res.data['id']}/settings"
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
        sandbox_on=request.app.state.settings.sandbox,
    )


def _sandbox_fields(kind: str, port: int) -> dict[str, Any]:
    """Credentials that make a new bot talk to the sandbox providers."""
    base = f"http://127.0.0.1:{port}"
    token = "sandbox-" + "".join(random.choices("abcdef0123456789", k=24))  # noqa: S311 - fake
    if kind == "whatsapp":
        return {
            "graph_api_base_url": f"{base}/graph",
            "phone_number_id": "1" + "".join(random.choices("0123456789", k=14)),  # noqa: S311
            "access_token": token,
        }
    if kind == "sms":
        return {
            "twilio_base_url": f"{base}/twilio",
            "account_sid": "AC" + "0" * 32,
            "auth_token": token,
            "from_number": "+15550000000",
        }
    return {"telegram_api_base_url": f"{base}/telegram", "bot_token": "123456:" + token}


@router.post("/ui/bots/{kind}/{bot_id}/control/{action}", response_class=HTMLResponse)
async def bot_action(
    request: Request, user: UserDep, kind: str, bot_id: str, action: str
) -> Response:
    """Start, stop, restart or delete; answers the refreshed left panel."""
    if action not in ("start", "stop", "restart", "delete"):
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    selected = str(request.query_params.get("selected") or "")
    async with AdminApi(request) as api:
        if action == "delete":
            res = await api.call("DELETE", f"/admin/{kind}/instances/{quote(bot_id)}")
        else:
            res = await api.post(f"/admin/{kind}/instances/{quote(bot_id)}/{action}")
        if res.ok and action == "delete":
            response = HTMLResponse("")
            response.headers["HX-Redirect"] = "/bots"
            return response
        bots = await _fleet(api)
    error = "" if res.ok else f"{bot_id}: {res.message}"
    return _bot_list(request, user, bots, selected, error)


async def _instance(api: AdminApi, kind: str, bot_id: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such kind of bot")
    res = await api.get(f"/admin/{kind}/instances/{quote(bot_id)}")
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
    if tab in ("settings", "ai", "tts", "access", "limits", "funnel"):
        ctx["fields"] = fields_for(tab, kind)
        ctx["values"] = {f.name: display_value(f, bot.get(f.name)) for f in ctx["fields"]}
        ctx["errors"] = {}
        ctx["saved"] = False
        ctx["form_error"] = ""
        ctx["is_secret"] = lambda name: is_secret(kind, name)
        if tab == "ai":
            ctx["extra_options"] = await _cloud_providers(api)
    elif tab == "knowledge":
        ctx.update(await _knowledge_choices(api, bot))
    elif tab == "logs":
        res = await api.get(f"/admin/{kind}/instances/{quote(bot_id)}/logs", params={"lines": 100})
        lines = res.data.get("lines", []) if res.ok and isinstance(res.data, dict) else []
        ctx["lines"] = [_log_line(line) for line in lines]
    elif tab == "conversations":
        res = await api.get(f"/admin/{kind}/instances/{quote(bot_id)}/conversations")
        ctx["customers"] = res.data if res.ok and isinstance(res.data, list) else []
        ctx["customer"] = str(request.query_params.get("customer") or "")
        ctx["chat"] = None
        if ctx["customer"]:
            ctx["chat"] = await _chat(api, kind, bot_id, ctx["customer"])
    elif tab == "chat":
        to = str(request.query_params.get("to") or "") or (
            "+1555" + "".join(random.choices("0123456789", k=7))  # noqa: S311 - a test number
        )
        ctx["to"] = to
        replies = await api.get(
            f"/admin/{kind}/instances/{quote(bot_id)}/simulate/replies", params={"to": to}
        )
        ctx["sim_error"] = "" if replies.ok else replies.message
        ctx["since"] = replies.data.get("last_seq", 0) if replies.ok else 0
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
            bot = await _instance(api, kind, bot_id)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
            bots = await _fleet(api)
            response = render(
                request, "bots.html", user=user, bots=bots, selected="", bot=None, tab="",
                not_found=bot_id,
            )  # fmt: skip
            response.status_code = 404
            return response
        bots = await _fleet(api)
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
        res = await api.get(f"/admin/{kind}/instances/{quote(bot_id)}/status")
    st = res.data if res.ok and isinstance(res.data, dict) else {"state": "stopped"}
    return render(request, "_bot_status.html", st=st, bot={"id": bot_id, "kind": kind})


@router.post("/bots/{kind}/{bot_id}/{tab}", response_class=HTMLResponse)
async def save_tab(
    request: Request, user: UserDep, kind: str, bot_id: str, tab: str
) -> HTMLResponse:
    """Save one settings tab; errors come back next to their fields."""
    if tab not in ("settings", "ai", "tts", "access", "limits", "funnel", "knowledge"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such tab")
    form = await request.form()
    async with AdminApi(request) as api:
        bot = await _instance(api, kind, bot_id)
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
            res = await api.call("PUT", f"/admin/{kind}/instances/{quote(bot_id)}", json=body)
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
async def default_funnel(user: UserDep) -> HTMLResponse:
    """The built-in funnel as JSON text, to start editing from."""
    text = json.dumps(json.loads(DEFAULT_FUNNEL.read_text()), indent=2, ensure_ascii=False)
    return HTMLResponse(text, media_type="text/plain")


# ---------------------------------------------------------------- AI preview


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


# ---------------------------------------------------------------- logs


@router.get("/ui/bots/{kind}/{bot_id}/logs", response_class=HTMLResponse)
async def logs_fragment(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """The last 100 log lines (polled for a live tail)."""
    async with AdminApi(request) as api:
        res = await api.get(f"/admin/{kind}/instances/{quote(bot_id)}/logs", params={"lines": 100})
    lines = res.data.get("lines", []) if res.ok and isinstance(res.data, dict) else []
    return render(
        request,
        "_log_lines.html",
        lines=[_log_line(line) for line in lines],
        error="" if res.ok else res.message,
    )


# ---------------------------------------------------------------- conversations


async def _chat(api: AdminApi, kind: str, bot_id: str, customer: str) -> dict[str, Any]:
    res = await api.get(
        f"/admin/{kind}/instances/{quote(bot_id)}/conversations/{quote(customer, safe='')}"
    )
    if not res.ok or not isinstance(res.data, dict):
        return {"customer_key": customer, "customer": None, "messages": [], "error": res.message}
    return {**res.data, "error": ""}


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
        res = await api.post(
            f"/admin/{kind}/instances/{quote(bot_id)}/messages", json={"to": to, "text": text}
        )
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


# ---------------------------------------------------------------- test chat


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
            f"/admin/{kind}/instances/{quote(bot_id)}/simulate",
            json={"from": to, "text": text, "payload": payload},
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
            f"/admin/{kind}/instances/{quote(bot_id)}/simulate/replies",
            params={"to": to, "since": since},
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


# ---------------------------------------------------------------- fleet


async def _fleet_rows(api: AdminApi) -> list[dict[str, Any]]:
    bots = await _fleet(api)
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


# ---------------------------------------------------------------- users

FRAGMENT = "_users_body.html"


async def _users_page(
    request: Request,
    user: UiUser,
    *,
    template: str = "users.html",
    errors: dict[str, str] | None = None,
    **extra: Any,
) -> HTMLResponse:
    async with AdminApi(request) as api:
        res = await api.get("/admin/users")
    if res.status == 403:
        response = render(request, "forbidden.html", user=user, what="Users")
        response.status_code = 403
        return response
    users = res.data if res.ok and isinstance(res.data, list) else []
    extra.setdefault("new", {"username": "", "role": "user"})
    extra.setdefault("notice", "")
    extra.setdefault("row_errors", {})
    return render(request, template, user=user, users=users, errors=errors or {}, **extra)


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, user: UserDep) -> HTMLResponse:
    """Users and their roles (admins only)."""
    return await _users_page(request, user)


@router.post("/ui/users", response_class=HTMLResponse)
async def create_user(request: Request, user: UserDep) -> HTMLResponse:
    """Create a user; errors next to their fields."""
    form = await request.form()
    body = {
        "username": str(form.get("username") or "").strip(),
        "password": str(form.get("password") or ""),
        "role": str(form.get("role") or "user"),
    }
    async with AdminApi(request) as api:
        res = await api.post("/admin/users", json=body)
    if res.ok:
        return await _users_page(
            request, user, template=FRAGMENT, notice=f"Created {body['username']}."
        )
    errors = res.field_errors or {"username": res.message}
    return await _users_page(request, user, template=FRAGMENT, errors=errors, new=body)


@router.post("/ui/users/{user_id}", response_class=HTMLResponse)
async def update_user(request: Request, user: UserDep, user_id: int) -> HTMLResponse:
    """Change a user's role or enable/disable them."""
    form = await request.form()
    body: dict[str, Any] = {}
    if form.get("role"):
        body["role"] = str(form.get("role"))
    if form.get("active") in ("true", "false"):
        body["active"] = form.get("active") == "true"
    async with AdminApi(request) as api:
        res = await api.call("PATCH", f"/admin/users/{user_id}", json=body)
    if res.ok and isinstance(res.data, dict):
        changed = (
            f"role {res.data['role']}"
            if "role" in body
            else ("enabled" if res.data["active"] else "disabled")
        )
        notice = f"{res.data['username']}: {changed}."
        return await _users_page(request, user, template=FRAGMENT, notice=notice)
    return await _users_page(
        request,
        user,
        template=FRAGMENT,
        row_errors={user_id: res.message or "; ".join(res.field_errors.values())},
    )


# ---------------------------------------------------------------- knowledge


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
