"""What every admin UI page shares: the templates and their filters, the signed-in user, the
channels the API declares, and :func:`render`.

The UI holds no per-channel knowledge: the kinds of bot, their labels, settings fields, sandbox
values and how the test chat shows a reply all come from ``GET /admin/channels`` (the channel
registry), fetched with the user's token along with ``GET /auth/me``.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from admin_ui.api_client import AdminApi
from admin_ui.channels import Channels
from admin_ui.forms import TABS
from orchestrator.api.csrf import session_csrf_token
from orchestrator.api.deps import SESSION_COOKIE

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

STATE_CLASS = {
    "running": "green",
    "stopped": "grey",
    "crashed": "red",
    "starting": "amber",
    "backoff": "amber",
    "stopping": "amber",
}


# ---------------------------------------------------------------- template helpers


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        then = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return then.replace(tzinfo=UTC) if then.tzinfo is None else then


def ago(value: str | None) -> str:
    """``"3 min ago"`` for an ISO time."""
    if not value:
        return ""
    then = _when(value)
    if then is None:
        return str(value)
    seconds = (datetime.now(UTC) - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return then.strftime("%Y-%m-%d")


def clock(value: str | None) -> str:
    """``"14:05"`` (UTC) for an ISO time, with the date when it is not today."""
    if not value:
        return ""
    then = _when(value)
    if then is None:
        return str(value)
    then = then.astimezone(UTC)
    if then.date() == datetime.now(UTC).date():
        return then.strftime("%H:%M")
    return then.strftime("%d %b %H:%M")


def duration(seconds: float | None) -> str:
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


#: Log fields whose values are secrets (masked in the Logs view, raw JSON included).
_SECRET_KEY_RE = re.compile(
    r"token(?!s)|secret|password|passwd|authorization|api_?key|cookie", re.I
)
#: Secret-looking text inside a message (``Bearer abc…``, ``access_token=…``).
_SECRET_TEXT_RE = re.compile(
    r"(?i)(bearer\s+|(?:token|secret|password|api_?key)[\"']?\s*[=:]\s*[\"']?)[^\s\"',&]+"
)
#: Fields shown beside the message (the rest is in the raw JSON, one click away).
_KEY_FIELDS = ("request_id", "customer", "to", "from", "status", "error", "exc")


def _mask(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEY_RE.search(key) and value not in (None, "", False):
        return "****"
    if isinstance(value, dict):
        return {k: _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        return _SECRET_TEXT_RE.sub(lambda m: m.group(1) + "****", value)
    return value


def log_line(line: str) -> dict[str, Any]:
    """A log line for the Logs view: time, level, message, a few key fields and the whole
    entry as indented JSON (secret fields masked everywhere); plain text as is (masked)."""
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {"ts": "", "level": "", "msg": _mask(line), "extra": "", "fields": [], "raw": ""}
    data = _mask(data)
    raw = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    ts = str(data.pop("ts", data.pop("time", "")))
    level = str(data.pop("level", data.pop("levelname", "")))
    msg = str(data.pop("msg", data.pop("message", "")))
    data.pop("bot_id", None)
    shown = [k for k in _KEY_FIELDS if data.get(k) not in (None, "")]
    shown += [k for k in data if k not in (*shown, *_KEY_FIELDS, "logger")]
    fields = [(k, _short(data[k])) for k in shown[:6] if data.get(k) not in (None, "")]
    extra = " ".join(f"{k}={v}" for k, v in data.items() if v not in (None, ""))
    return {
        "ts": ts[11:23] if len(ts) > 19 else ts,
        "date": ts[:10] if len(ts) > 19 else "",
        "level": level,
        "msg": msg,
        "extra": extra,
        "fields": fields,
        "raw": raw,
    }


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.splitlines()[0] if text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


_BOLD_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC_RE = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE_RE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")


def chat_format(text: str | None) -> Markup:
    """``*bold*``, ``_italic_``, ``~strike~`` on escaped text."""
    out = str(escape(text or ""))
    out = _BOLD_RE.sub(r"<b>\1</b>", out)
    out = _ITALIC_RE.sub(r"<i>\1</i>", out)
    out = _STRIKE_RE.sub(r"<s>\1</s>", out)
    return Markup(out)  # noqa: S704 - built from escaped text


templates.env.filters["chatfmt"] = chat_format
templates.env.filters["ago"] = ago
templates.env.filters["clock"] = clock
templates.env.filters["duration"] = duration
templates.env.filters["urlq"] = lambda v: quote(str(v), safe="")
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


def is_htmx(request: Request) -> bool:
    """Whether htmx sent the request (it then wants a fragment, or ``HX-Redirect``)."""
    return request.headers.get("hx-request") == "true"


async def current_ui_user(request: Request) -> UiUser:
    """The user behind the session cookie; signed out → to ``/login`` (htmx: ``HX-Redirect``).

    The channels the API declares are read in the same go and kept on ``request.state`` for
    :func:`channels_of` and :func:`render`."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with AdminApi(request) as api:
            me, channels = await asyncio.gather(api.get("/auth/me"), api.get("/admin/channels"))
        if me.ok and isinstance(me.data, dict):
            request.state.channels = Channels.from_api(channels.data if channels.ok else None)
            return UiUser(
                id=int(me.data["id"]), username=me.data["username"], role=me.data["role"]
            )
    # A session that ended elsewhere (a password change, sign-out on another device) leaves
    # its cookie behind: forget it, so the sign-in form starts clean.
    headers = {"Set-Cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=strict"}
    if not token:
        headers = {}
    if is_htmx(request):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, headers={"HX-Redirect": "/login", **headers}
        )
    raise HTTPException(status.HTTP_303_SEE_OTHER, headers={"Location": "/login", **headers})


UserDep = Annotated[UiUser, Depends(current_ui_user)]


def channels_of(request: Request) -> Channels:
    """The channels read by :func:`current_ui_user` (none before sign-in)."""
    found = getattr(request.state, "channels", None)
    return found if isinstance(found, Channels) else Channels.from_api(None)


def render(request: Request, template: str, /, **context: Any) -> HTMLResponse:
    """Render a template with the request, the session's CSRF token and the channels
    (``CHANNELS``: the list, ``KIND_LABELS``: kind → label) in its context."""
    context.setdefault(
        "csrf_token", session_csrf_token(request.app.state.settings, dict(request.cookies))
    )
    channels = channels_of(request)
    context.setdefault("CHANNELS", channels.all)
    context.setdefault("KIND_LABELS", channels.labels)
    return templates.TemplateResponse(request, template, context)


async def fleet(api: AdminApi) -> list[dict[str, Any]]:
    """``GET /admin/fleet``: every bot the user may see with its live state."""
    res = await api.get("/admin/fleet")
    return list(res.data) if res.ok and isinstance(res.data, list) else []
