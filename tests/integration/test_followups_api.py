"""Follow-up settings in the instance config and a customer's sequence in the conversations API
(read from the bot's own SQLite, written here with the bot's store code as a running bot
would), with RBAC and abuse cases. Stopping by hand against a running bot is covered by
tests/integration/test_followups_e2e.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from shared.botkit.followups import DEFAULT_TOUCHES
from shared.channels.base import CustomerRef
from shared.store.sqlite import BotStore
from tests.conftest import Actors

BASE = "/admin/whatsapp/instances"
PHONE = "+48600100200"


def _bot(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    res = client.post(BASE, json=body, headers=headers)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _db(client: TestClient, bot_id: str) -> Path:
    data_dir: Path = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    return data_dir / f"wa_sales_{bot_id}.db"


def _write_sequence(path: Path) -> None:
    """Ana: a stopped sequence (answered after 2 touches) and an active one; Ben: opted out."""
    store = BotStore.open(path)
    try:
        t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        ana = store.resolve_user(CustomerRef(phone=PHONE, profile_name="Ana"), now=t0)
        store.add_message(
            direction="in", customer=PHONE, type_="text", text="hi", user_id=ana.id, now=t0
        )
        first = store.followup_start(ana.id, total=5, next_due_at=t0 + timedelta(hours=24), now=t0)
        store.followup_touched(first, 1, next_due_at=t0 + timedelta(hours=72), now=t0)
        store.followup_touched(first, 2, next_due_at=t0 + timedelta(hours=168), now=t0)
        store.followup_stop(first, "answered", now=t0 + timedelta(hours=80))
        store.followup_start(
            ana.id, total=5, next_due_at=t0 + timedelta(hours=104), now=t0 + timedelta(hours=80)
        )
        ben = store.resolve_user(CustomerRef(phone="+15550001111"), now=t0)
        store.add_message(
            direction="in",
            customer="+15550001111",
            type_="text",
            text="STOP",
            user_id=ben.id,
            now=t0,
        )
        store.opt_out(ben.id, "keyword", text="STOP", now=t0)
    finally:
        store.close()


def test_followups_default_off_with_five_touches(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["alice"], wa_payload())
    got = client.get(f"{BASE}/{bot}", headers=actors.headers["alice"]).json()["followups"]
    assert got["enabled"] is False
    assert [t["after_hours"] for t in got["touches"]] == [24, 72, 168, 336, 720]
    assert got["touches"] == DEFAULT_TOUCHES
    assert (got["quiet_start"], got["quiet_end"]) == ("21:00", "09:00")


def test_followups_settings_saved_and_partial_update_keeps_touches(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    h = actors.headers["alice"]
    bot = _bot(client, h, wa_payload())
    touches = [{"after_hours": 2, "text": "Still there?"}, {"after_hours": 48, "text": "Bye"}]
    res = client.put(
        f"{BASE}/{bot}",
        headers=h,
        json={
            "followups": {
                "enabled": True,
                "touches": touches,
                "timezone": "Asia/Almaty",
                "quiet_start": "22:00",
            }
        },
    )
    assert res.status_code == 200, res.text
    res = client.put(f"{BASE}/{bot}", headers=h, json={"followups": {"enabled": False}})
    assert res.status_code == 200, res.text
    got = client.get(f"{BASE}/{bot}", headers=h).json()["followups"]
    assert got["enabled"] is False
    assert got["touches"] == touches
    assert (got["timezone"], got["quiet_start"], got["quiet_end"]) == (
        "Asia/Almaty",
        "22:00",
        "09:00",
    )


def test_bad_followups_settings_are_clear_422s(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    h = actors.headers["alice"]
    bot = _bot(client, h, wa_payload())
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"touches": [{"after_hours": 72, "text": "a"}, {"after_hours": 24, "text": "b"}]},
            "later than the one before",
        ),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"quiet_start": "25:00"}, "pattern"),
        ({"touches": []}, "at least 1"),
        ({"touches": [{"after_hours": h + 1, "text": "x"} for h in range(11)]}, "at most 10"),
        ({"touches": [{"after_hours": 1, "text": "x" * 1001}]}, "at most 1000"),
        ({"touches": [{"after_hours": 0, "text": "x"}]}, "greater than 0"),
        ({"touches": [{"after_hours": 1, "text": "   "}]}, "needs a text"),
        ({"enabled": True, "surprise": 1}, "Extra inputs"),
    ]
    for body, words in cases:
        res = client.put(f"{BASE}/{bot}", headers=h, json={"followups": body})
        assert res.status_code == 422, (body, res.text)
        assert words in res.text, (body, res.text)
        assert res.json()["detail"][0]["loc"][:2] == ["body", "followups"]


def test_a_customers_sequence_and_opt_out_are_readable(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["alice"], wa_payload())
    _write_sequence(_db(client, bot))
    url = f"{BASE}/{bot}/conversations/{PHONE}/followups"
    res = client.get(url, headers=actors.headers["alice"])
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["customer_key"] == PHONE
    assert body["opted_out"] is None
    stopped, active = body["sequences"]
    assert stopped["status"] == "stopped"
    assert stopped["stop_reason"] == "answered"
    assert stopped["touches_sent"] == 2
    assert body["sequence"] == active
    assert active["active"] is True
    assert active["next_due_at"] == "2026-03-06T18:00:00.000000Z"
    ben = client.get(
        f"{BASE}/{bot}/conversations/+15550001111/followups", headers=actors.headers["gary"]
    ).json()  # a guest reads
    assert ben["sequence"] is None
    assert ben["opted_out"]["reason"] == "keyword"


def test_followups_rbac_and_abuse(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["alice"], wa_payload())
    url = f"{BASE}/{bot}/conversations/{PHONE}/followups"
    # the bot never ran: no file, no customer
    assert client.get(url, headers=actors.headers["alice"]).status_code == 404
    _write_sequence(_db(client, bot))
    assert client.get(url, headers=actors.headers["bob"]).status_code == 404  # not his bot
    assert client.get(url).status_code == 401
    assert (
        client.get(
            f"{BASE}/no-such-bot/conversations/{PHONE}/followups", headers=actors.headers["admin"]
        ).status_code
        == 404
    )
    unknown = f"{BASE}/{bot}/conversations/+19999999999/followups"
    assert client.get(unknown, headers=actors.headers["alice"]).status_code == 404
    huge = f"{BASE}/{bot}/conversations/{'1' * 129}/followups"
    assert client.get(huge, headers=actors.headers["alice"]).status_code == 422
    quote = f"{BASE}/{bot}/conversations/%27%20OR%201%3D1--/followups"
    assert client.get(quote, headers=actors.headers["alice"]).status_code == 404

    stop = f"{url}/stop"
    assert client.post(stop, headers=actors.headers["gary"]).status_code == 403  # guest
    assert client.post(stop, headers=actors.headers["bob"]).status_code == 404
    assert client.post(stop).status_code == 401
    assert client.post(f"{unknown}/stop", headers=actors.headers["alice"]).status_code == 404
    res = client.post(stop, headers=actors.headers["alice"])  # the bot is not running
    assert res.status_code == 409
    assert "start it" in res.json()["detail"]
    # nothing changed in the file
    assert client.get(url, headers=actors.headers["alice"]).json()["sequence"]["active"]


def test_whatsapp_template_parameters_are_a_setting(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    h = actors.headers["alice"]
    bot = _bot(client, h, wa_payload())
    assert client.get(f"{BASE}/{bot}", headers=h).json()["wa_template_params"] == ""
    res = client.put(f"{BASE}/{bot}", headers=h, json={"wa_template_params": "Hi {name}\n{text}"})
    assert res.status_code == 200, res.text
    assert client.get(f"{BASE}/{bot}", headers=h).json()["wa_template_params"] == (
        "Hi {name}\n{text}"
    )
    res = client.put(f"{BASE}/{bot}", headers=h, json={"wa_template_params": "x" * 2001})
    assert res.status_code == 422, res.text
    # an SMS bot has no such setting
    sms = client.post("/admin/sms/instances", headers=h, json={"name": "Texts"})
    assert sms.status_code == 201, sms.text
    res = client.put(
        f"/admin/sms/instances/{sms.json()['id']}", headers=h, json={"wa_template_params": "x"}
    )
    assert res.status_code == 422, res.text
