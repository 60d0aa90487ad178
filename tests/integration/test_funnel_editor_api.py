"""The funnel editor's API in-process (SQLite and PostgreSQL): ``POST /admin/funnels/validate``
and ``POST /admin/funnels/preview`` — plain-language errors, the real router on a throwaway
conversation, and abuse (not an object, huge and deeply nested bodies, bad actions, guests,
another user's bot, cookie sessions without the CSRF token)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.security import csrf_token
from shared.funnel import default_funnel
from shared.funnel.editor import MAX_ERRORS, MAX_PREVIEW_STEPS, plain_message
from tests.conftest import TEST_SECRET_KEY, Actors


@pytest.fixture
def doc() -> dict[str, Any]:
    return copy.deepcopy(default_funnel().to_dict())


def _bot(client: TestClient, headers: dict[str, str], funnel: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"name": "Funnel Bot", "enabled": False}
    if funnel is not None:
        body["funnel"] = funnel
    res = client.post("/admin/whatsapp/instances", headers=headers, json=body)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


# ---- validate ------------------------------------------------------------------------------


def test_validate_accepts_the_default_funnel(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    res = client.post("/admin/funnels/validate", headers=actors.headers["alice"], json=doc)
    assert res.status_code == 200, res.text
    assert res.json() == {"ok": True, "errors": []}


def test_validate_names_each_bad_field_in_plain_language(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    doc["texts"]["welcome"] = ""
    doc["greetings"]["max_extra_words"] = 50
    doc["faq"]["sections"][0]["id"] = "Opening Hours"
    res = client.post("/admin/funnels/validate", headers=actors.headers["alice"], json=doc)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["ok"] is False
    by_loc = {".".join(str(p) for p in e["loc"]): e["msg"] for e in body["errors"]}
    assert by_loc == {
        "texts.welcome": "must not be empty",
        "greetings.max_extra_words": "must be at most 10",
        "faq.sections.0.id": "use only lower-case letters, digits and _ (e.g. opening_hours)",
    }


def test_validate_refuses_a_button_whose_action_points_nowhere(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    doc["welcome"].append({"title": "Hours", "action": "faq:opening_hours"})
    doc["welcome"].append({"title": "Odd", "action": "javascript:alert(1)"})
    doc["welcome"].append({"title": "Gone", "action": "sales:show:nowhere"})
    res = client.post("/admin/funnels/validate", headers=actors.headers["alice"], json=doc)
    errors = res.json()["errors"]
    assert res.json()["ok"] is False
    assert {
        "loc": ["welcome", 3, "action"],
        "msg": "points to the FAQ answer 'opening_hours', which does not exist",
    } in errors
    assert {
        "loc": ["welcome", 4, "action"],
        "msg": "is not an action the bot knows: pick one from the list",
    } in errors
    assert {
        "loc": ["welcome", 5, "action"],
        "msg": "points to the screen 'nowhere', which does not exist",
    } in errors


@pytest.mark.parametrize("body", [[], "a funnel", 42, None, [{"welcome": []}]])
def test_validate_refuses_a_body_that_is_not_an_object(
    client: TestClient, actors: Actors, body: Any
) -> None:
    res = client.post(
        "/admin/funnels/validate",
        headers={**actors.headers["alice"], "Content-Type": "application/json"},
        content=json.dumps(body),
    )
    assert res.status_code == 422, res.text
    assert "JSON object" in res.text or "body" in res.text


def test_validate_refuses_broken_json_and_deep_nesting_with_4xx(
    client: TestClient, actors: Actors
) -> None:
    headers = {**actors.headers["alice"], "Content-Type": "application/json"}
    res = client.post("/admin/funnels/validate", headers=headers, content=b'{"welcome": [')
    assert 400 <= res.status_code < 500, res.text
    deep = '{"a":' * 50_000 + "1" + "}" * 50_000  # 300 KB, past any recursion limit
    res = client.post("/admin/funnels/validate", headers=headers, content=deep)
    assert 400 <= res.status_code < 500, res.text
    # nested deep enough to parse, but not a funnel: answered, not crashed
    shallow = '{"texts":' + '{"a":' * 500 + "1" + "}" * 500 + "}"
    res = client.post("/admin/funnels/validate", headers=headers, content=shallow)
    assert res.status_code == 200, res.text
    assert res.json()["ok"] is False


def test_validate_refuses_a_body_over_the_limit(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    doc["texts"]["welcome"] = "x" * (limit + 1)
    res = client.post("/admin/funnels/validate", headers=actors.headers["alice"], json=doc)
    assert res.status_code == 413, res.text


def test_validate_caps_the_number_of_errors(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    doc["welcome"] = [{"title": "", "action": "nav:menu"} for _ in range(MAX_ERRORS + 50)]
    res = client.post("/admin/funnels/validate", headers=actors.headers["alice"], json=doc)
    errors = res.json()["errors"]
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1] == {"loc": [], "msg": "…and 50 more problems"}


def test_validate_is_open_to_guests_and_closed_to_anonymous(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    res = client.post("/admin/funnels/validate", headers=actors.headers["gary"], json=doc)
    assert res.status_code == 200, res.text
    assert client.post("/admin/funnels/validate", json=doc).status_code == 401


def test_validate_with_a_session_cookie_needs_the_csrf_token(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    session = actors.headers["alice"]["Authorization"].removeprefix("Bearer ")
    cookie = {"Cookie": f"flotilla_session={session}"}
    res = client.post("/admin/funnels/validate", headers=cookie, json=doc)
    assert res.status_code == 403, res.text
    token = {"X-CSRF-Token": csrf_token(TEST_SECRET_KEY, session)}
    res = client.post("/admin/funnels/validate", headers={**cookie, **token}, json=doc)
    assert res.status_code == 200, res.text


def test_plain_message_leaves_unknown_messages_alone() -> None:
    assert plain_message("Value error, something odd") == "something odd"
    assert plain_message("unknown segment 'vip'") == "unknown segment 'vip'"


# ---- preview -------------------------------------------------------------------------------


def _buttons(reply: dict[str, Any]) -> list[tuple[str, str]]:
    return [(b["id"], b["title"]) for b in reply.get("buttons", [])]


def test_preview_shows_the_welcome_and_follows_a_new_menu_button(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    doc["welcome"].append({"title": "Prices", "action": "faq:cat_pricing"})
    body = {
        "funnel": doc,
        "name": "Dana",
        "messages": [{"text": "hi"}, {"text": "Prices", "payload": "faq:cat_pricing"}],
    }
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    assert res.status_code == 200, res.text
    first, second = res.json()["turns"]
    assert first["handler"] == "show_welcome"
    assert first["needs_llm"] is False
    welcome = first["replies"][0]
    assert welcome["text"].startswith("Hello, Dana!")
    assert ("faq:cat_pricing", "Prices") in _buttons(welcome)
    assert second["replies"][0]["type"] == "list"
    rows = [r["id"] for s in second["replies"][0]["sections"] for r in s["rows"]]
    assert "faq:price" in rows


def test_preview_says_when_the_ai_would_answer(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    body = {"funnel": doc, "messages": [{"text": "do you sell croissants on tuesdays"}]}
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    turn = res.json()["turns"][0]
    assert turn["needs_llm"] is True
    assert turn["replies"] == []


def test_preview_of_a_stale_button_gets_the_polite_menu(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    body = {"funnel": doc, "messages": [{"text": "Gone", "payload": "faq:removed_long_ago"}]}
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    turn = res.json()["turns"][0]
    assert turn["handler"] == "stale_callback"
    assert turn["replies"][0]["text"] == doc["texts"]["stale"]


def test_preview_of_an_invalid_funnel_is_a_422_naming_the_field(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    doc["welcome"][0]["action"] = "sales:nothing"
    body = {"funnel": doc, "messages": [{"text": "hi"}]}
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["loc"] == ["body", "funnel", "welcome", 0, "action"]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"text": ""}]},
        {"messages": [{"text": "hi"}] * (MAX_PREVIEW_STEPS + 1)},
        {"messages": [{"text": "x" * 2001}]},
        {"messages": [{"text": "hi", "payload": "p" * 65}]},
        {"messages": [{"text": "hi"}], "funnel": []},
        {"messages": [{"text": "hi"}], "kind": "whatsapp"},
        {"messages": [{"text": "hi"}], "kind": "fax", "bot_id": "x"},
        {"messages": [{"text": "hi"}], "state": {"funnel_state": "x"}},
        {"messages": "hi"},
    ],
)
def test_preview_refuses_bad_bodies_with_422(
    client: TestClient, actors: Actors, body: dict[str, Any]
) -> None:
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    assert res.status_code == 422, res.text


def test_preview_of_a_bot_uses_its_own_funnel_and_hides_other_owners_bots(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    doc["texts"]["welcome"] = "Welcome to Alice's shop, {name}!"
    bot = _bot(client, actors.headers["alice"], doc)
    body = {"kind": "whatsapp", "bot_id": bot, "messages": [{"text": "hi"}]}
    for who in ("alice", "admin", "gary"):
        res = client.post("/admin/funnels/preview", headers=actors.headers[who], json=body)
        assert res.status_code == 200, (who, res.text)
        assert res.json()["turns"][0]["replies"][0]["text"].startswith("Welcome to Alice's shop")
    res = client.post("/admin/funnels/preview", headers=actors.headers["bob"], json=body)
    assert res.status_code == 404, res.text
    assert "Alice" not in res.text
    # naming a bot one may not see is refused even with a funnel in the body
    res = client.post(
        "/admin/funnels/preview", headers=actors.headers["bob"], json={**body, "funnel": doc}
    )
    assert res.status_code == 404, res.text
    missing = {**body, "bot_id": "no-such-bot"}
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=missing)
    assert res.status_code == 404, res.text


def test_preview_of_a_bot_without_a_funnel_plays_the_default(
    client: TestClient, actors: Actors
) -> None:
    bot = _bot(client, actors.headers["alice"])
    url = f"/admin/whatsapp/instances/{bot}"
    res = client.put(url, headers=actors.headers["alice"], json={"funnel": None})
    assert res.status_code == 200, res.text
    assert res.json()["funnel"] is None
    body = {"kind": "whatsapp", "bot_id": bot, "messages": [{"text": "hi"}]}
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    welcome = res.json()["turns"][0]["replies"][0]
    assert _buttons(welcome) == [(b.action, b.title) for b in default_funnel().welcome]


def test_preview_stores_nothing(client: TestClient, actors: Actors, doc: dict[str, Any]) -> None:
    bot = _bot(client, actors.headers["alice"])
    before = client.get(f"/admin/whatsapp/instances/{bot}", headers=actors.headers["alice"])
    body = {"kind": "whatsapp", "bot_id": bot, "funnel": doc, "messages": [{"text": "hi"}]}
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    assert res.status_code == 200
    after = client.get(f"/admin/whatsapp/instances/{bot}", headers=actors.headers["alice"])
    assert after.json() == before.json()
    assert after.json()["funnel"] != doc


def test_preview_body_over_the_limit_is_413(
    client: TestClient, actors: Actors, doc: dict[str, Any]
) -> None:
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    doc["texts"]["welcome"] = "x" * (limit + 1)
    body = {"funnel": doc, "messages": [{"text": "hi"}]}
    res = client.post("/admin/funnels/preview", headers=actors.headers["alice"], json=body)
    assert res.status_code == 413, res.text
