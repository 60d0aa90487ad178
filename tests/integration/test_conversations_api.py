"""Conversation API: history from the bot's own SQLite (read-only), operator sends, test chat.

The bot's database is written here with the bot's own store code, as a running bot would; the
test chat replies are real Graph API calls recorded by a real sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from shared.channels.base import CustomerRef
from shared.sandbox import SandboxThread
from shared.store.sqlite import BotStore
from tests.conftest import Actors

BASE = "/admin/whatsapp/instances"


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    """The sandbox providers on a free port."""
    with SandboxThread() as sb:
        yield sb


def _bot(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    res = client.post(BASE, json=body, headers=headers)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _db(client: TestClient, bot_id: str) -> Path:
    data_dir: Path = client.app.state.settings.data_dir  # type: ignore[attr-defined]
    return data_dir / f"wa_sales_{bot_id}.db"


def _write_history(path: Path) -> None:
    """Two customers as the bot records them, today: Ana (3, last out), Ben (1 in, newer)."""
    store = BotStore.open(path)
    try:
        t0 = datetime.now(UTC) - timedelta(seconds=30)
        ana = store.resolve_user(CustomerRef(phone="+48600100200", profile_name="Ana"), now=t0)
        store.add_message(
            direction="in",
            customer="+48600100200",
            type_="text",
            text="hi",
            user_id=ana.id,
            now=t0,
        )
        store.add_message(
            direction="out",
            customer="+48600100200",
            type_="buttons",
            text="Hello! What would you like to do?",
            user_id=ana.id,
            provider_message_id="wamid.A1",
            status="sent",
            now=t0 + timedelta(seconds=1),
        )
        store.update_message_status("wamid.A1", "read", now=t0 + timedelta(seconds=5))
        store.add_message(
            direction="out",
            customer="+48600100200",
            type_="text",
            text="Are you there?",
            user_id=ana.id,
            provider_message_id="wamid.A2",
            status="failed",
            error="recipient not on WhatsApp",
            now=t0 + timedelta(seconds=9),
        )
        ben = store.resolve_user(CustomerRef(bsuid="US.1234567890abcdef"), now=t0)
        store.add_message(
            direction="in",
            customer="US.1234567890abcdef",
            type_="text",
            text="price?",
            user_id=ben.id,
            now=t0 + timedelta(seconds=20),
        )
    finally:
        store.close()


def test_history_of_a_bot_that_never_ran_is_empty_not_an_error(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["admin"], wa_payload())
    assert not _db(client, bot).exists()
    res = client.get(f"{BASE}/{bot}/conversations", headers=actors.headers["admin"])
    assert res.status_code == 200
    assert res.json() == []
    res = client.get(f"{BASE}/{bot}/conversations/%2B48600100200", headers=actors.headers["admin"])
    assert res.status_code == 200
    assert res.json()["messages"] == []
    stats = client.get("/admin/conversations/stats", headers=actors.headers["admin"]).json()
    assert stats == [
        {"id": bot, "kind": "whatsapp", "messages_today": 0, "in_today": 0, "out_today": 0}
    ]


def test_customers_newest_first_with_their_last_message(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["admin"], wa_payload())
    _write_history(_db(client, bot))
    res = client.get(f"{BASE}/{bot}/conversations", headers=actors.headers["admin"])
    assert res.status_code == 200
    customers = res.json()
    assert [c["customer_key"] for c in customers] == ["US.1234567890abcdef", "+48600100200"]
    ben, ana = customers
    assert ben["last_text"] == "price?"
    assert ben["last_direction"] == "in"
    assert ben["count"] == 1
    assert ana["name"] == "Ana"
    assert ana["count"] == 3
    assert ana["last_text"] == "Are you there?"
    assert ana["last_direction"] == "out"
    assert ana["last_status"] == "failed"
    assert ana["last_at"] < ben["last_at"]


def test_a_conversation_shows_bubbles_in_order_with_delivery_status(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["admin"], wa_payload())
    _write_history(_db(client, bot))
    res = client.get(f"{BASE}/{bot}/conversations/%2B48600100200", headers=actors.headers["admin"])
    assert res.status_code == 200
    body = res.json()
    assert body["customer"]["name"] == "Ana"
    assert body["customer"]["phone"] == "+48600100200"
    msgs = body["messages"]
    assert [(m["direction"], m["text"]) for m in msgs] == [
        ("in", "hi"),
        ("out", "Hello! What would you like to do?"),
        ("out", "Are you there?"),
    ]
    assert [m["status"] for m in msgs] == [None, "read", "failed"]
    assert msgs[1]["type"] == "buttons"
    assert msgs[2]["error"] == "recipient not on WhatsApp"
    assert all(m["created_at"] for m in msgs)
    # Messages today count both directions.
    stats = client.get("/admin/conversations/stats", headers=actors.headers["admin"]).json()
    assert stats[0]["messages_today"] == 4
    assert (stats[0]["in_today"], stats[0]["out_today"]) == (2, 2)


def test_history_is_read_only_and_leaves_the_file_untouched(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["admin"], wa_payload())
    path = _db(client, bot)
    _write_history(path)
    before = path.read_bytes()
    for _ in range(3):
        assert client.get(f"{BASE}/{bot}/conversations", headers=actors.headers["admin"]).json()
    assert path.read_bytes() == before


def test_rbac_owner_reads_others_get_404_guest_reads_but_cannot_write(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["alice"], wa_payload(name="Alice Shop"))
    _write_history(_db(client, bot))
    url = f"{BASE}/{bot}/conversations"
    assert len(client.get(url, headers=actors.headers["alice"]).json()) == 2
    assert len(client.get(url, headers=actors.headers["gary"]).json()) == 2
    assert client.get(url, headers=actors.headers["bob"]).status_code == 404
    assert client.get(f"{url}/%2B48600100200", headers=actors.headers["bob"]).status_code == 404
    assert client.get(url).status_code == 401
    send = {"to": "+48600100200", "text": "hello from a person"}
    sim = {"from": "+15550001111", "text": "hi"}
    for who, code in (("gary", 403), ("bob", 404)):
        h = actors.headers[who]
        assert client.post(f"{BASE}/{bot}/messages", json=send, headers=h).status_code == code
        assert client.post(f"{BASE}/{bot}/simulate", json=sim, headers=h).status_code == code
    stats = client.get("/admin/conversations/stats", headers=actors.headers["bob"]).json()
    assert stats == []


def test_sending_to_a_stopped_bot_is_a_clear_409(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["alice"], wa_payload())
    res = client.post(
        f"{BASE}/{bot}/messages",
        json={"to": "+48600100200", "text": "hello"},
        headers=actors.headers["alice"],
    )
    assert res.status_code == 409
    assert "stopped" in res.json()["detail"]
    assert "start it" in res.json()["detail"]
    res = client.post(
        f"{BASE}/{bot}/simulate", json={"from": "+15550001111", "text": "hi"},
        headers=actors.headers["alice"],
    )  # fmt: skip
    assert res.status_code == 409


def test_empty_messages_are_refused_at_the_field(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["admin"], wa_payload())
    h = actors.headers["admin"]
    res = client.post(f"{BASE}/{bot}/messages", json={"to": "+4860", "text": "   "}, headers=h)
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "text"]
    res = client.post(f"{BASE}/{bot}/simulate", json={"from": "+15550001111"}, headers=h)
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "text"]
    res = client.post(f"{BASE}/{bot}/simulate", json={"text": "hi"}, headers=h)
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "from"]


def test_test_chat_needs_a_bot_pointed_at_the_sandbox(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["admin"], wa_payload())  # real graph.facebook.com
    res = client.get(
        f"{BASE}/{bot}/simulate/replies", params={"to": "+15550001111"},
        headers=actors.headers["admin"],
    )  # fmt: skip
    assert res.status_code == 409
    assert "graph_api_base_url" in res.json()["detail"]


def _graph_send(sandbox: SandboxThread, body: dict[str, Any]) -> None:
    res = httpx.post(
        f"{sandbox.url}/graph/v21.0/1234567890/messages",
        json={"messaging_product": "whatsapp", "recipient_type": "individual", **body},
        headers={"Authorization": "Bearer sandbox-token"},
    )
    assert res.status_code == 200, res.text


def test_test_chat_replies_render_buttons_and_list_rows(
    client: TestClient,
    actors: Actors,
    wa_payload: Callable[..., dict[str, Any]],
    sandbox: SandboxThread,
) -> None:
    bot = _bot(
        client, actors.headers["admin"], wa_payload(graph_api_base_url=f"{sandbox.url}/graph")
    )
    buttons = {
        "type": "button",
        "body": {"text": "What would you like to do?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "sales:quiz", "title": "Find my solution"}},
                {"type": "reply", "reply": {"id": "faq:menu", "title": "FAQ"}},
            ]
        },
    }
    rows = {
        "type": "list",
        "body": {"text": "Pick a topic"},
        "action": {
            "button": "Topics",
            "sections": [
                {
                    "title": "Product",
                    "rows": [{"id": "faq:p1", "title": "What is it?", "description": "in short"}],
                }
            ],
        },
    }
    _graph_send(sandbox, {"to": "15550001111", "type": "text", "text": {"body": "Hello!"}})
    _graph_send(sandbox, {"to": "15550001111", "type": "interactive", "interactive": buttons})
    _graph_send(sandbox, {"to": "19990000000", "type": "text", "text": {"body": "not yours"}})
    _graph_send(sandbox, {"to": "15550001111", "type": "interactive", "interactive": rows})

    url = f"{BASE}/{bot}/simulate/replies"
    res = client.get(url, params={"to": "+1 555 000 1111"}, headers=actors.headers["gary"])
    assert res.status_code == 200, res.text
    body = res.json()
    msgs = body["messages"]
    assert [m["text"] for m in msgs] == ["Hello!", "What would you like to do?", "Pick a topic"]
    assert msgs[0]["buttons"] == []
    assert msgs[1]["buttons"] == [
        {"id": "sales:quiz", "title": "Find my solution"},
        {"id": "faq:menu", "title": "FAQ"},
    ]
    assert msgs[2]["list"]["button"] == "Topics"
    assert msgs[2]["list"]["sections"][0]["rows"] == [
        {"id": "faq:p1", "title": "What is it?", "description": "in short"}
    ]
    assert body["last_seq"] == msgs[-1]["seq"]

    # Only what came after ``since``.
    later = client.get(
        url, params={"to": "+15550001111", "since": msgs[1]["seq"]},
        headers=actors.headers["gary"],
    ).json()  # fmt: skip
    assert [m["text"] for m in later["messages"]] == ["Pick a topic"]
    # Nothing new: the same ``last_seq`` comes back.
    idle = client.get(
        url, params={"to": "+15550001111", "since": body["last_seq"]},
        headers=actors.headers["gary"],
    ).json()  # fmt: skip
    assert idle["messages"] == []
    assert idle["last_seq"] == body["last_seq"]


def test_conversation_routes_are_in_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/admin/{kind}/instances/{instance_id}/conversations",
        "/admin/{kind}/instances/{instance_id}/conversations/{customer_key}",
        "/admin/{kind}/instances/{instance_id}/messages",
        "/admin/{kind}/instances/{instance_id}/simulate",
        "/admin/{kind}/instances/{instance_id}/simulate/replies",
    ):
        assert path in paths, path
    assert not any(p.startswith("/ui/") or p == "/login" for p in paths)


def test_telegram_and_sms_replies_render_as_their_channel_shows_them() -> None:
    from orchestrator.api.routes.conversations import render_sandbox_message

    tg = render_sandbox_message(
        "telegram",
        {
            "seq": 7,
            "ts": 1.0,
            "text": "Hello, <b>there</b> &amp; welcome",
            "payload": {
                "parse_mode": "HTML",
                "reply_markup": {
                    "inline_keyboard": [[{"text": "FAQ", "callback_data": "faq:menu"}]]
                },
            },
        },
    )
    assert tg["text"] == "Hello, there & welcome"
    assert tg["buttons"] == [{"id": "faq:menu", "title": "FAQ"}]
    sms = render_sandbox_message(
        "sms", {"seq": 8, "ts": 2.0, "type": "sms", "text": "1. FAQ\nReply with a number."}
    )
    assert sms["text"] == "1. FAQ\nReply with a number."
    assert sms["buttons"] == []
    voice = render_sandbox_message(
        "telegram",
        {
            "seq": 9,
            "ts": 3.0,
            "type": "voice",
            "text": None,
            "payload": {"chat_id": "42", "voice": {"file_id": "AwAC1", "file_size": 900}},
        },
    )
    assert voice["type"] == "audio"
    assert voice["media"] == {"kind": "audio", "id": "AwAC1", "link": None}


def test_a_customer_who_wrote_with_a_bsuid_then_a_phone_is_one_conversation(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    bot = _bot(client, actors.headers["admin"], wa_payload())
    store = BotStore.open(_db(client, bot))
    try:
        t0 = datetime.now(UTC) - timedelta(seconds=30)
        bsuid, phone = "BR.1502576394655843", "+48600100200"
        first = store.resolve_user(CustomerRef(bsuid=bsuid, profile_name="Eva"), now=t0)
        store.add_message(
            direction="in", customer=bsuid, type_="text", text="hi", user_id=first.id, now=t0
        )
        later = store.resolve_user(CustomerRef(phone=phone, bsuid=bsuid), now=t0)
        assert later.id == first.id
        store.add_message(
            direction="in", customer=phone, type_="text", text="price?", user_id=later.id,
            now=t0 + timedelta(seconds=1),
        )
    finally:
        store.close()
    h = actors.headers["admin"]
    customers = client.get(f"{BASE}/{bot}/conversations", headers=h).json()
    assert len(customers) == 1
    assert customers[0]["count"] == 2
    assert customers[0]["name"] == "Eva"
    assert customers[0]["identities"] == {"bsuid": bsuid, "phone": phone}
    for key in (bsuid, phone):
        url = f"{BASE}/{bot}/conversations/{key.replace('+', '%2B')}"
        body = client.get(url, headers=h).json()
        assert [m["text"] for m in body["messages"]] == ["hi", "price?"]
        assert body["customer"]["bsuid"] == bsuid
        assert body["customer"]["phone"] == phone


def test_rate_limited_and_unanswered_customers_are_flagged(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    from shared.channels.base import InboundMessage

    bot = _bot(client, actors.headers["admin"], wa_payload())
    store = BotStore.open(_db(client, bot))
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    try:

        def inbound(phone: str, mid: str, text: str, at: datetime, note: str | None) -> int:
            user = store.resolve_user(CustomerRef(phone=phone), now=at)
            row = store.inbox_insert(InboundMessage(mid, CustomerRef(phone=phone), text=text),
                                     customer=phone)
            store.add_message(direction="in", customer=phone, type_="text", text=text,
                              user_id=user.id, provider_message_id=mid, now=at)
            assert row is not None
            store.inbox_finish(row, note=note, now=at)
            return user.id

        def out(phone: str, user_id: int, status: str, at: datetime) -> None:
            store.add_message(direction="out", customer=phone, type_="text", text="reply",
                              user_id=user_id, status=status, now=at)

        # Ana was answered; Ben's reply failed; Cleo went over the rate limit (silenced after
        # an earlier notice); Dan's earlier message was answered, his latest is not yet.
        ana = inbound("+48600100201", "wamid.a", "hours?", t0, None)
        out("+48600100201", ana, "delivered", t0 + timedelta(seconds=1))
        ben = inbound("+48600100202", "wamid.b", "hours?", t0, None)
        out("+48600100202", ben, "failed", t0 + timedelta(seconds=1))
        cleo = inbound("+48600100203", "wamid.c1", "one more", t0, "rate_limited:notice")
        out("+48600100203", cleo, "sent", t0 + timedelta(seconds=1))
        inbound("+48600100203", "wamid.c2", "and another", t0 + timedelta(seconds=2),
                "rate_limited:silent")
        dan = inbound("+48600100204", "wamid.d1", "hi", t0, None)
        out("+48600100204", dan, "read", t0 + timedelta(seconds=1))
        inbound("+48600100204", "wamid.d2", "still there?", t0 + timedelta(seconds=3), None)
    finally:
        store.close()
    res = client.get(f"{BASE}/{bot}/conversations", headers=actors.headers["admin"])
    assert res.status_code == 200
    flags = {c["customer_key"]: c["flags"] for c in res.json()}
    assert flags == {
        "+48600100201": [],
        "+48600100202": ["unanswered"],
        "+48600100203": ["rate_limited", "unanswered"],
        "+48600100204": ["unanswered"],
    }
