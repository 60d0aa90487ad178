"""A bot's Follow-ups tab (reminders to customers who stop answering) and the follow-up panel
of a conversation, with its Stop button. A pure client of the API: the settings are the
instance's ``followups`` (``PUT /admin/{kind}/instances/{id}``), a customer's sequence is
``GET …/conversations/{customer}/followups`` and Stop is ``POST …/followups/stop``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi
from admin_ui.common import UserDep, channels_of, render

router = APIRouter(include_in_schema=False)

#: Touch rows the form shows (filled ones plus empty ones to add more).
MAX_TOUCHES = 10
BLANK_ROWS = 2
STOP_REASONS = {
    "answered": "the customer answered",
    "opted_out": "the customer asked for no more messages",
    "stopped_by_operator": "stopped by hand",
    "completed": "all reminders were sent",
    "disabled": "follow-ups were switched off",
    "window_closed": "WhatsApp's 24-hour window closed and no template is set",
}


def _base(kind: str, bot_id: str) -> str:
    return f"/admin/{quote(kind)}/instances/{quote(bot_id)}"


def _rows(touches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {"after_hours": _hours(t.get("after_hours")), "text": str(t.get("text") or "")}
        for t in touches
    ][:MAX_TOUCHES]
    blanks = min(BLANK_ROWS, MAX_TOUCHES - len(rows))
    return rows + [{"after_hours": "", "text": ""} for _ in range(blanks)]


def _hours(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value or "")


def followups_tab(bot: dict[str, Any]) -> dict[str, Any]:
    """What the Follow-ups tab shows: the bot's settings as the form's rows."""
    cfg = bot.get("followups") if isinstance(bot.get("followups"), dict) else {}
    assert isinstance(cfg, dict)  # noqa: S101 - narrowed above
    return {
        "fu": {
            "enabled": cfg.get("enabled") is True,
            "rows": _rows(list(cfg.get("touches") or [])),
            "quiet_start": str(cfg.get("quiet_start") or "21:00"),
            "quiet_end": str(cfg.get("quiet_end") or "09:00"),
            "timezone": str(cfg.get("timezone") or "UTC"),
        },
        "fu_errors": [],
        "fu_saved": False,
    }


def _parse(form: Any) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """The form as a ``followups`` body, problems the API would not name clearly, the rows."""
    hours = [str(v).strip() for v in form.getlist("after_hours")]
    texts = [str(v) for v in form.getlist("text")]
    problems: list[str] = []
    touches: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for number, (h, text) in enumerate(zip(hours, texts, strict=False), start=1):
        rows.append({"after_hours": h, "text": text})
        if not h and not text.strip():
            continue  # an empty row
        if not h:
            problems.append(f"Reminder {number}: say after how many hours to send it.")
            continue
        try:
            value = float(h)
        except ValueError:
            problems.append(f"Reminder {number}: “{h}” is not a number of hours.")
            continue
        if not text.strip():
            problems.append(f"Reminder {number}: write the message to send.")
            continue
        touches.append({"after_hours": value, "text": text.strip()})
    body = {
        "enabled": form.get("enabled") == "1",
        "touches": touches,
        "quiet_start": str(form.get("quiet_start") or "").strip(),
        "quiet_end": str(form.get("quiet_end") or "").strip(),
        "timezone": str(form.get("timezone") or "").strip(),
    }
    return body, problems, rows


def _plain(errors: dict[str, str], message: str) -> list[str]:
    """The API's complaint about ``followups`` in words an owner reads."""
    text = errors.get("followups") or message or "The settings could not be saved."
    text = (
        text.replace("touches → ", "reminder ")
        .replace("after_hours", "hours")
        .replace("quiet_start", "quiet from")
        .replace("quiet_end", "quiet until")
    )
    return [text]


@router.post("/ui/bots/{kind}/{bot_id}/followups", response_class=HTMLResponse)
async def save_followups(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """Save the Follow-ups tab; the form comes back with what went wrong or "Saved"."""
    if channels_of(request).get(kind) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such kind of bot")
    form = await request.form()
    body, problems, rows = _parse(form)
    bot = {"kind": kind, "id": bot_id}
    ctx: dict[str, Any] = {
        "fu": {
            **body,
            "rows": rows
            + [{"after_hours": "", "text": ""}] * (1 if len(rows) < MAX_TOUCHES else 0),
        },
        "fu_errors": problems,
        "fu_saved": False,
    }
    if not problems:
        async with AdminApi(request) as api:
            res = await api.call("PUT", _base(kind, bot_id), json={"followups": body})
        if res.ok and isinstance(res.data, dict):
            bot = res.data
            ctx = followups_tab(bot)
            ctx["fu_saved"] = True
        else:
            ctx["fu_errors"] = _plain(res.field_errors, res.message)
    return render(request, "_tab_followups.html", user=user, bot=bot, **ctx)


async def _panel(api: AdminApi, kind: str, bot_id: str, customer: str) -> dict[str, Any]:
    res = await api.get(
        f"{_base(kind, bot_id)}/conversations/{quote(customer, safe='')}/followups"
    )
    return res.data if res.ok and isinstance(res.data, dict) else {}


@router.get("/ui/bots/{kind}/{bot_id}/followups/panel", response_class=HTMLResponse)
async def followup_panel(
    request: Request, user: UserDep, kind: str, bot_id: str, customer: str
) -> HTMLResponse:
    """A conversation's follow-up state (shown above its messages)."""
    async with AdminApi(request) as api:
        data = await _panel(api, kind, bot_id, customer)
    return render(
        request,
        "_followup_panel.html",
        user=user,
        bot={"kind": kind, "id": bot_id},
        customer=customer,
        fu=data,
        reasons=STOP_REASONS,
        fu_error="",
    )


@router.post("/ui/bots/{kind}/{bot_id}/followups/stop", response_class=HTMLResponse)
async def stop_followup(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """The Stop button: end the customer's active sequence, show the panel again."""
    form = await request.form()
    customer = str(form.get("customer") or "").strip()
    async with AdminApi(request) as api:
        res = await api.post(
            f"{_base(kind, bot_id)}/conversations/{quote(customer, safe='')}/followups/stop"
        )
        data = await _panel(api, kind, bot_id, customer)
    return render(
        request,
        "_followup_panel.html",
        user=user,
        bot={"kind": kind, "id": bot_id},
        customer=customer,
        fu=data,
        reasons=STOP_REASONS,
        fu_error="" if res.ok else res.message,
    )
