"""The handover desk API (issue 13): ``/admin/handovers`` across the bots a user may see,
Take / Reply / Resolve through the running bot, the ``handoff`` settings.

The RBAC and abuse tests write handovers with the bot's own store code (as a running bot
would); the happy path runs a real orchestrator, a real whatsapp_bot subprocess and the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.channels.base import CustomerRef
from shared.store import handovers as ho
from shared.store.sqlite import BotStore
from tests.conftest import Actors
from tests.support.orchestrator_proc import OrchestratorProcess, free_port
from tests.support.wa import WaCustomer, body_text, bot_fields

BASE = "/admin/whatsapp/instances"
T0 = datetime.now(UTC) - timedelta(minutes=5)


def _bot(client: TestClient, headers: dict[str, str], name: str) -> str:
    res = client.post(BASE, json={"name": name}, headers=headers)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _db(client: TestClient, bot_id: str) -> Path:
    data_dir: Path = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    return data_dir / f"wa_sales_{bot_id}.db"


def _handover(path: Path, phone: str, *, take: str | None = None) -> int:
    """A customer who asked for a person (optionally taken), written as the bot writes it."""
    store = BotStore.open(path)
    try:
        user = store.resolve_user(CustomerRef(phone=phone, profile_name="Ana"), now=T0)
        store.add_message(
            direction="in",
            customer=phone,
            type_="text",
            text="I want to talk to a person",
            user_id=user.id,
            now=T0,
        )
        h, _ = ho.open_handover(
            store,
            user.id,
            reason="ask_for_person",
            question="I want to talk to a person",
            customer=phone,
            now=T0,
        )
        if take:
            ho.take(store, h.id, assignee=take, now=T0)
            ho.set_conversation(store, user.id, "closed", now=T0)  # (lifecycle is separate)
        return h.id
    finally:
        store.close()


@pytest.fixture
def desk(client: TestClient, actors: Actors) -> dict[str, Any]:
    alice_bot = _bot(client, actors.headers["alice"], "Alice Shop")
    bob_bot = _bot(client, actors.headers["bob"], "Bob Shop")
    return {
        "alice_bot": alice_bot,
        "bob_bot": bob_bot,
        "alice_h": _handover(_db(client, alice_bot), "+48600100200"),
        "bob_h": _handover(_db(client, bob_bot), "+48600100300", take="bob"),
    }


def test_list_is_scoped_per_user_and_filters_by_status(
    client: TestClient, actors: Actors, desk: dict[str, Any]
) -> None:
    def bots(user: str, **params: Any) -> list[tuple[str, str]]:
        res = client.get("/admin/handovers", headers=actors.headers[user], params=params)
        assert res.status_code == 200, res.text
        return sorted((h["bot_id"], h["status"]) for h in res.json())

    both = sorted([(desk["alice_bot"], "pending"), (desk["bob_bot"], "active")])
    assert bots("admin") == both
    assert bots("gary") == both  # a guest reads everything
    assert bots("alice") == [(desk["alice_bot"], "pending")]
    assert bots("bob") == [(desk["bob_bot"], "active")]
    assert bots("admin", status="pending") == [(desk["alice_bot"], "pending")]
    assert bots("admin", status="resolved") == []
    row = client.get("/admin/handovers", headers=actors.headers["alice"]).json()[0]
    assert row["question"] == "I want to talk to a person"
    assert row["customer_name"] == "Ana"
    assert row["customer_key"] == "+48600100200"
    assert row["bot_name"] == "Alice Shop"
    convo = client.get(
        f"{BASE}/{desk['alice_bot']}/conversations", headers=actors.headers["alice"]
    )
    assert convo.json()[0]["flags"] == ["unanswered", "with_person"]
    assert convo.json()[0]["conversation"] == "open"
    bobs = client.get(f"{BASE}/{desk['bob_bot']}/conversations", headers=actors.headers["bob"])
    assert bobs.json()[0]["conversation"] == "closed"
    counts = client.get("/admin/handovers/count", headers=actors.headers["admin"]).json()
    assert counts == {"pending": 1, "active": 1}
    assert client.get("/admin/handovers/count", headers=actors.headers["bob"]).json() == {
        "pending": 0,
        "active": 1,
    }
    one = client.get(f"{BASE}/{desk['alice_bot']}/handovers", headers=actors.headers["alice"])
    assert [h["id"] for h in one.json()] == [desk["alice_h"]]
    other = client.get(f"{BASE}/{desk['alice_bot']}/handovers", headers=actors.headers["bob"])
    assert other.status_code == 404


def test_abuse_bad_ids_wrong_owner_guest_stopped_bot_huge_bodies(
    client: TestClient, actors: Actors, desk: dict[str, Any]
) -> None:
    bot, hid = desk["alice_bot"], desk["alice_h"]
    url = f"{BASE}/{bot}/handovers/{hid}"
    alice = actors.headers["alice"]
    assert client.post(f"{url}/take").status_code == 401
    assert client.post(f"{url}/take", headers=actors.headers["gary"]).status_code == 403
    assert client.post(f"{url}/take", headers=actors.headers["bob"]).status_code == 404
    assert client.post(f"{BASE}/{bot}/handovers/abc/take", headers=alice).status_code == 422
    assert client.post(f"{BASE}/{bot}/handovers/0/take", headers=alice).status_code == 422
    assert client.post(f"{BASE}/{bot}/handovers/{2**60}/take", headers=alice).status_code == 422
    missing = client.post(f"{BASE}/{bot}/handovers/999/resolve", headers=alice)
    assert missing.status_code == 404
    assert "no handover" in missing.json()["detail"]
    assert client.post(f"{BASE}/nobot/handovers/1/take", headers=alice).status_code == 404
    stopped = client.post(f"{url}/take", headers=alice)
    assert stopped.status_code == 409
    assert "start it" in stopped.json()["detail"]
    huge = client.post(f"{url}/reply", headers=alice, json={"text": "x" * 5000})
    assert huge.status_code == 422
    extra = client.post(f"{url}/reply", headers=alice, json={"text": "hi", "to": "+1555"})
    assert extra.status_code == 422
    blank = client.post(f"{url}/reply", headers=alice, json={"text": "   "})
    assert blank.status_code == 422
    assert client.get("/admin/handovers", headers=alice, params={"status": "x"}).status_code == 422
    # Nothing changed hands.
    store = BotStore.open(_db(client, bot))
    try:
        assert ho.get(store, hid).status == "pending"  # type: ignore[union-attr]
    finally:
        store.close()


def test_handoff_settings_are_checked_and_kept(client: TestClient, actors: Actors) -> None:
    alice = actors.headers["alice"]
    bot = _bot(client, alice, "Hours Shop")
    good = {
        "enabled": True,
        "triggers": {"frustration": False},
        "ack_text": "A person will write to you here.",
        "pending_timeout_minutes": 45,
        "renotify_minutes": 15,
        "hours": {
            "timezone": "Europe/Berlin",
            "days": [0, 1, 2, 3, 4],
            "start": "09:00",
            "end": "18:00",
        },
    }
    res = client.put(f"{BASE}/{bot}", headers=alice, json={"handoff": good})
    assert res.status_code == 200, res.text
    stored = client.get(f"{BASE}/{bot}", headers=alice).json()["handoff"]
    # Only what was set is stored; the bot takes the defaults for the rest.
    assert stored["triggers"] == {"frustration": False}
    assert stored["hours"]["timezone"] == "Europe/Berlin"
    for bad in (
        {"triggers": {"telepathy": True}},
        {"hours": {"timezone": "Mars/Olympus"}},
        {"hours": {"start": "18:00", "end": "09:00"}},
        {"hours": {"days": [7]}},
        {"pending_timeout_minutes": 0},
        {"ack_text": "x" * 5000},
    ):
        res = client.put(f"{BASE}/{bot}", headers=alice, json={"handoff": bad})
        assert res.status_code == 422, bad


# ------------------------------------------------------------------ real bot, real sandbox


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrchestratorProcess, str]]:
    sandbox_port = free_port()
    orch = OrchestratorProcess(
        tmp_path_factory.mktemp("handover-api"),
        FLOTILLA_SANDBOX="true",
        FLOTILLA_SANDBOX_PORT=str(sandbox_port),
    ).start()
    yield orch, f"http://127.0.0.1:{sandbox_port}"
    orch.close()


def _wait_for(fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_take_reply_resolve_with_a_running_bot(live: tuple[OrchestratorProcess, str]) -> None:
    orch, sandbox_url = live
    bot = orch.create_bot(name="Desk Bot", **bot_fields(sandbox_url, fallback_text="BOT FALLBACK"))
    assert orch.api("POST", f"{BASE}/{bot['id']}/start").status_code == 200
    port = orch.wait_state("whatsapp", bot["id"], "running")["port"]
    customer = WaCustomer(f"http://127.0.0.1:{port}", sandbox_url, "+15550107001")

    assert [body_text(m) for m in customer.say("I want to talk to a person")] == [
        "A manager will answer you here shortly."
    ]
    handover = _wait_for(lambda: orch.api("GET", "/admin/handovers").json())[0]
    assert handover["status"] == "pending"
    assert handover["bot_id"] == bot["id"]
    assert orch.api("GET", "/admin/handovers/count").json()["pending"] == 1
    url = f"{BASE}/{bot['id']}/handovers/{handover['id']}"

    taken = orch.api("POST", f"{url}/take")
    assert taken.status_code == 200, taken.text
    assert taken.json()["status"] == "active"
    assert taken.json()["assignee"] == "admin"
    sent = orch.api("POST", f"{url}/reply", json={"text": "Hello, this is a person."})
    assert sent.status_code == 202, sent.text
    assert [body_text(m) for m in customer.replies()] == ["Hello, this is a person."]
    customer.post(customer.payload("zxqv thank you"))
    assert customer.silence() == []  # the bot does not answer while a person has it

    done = orch.api("POST", f"{url}/resolve")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved"
    assert orch.api("POST", f"{url}/resolve").status_code == 409
    # The bot answers again (the funnel's greeting; no second acknowledgement).
    again = [body_text(m) for m in customer.say("hi")]
    assert again
    assert "A manager will answer you here shortly." not in again
    assert orch.api("GET", "/admin/handovers").json() == []
    history = orch.api("GET", "/admin/handovers", params={"status": "resolved"}).json()
    assert [h["closed_by"] for h in history] == ["admin"]


@pytest.mark.slow
def test_an_operator_message_pauses_the_bot(live: tuple[OrchestratorProcess, str]) -> None:
    orch, sandbox_url = live
    bot = orch.create_bot(
        name="Operator Bot", **bot_fields(sandbox_url, fallback_text="BOT FALLBACK")
    )
    assert orch.api("POST", f"{BASE}/{bot['id']}/start").status_code == 200
    port = orch.wait_state("whatsapp", bot["id"], "running")["port"]
    customer = WaCustomer(f"http://127.0.0.1:{port}", sandbox_url, "+15550107002")
    assert customer.say("hi")  # the funnel greets
    res = orch.api(
        "POST",
        f"{BASE}/{bot['id']}/messages",
        json={"to": "+15550107002", "text": "Operator here."},
    )
    assert res.status_code == 202, res.text
    assert [body_text(m) for m in customer.replies()] == ["Operator here."]
    customer.post(customer.payload("zxqv and another"))
    assert customer.silence() == []
    rows = orch.api("GET", "/admin/handovers", params={"status": "active"}).json()
    assert [(h["reason"], h["assignee"]) for h in rows] == [("operator_message", "admin")]


CHANNELS = {
    "telegram": (
        {"bot_token": "123456:desk-telegram", "webhook_secret": "desk-secret"},
        "telegram_api_base_url",
        "/telegram",
        "521234600",
    ),
    "sms": (
        {"account_sid": "AC" + "0" * 32, "auth_token": "desk-auth", "from_number": "+15550009999"},
        "twilio_base_url",
        "/twilio",
        "+15550107003",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_the_desk_works_the_same_for_telegram_and_sms_customers(
    live: tuple[OrchestratorProcess, str], kind: str
) -> None:
    orch, sandbox_url = live
    fields, url_field, path, who = CHANNELS[kind]
    bot = orch.create_bot(
        kind, name=f"Desk {kind}", **fields, **{url_field: f"{sandbox_url}{path}"}
    )
    base = f"/admin/{kind}/instances/{bot['id']}"
    assert orch.api("POST", f"{base}/start").status_code == 200
    orch.wait_state(kind, bot["id"], "running", timeout=30)
    seq = 0

    def say(text: str) -> None:
        res = orch.api("POST", f"{base}/simulate", json={"from": who, "text": text})
        assert res.status_code == 202, res.text

    def replies(wait: float) -> list[str]:
        nonlocal seq
        res = orch.api(
            "GET", f"{base}/simulate/replies", params={"to": who, "since": seq, "wait": wait}
        )
        assert res.status_code == 200, res.text
        data = res.json()
        seq = data["last_seq"]
        return [m["text"] for m in data["messages"]]

    say("I want to talk to a person")
    assert replies(10) == ["A manager will answer you here shortly."]
    rows = _wait_for(
        lambda: [h for h in orch.api("GET", "/admin/handovers").json() if h["bot_id"] == bot["id"]]
    )
    url = f"{base}/handovers/{rows[0]['id']}"
    sent = orch.api("POST", f"{url}/reply", json={"text": f"A person on {kind}."})
    assert sent.status_code == 202, sent.text
    assert replies(10) == [f"A person on {kind}."]
    say("zxqv thanks")
    time.sleep(1.0)
    assert replies(0.5) == []  # the bot stays silent while the person has it
    assert orch.api("POST", f"{url}/resolve").status_code == 200
    say("hi")
    assert replies(10)  # the bot answers again
