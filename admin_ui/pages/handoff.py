"""A bot's Handoff tab: when a person takes over from the bot and what the customer is told
(the instance's ``handoff`` settings, ``PUT /admin/{kind}/instances/{id}``; docs/handoff.md).
The handovers themselves are on the Desk (``pages/desk.py``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from admin_ui.api_client import AdminApi
from admin_ui.common import UserDep, channels_of, render

router = APIRouter(include_in_schema=False)

#: The triggers with what the owner reads next to each checkbox.
TRIGGERS = (
    (
        "ask_for_person",
        "The customer asks for a person (“I want to talk to a person”, “позовите оператора”)",
    ),
    (
        "frustration",
        "The customer is frustrated (the same question three times, “not helpful” twice)",
    ),
    ("llm_escalate", "The AI cannot answer from the knowledge base"),
    ("manager_button", "The customer presses the funnel's “talk to a manager” button"),
    ("operator_message", "Someone writes to the customer from the Conversations tab"),
    ("message_echoes", "The business answers from the WhatsApp Business app on its phone"),
)
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DEFAULTS = {
    "ack_text": "A manager will answer you here shortly.",
    "renotify_minutes": 10,
    "pending_timeout_minutes": 30,
    "idle_close_minutes": 1440,
}


def _base(kind: str, bot_id: str) -> str:
    return f"/admin/{quote(kind)}/instances/{quote(bot_id)}"


def _number(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value or "")


def handoff_tab(bot: dict[str, Any]) -> dict[str, Any]:
    """What the Handoff tab shows: the bot's settings with the defaults filled in."""
    cfg = bot.get("handoff") if isinstance(bot.get("handoff"), dict) else {}
    assert isinstance(cfg, dict)  # noqa: S101 - narrowed above
    triggers = cfg.get("triggers") if isinstance(cfg.get("triggers"), dict) else {}
    assert isinstance(triggers, dict)  # noqa: S101 - narrowed above
    hours = cfg.get("hours") if isinstance(cfg.get("hours"), dict) else None
    return {
        "ho": {
            "enabled": cfg.get("enabled") is not False,
            "triggers": {name: triggers.get(name) is not False for name, _ in TRIGGERS},
            "ack_text": str(cfg.get("ack_text") or ""),
            "expired_text": str(cfg.get("expired_text") or ""),
            "renotify_minutes": _number(cfg.get("renotify_minutes", DEFAULTS["renotify_minutes"])),
            "pending_timeout_minutes": _number(
                cfg.get("pending_timeout_minutes", DEFAULTS["pending_timeout_minutes"])
            ),
            "idle_close_minutes": _number(
                cfg.get("idle_close_minutes", DEFAULTS["idle_close_minutes"])
            ),
            "auto_accept_answers": cfg.get("auto_accept_answers") is True,
            "hours_on": hours is not None,
            "timezone": str((hours or {}).get("timezone") or "UTC"),
            "start": str((hours or {}).get("start") or "09:00"),
            "end": str((hours or {}).get("end") or "18:00"),
            "days": list((hours or {}).get("days") or [0, 1, 2, 3, 4]),
        },
        "ho_errors": [],
        "ho_saved": False,
        "ho_triggers": TRIGGERS,
        "ho_days": DAYS,
        "ho_defaults": DEFAULTS,
    }


def _parse(form: Any) -> tuple[dict[str, Any], list[str]]:
    """The form as a ``handoff`` body and the problems the API would not name clearly."""
    problems: list[str] = []

    def minutes(name: str, label: str, *, zero_ok: bool = False) -> float | None:
        raw = str(form.get(name) or "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{label}: “{raw}” is not a number of minutes.")
            return None
        if value < 0 or (value == 0 and not zero_ok):
            problems.append(f"{label}: must be more than 0 minutes.")
            return None
        return value

    body: dict[str, Any] = {
        "enabled": form.get("enabled") == "1",
        "triggers": {name: form.get(f"t_{name}") == "1" for name, _ in TRIGGERS},
        "ack_text": str(form.get("ack_text") or "").strip() or None,
        "expired_text": str(form.get("expired_text") or "").strip() or None,
        "auto_accept_answers": form.get("auto_accept_answers") == "1",
    }
    for name, label, zero_ok in (
        ("renotify_minutes", "Remind after", False),
        ("pending_timeout_minutes", "Give back to the bot after", False),
        ("idle_close_minutes", "Close idle conversations after", True),
    ):
        value = minutes(name, label, zero_ok=zero_ok)
        if value is not None:
            body[name] = value
    if form.get("hours_on") == "1":
        days = [int(d) for d in form.getlist("days") if str(d).isdigit() and int(d) < len(DAYS)]
        if not days:
            problems.append("Working hours: tick at least one day.")
        body["hours"] = {
            "timezone": str(form.get("timezone") or "").strip() or "UTC",
            "start": str(form.get("start") or "").strip(),
            "end": str(form.get("end") or "").strip(),
            "days": days,
        }
    else:
        body["hours"] = None
    return body, problems


def _plain(errors: dict[str, str], message: str) -> list[str]:
    """The API's complaint about ``handoff`` in words an owner reads."""
    text = errors.get("handoff") or message or "The settings could not be saved."
    return [
        text.replace("pending_timeout_minutes", "give back after")
        .replace("renotify_minutes", "remind after")
        .replace("idle_close_minutes", "close idle after")
        .replace("hours → ", "working hours: ")
    ]


@router.post("/ui/bots/{kind}/{bot_id}/handoff", response_class=HTMLResponse)
async def save_handoff(request: Request, user: UserDep, kind: str, bot_id: str) -> HTMLResponse:
    """Save the Handoff tab; the form comes back with what went wrong or "Saved"."""
    if channels_of(request).get(kind) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such kind of bot")
    form = await request.form()
    body, problems = _parse(form)
    bot: dict[str, Any] = {"kind": kind, "id": bot_id, "handoff": body}
    ctx = handoff_tab(bot)
    ctx["ho_errors"] = problems
    if not problems:
        async with AdminApi(request) as api:
            res = await api.call("PUT", _base(kind, bot_id), json={"handoff": body})
        if res.ok and isinstance(res.data, dict):
            bot = res.data
            ctx = handoff_tab(bot)
            ctx["ho_saved"] = True
        else:
            ctx["ho_errors"] = _plain(res.field_errors, res.message)
    return render(request, "_tab_handoff.html", user=user, bot=bot, **ctx)
