"""The Graph API sandbox answers and validates like Meta, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from shared.sandbox import Sandbox

PHONE_NUMBER_ID = "106540352242922"
AUTH = {"Authorization": "Bearer EAAG-sandbox-token"}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def messages_url(sandbox: Sandbox) -> str:
    return f"{sandbox.graph_url}/v21.0/{PHONE_NUMBER_ID}/messages"


async def post(
    http: aiohttp.ClientSession,
    url: str,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with http.post(url, json=payload, headers=AUTH if headers is None else headers) as resp:
        return resp.status, await resp.json(), resp


async def control(http: aiohttp.ClientSession, sandbox: Sandbox, path: str) -> dict[str, Any]:
    async with http.get(f"{sandbox.url}/_sandbox/{path}") as resp:
        assert resp.status == 200
        return await resp.json()


def text_message(body: str, to: str = "+48600100200") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    }


def buttons_message(buttons: list[tuple[str, str]], body: str = "Pick one") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": "+48600100200",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": bid, "title": title}}
                    for bid, title in buttons
                ]
            },
        },
    }


def list_message(
    sections: list[dict[str, Any]], button: str = "Options", body: str = "Choose"
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": "+48600100200",
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {"button": button, "sections": sections},
        },
    }


def rows(n: int, prefix: str = "r", **extra: str) -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i}", "title": f"Row {i}", **extra} for i in range(n)]


async def test_accepted_text_message_is_answered_like_meta_and_recorded(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(http, messages_url(sandbox), text_message("Hello there"))

    assert status == 200
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+48600100200", "wa_id": "48600100200"}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")

    logged = (await control(http, sandbox, "requests?provider=graph"))["requests"]
    assert len(logged) == 1
    assert logged[0]["path"] == f"/graph/v21.0/{PHONE_NUMBER_ID}/messages"
    assert logged[0]["json"]["text"]["body"] == "Hello there"
    assert logged[0]["status"] == 200
    assert logged[0]["headers"]["Authorization"] == "Bearer ***"
    assert "EAAG" not in str(logged[0]["headers"])

    sent = (await control(http, sandbox, "messages?provider=graph&to=%2B48600100200"))["messages"]
    assert [(m["text"], m["message_id"], m["sender"]) for m in sent] == [
        ("Hello there", wamid, PHONE_NUMBER_ID)
    ]


async def test_message_ids_are_unique(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    ids = set()
    for i in range(20):
        _, body, _ = await post(http, messages_url(sandbox), text_message(f"m{i}"))
        ids.add(body["messages"][0]["id"])
    assert len(ids) == 20


async def test_bsuid_recipient_is_accepted_and_filterable(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    payload = text_message("hi username user")
    del payload["to"]
    payload["recipient"] = "BR.1502576394655843"
    await post(http, messages_url(sandbox), text_message("to someone else"))

    status, body, _ = await post(http, messages_url(sandbox), payload)

    assert status == 200
    assert body["contacts"][0]["input"] == "BR.1502576394655843"
    sent = (await control(http, sandbox, "messages?provider=graph&to=BR.1502576394655843"))[
        "messages"
    ]
    assert [m["text"] for m in sent] == ["hi username user"]


async def test_messages_keep_send_order(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    for text in ("one", "two", "three"):
        await post(http, messages_url(sandbox), text_message(text))
    sent = (await control(http, sandbox, "messages?provider=graph"))["messages"]
    assert [m["text"] for m in sent] == ["one", "two", "three"]
    since = sent[0]["seq"]
    later = (await control(http, sandbox, f"messages?provider=graph&since={since}"))["messages"]
    assert [m["text"] for m in later] == ["two", "three"]


VIOLATIONS = {
    "text body over 4096": text_message("x" * 4097),
    "interactive body over 1024": buttons_message([("a", "A")], body="y" * 1025),
    "four reply buttons": buttons_message([("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]),
    "button title over 20": buttons_message([("a", "t" * 21)]),
    "duplicate button ids": buttons_message([("same", "First"), ("same", "Second")]),
    "eleven rows in total": list_message(
        [{"title": "S1", "rows": rows(6, "a")}, {"title": "S2", "rows": rows(5, "b")}]
    ),
    "eleven sections": list_message(
        [{"title": f"S{i}", "rows": rows(1, f"s{i}-")} for i in range(11)]
    ),
    "row title over 24": list_message([{"title": "S", "rows": [{"id": "r", "title": "t" * 25}]}]),
    "row description over 72": list_message(
        [{"title": "S", "rows": [{"id": "r", "title": "Row", "description": "d" * 73}]}]
    ),
    "list button over 20": list_message([{"title": "S", "rows": rows(2)}], button="b" * 21),
    "section title over 24": list_message(
        [{"title": "s" * 25, "rows": rows(1, "a")}, {"title": "Ok", "rows": rows(1, "b")}]
    ),
}


@pytest.mark.parametrize("payload", list(VIOLATIONS.values()), ids=list(VIOLATIONS))
async def test_meta_limit_violations_are_rejected_with_code_100(
    sandbox: Sandbox, http: aiohttp.ClientSession, payload: dict[str, Any]
) -> None:
    status, body, _ = await post(http, messages_url(sandbox), payload)

    assert status == 400
    error = body["error"]
    assert error["code"] == 100
    assert error["type"] == "OAuthException"
    assert error["message"].startswith("(#100)")
    assert error["error_subcode"] == 2494010
    assert error["fbtrace_id"]
    assert error["error_data"]["details"]
    assert (await control(http, sandbox, "messages"))["messages"] == []
    logged = (await control(http, sandbox, "requests"))["requests"]
    assert [r["status"] for r in logged] == [400]


AT_THE_LIMIT = {
    "text body of 4096": text_message("x" * 4096),
    "interactive body of 1024": buttons_message([("a", "A")], body="y" * 1024),
    "three buttons titled 20": buttons_message(
        [("a", "a" * 20), ("b", "b" * 20), ("c", "c" * 20)]
    ),
    "ten rows in ten sections": list_message(
        [{"title": "s" * 24, "rows": rows(1, f"s{i}-", description="d" * 72)} for i in range(10)],
        button="b" * 20,
    ),
    "row title of 24": list_message([{"title": "S", "rows": [{"id": "r", "title": "t" * 24}]}]),
}


@pytest.mark.parametrize("payload", list(AT_THE_LIMIT.values()), ids=list(AT_THE_LIMIT))
async def test_messages_exactly_at_meta_limits_are_accepted(
    sandbox: Sandbox, http: aiohttp.ClientSession, payload: dict[str, Any]
) -> None:
    status, body, _ = await post(http, messages_url(sandbox), payload)
    assert status == 200, body
    assert body["messages"][0]["id"].startswith("wamid.")


async def test_missing_authorization_is_401_code_190(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(http, messages_url(sandbox), text_message("hi"), headers={})
    assert status == 401
    assert body["error"]["code"] == 190
    assert body["error"]["type"] == "OAuthException"
    assert (await control(http, sandbox, "messages"))["messages"] == []


async def test_template_message_is_accepted(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    payload = {
        "messaging_product": "whatsapp",
        "to": "+48600100200",
        "type": "template",
        "template": {"name": "reminder_24h", "language": {"code": "pl"}},
    }
    status, body, _ = await post(http, messages_url(sandbox), payload)
    assert status == 200
    assert body["messages"][0]["message_status"] == "accepted"
    sent = (await control(http, sandbox, "messages"))["messages"]
    assert [(m["type"], m["text"]) for m in sent] == [("template", "reminder_24h")]


async def test_mark_as_read_succeeds_and_is_not_an_outbound_message(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    payload = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.abc"}
    status, body, _ = await post(http, messages_url(sandbox), payload)
    assert (status, body) == (200, {"success": True})
    assert (await control(http, sandbox, "messages"))["messages"] == []
    assert len((await control(http, sandbox, "requests"))["requests"]) == 1


async def test_media_upload_returns_an_id_that_can_be_downloaded(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("messaging_product", "whatsapp")
    form.add_field("type", "audio/ogg")
    form.add_field("file", b"OggS-fake-voice", filename="reply.ogg", content_type="audio/ogg")
    async with http.post(
        f"{sandbox.graph_url}/v21.0/{PHONE_NUMBER_ID}/media", data=form, headers=AUTH
    ) as resp:
        assert resp.status == 200
        media_id = (await resp.json())["id"]
    assert media_id.isdigit()

    async with http.get(f"{sandbox.graph_url}/v21.0/{media_id}", headers=AUTH) as resp:
        info = await resp.json()
    assert info["mime_type"] == "audio/ogg"
    assert info["file_size"] == len(b"OggS-fake-voice")
    async with http.get(info["url"], headers=AUTH) as resp:
        assert await resp.read() == b"OggS-fake-voice"

    logged = (await control(http, sandbox, "requests"))["requests"][0]
    assert logged["form"]["file"] == {
        "filename": "reply.ogg",
        "content_type": "audio/ogg",
        "size": 15,
    }


async def test_error_fault_answers_a_chosen_meta_code(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    spec = {"provider": "graph", "mode": "error", "error_code": 131062, "count": 1}
    async with http.post(f"{sandbox.url}/_sandbox/faults", json=spec) as resp:
        assert resp.status == 201

    status, body, _ = await post(http, messages_url(sandbox), text_message("hi"))
    assert status == 400
    assert body["error"]["code"] == 131062
    assert body["error"]["message"] == "(#131062) BSUID not supported"

    status, _, _ = await post(http, messages_url(sandbox), text_message("hi again"))
    assert status == 200


async def test_429_fault_carries_retry_after_and_meta_rate_limit_code(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    spec = {"provider": "graph", "mode": "429", "retry_after": 3}
    async with http.post(f"{sandbox.url}/_sandbox/faults", json=spec) as resp:
        assert resp.status == 201

    status, body, resp = await post(http, messages_url(sandbox), text_message("hi"))

    assert status == 429
    assert resp.headers["Retry-After"] == "3"
    assert body["error"]["code"] == 130429
    logged = (await control(http, sandbox, "requests"))["requests"]
    assert [(r["status"], r["fault"]) for r in logged] == [(429, "429")]
    assert (await control(http, sandbox, "messages"))["messages"] == []
