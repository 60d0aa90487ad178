"""The Telegram Bot API sandbox answers like the Bot API and enforces its limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from shared.sandbox import Sandbox

TOKEN = "7000001:AAH-sandbox_secret"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    token: str = TOKEN,
    form: bool = False,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    url = f"{sandbox.telegram_url}/bot{token}/{method}"
    kwargs: dict[str, Any] = {"data": params} if form else {"json": params or {}}
    async with http.post(url, **kwargs) as resp:
        return resp.status, await resp.json(), resp


def keyboard(*callback_data: str) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [{"text": f"Option {i}", "callback_data": d}] for i, d in enumerate(callback_data)
        ]
    }


async def test_send_message_answers_like_the_bot_api_with_per_chat_message_ids(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    first = await call(http, sandbox, "sendMessage", {"chat_id": 111, "text": "one"})
    second = await call(http, sandbox, "sendMessage", {"chat_id": 111, "text": "two"})
    other = await call(http, sandbox, "sendMessage", {"chat_id": 222, "text": "hi"})

    assert first[0] == 200
    assert first[1]["ok"] is True
    result = first[1]["result"]
    assert result["chat"] == {"id": 111, "type": "private"}
    assert result["from"]["id"] == 7000001
    assert result["from"]["is_bot"] is True
    assert result["text"] == "one"
    assert [r[1]["result"]["message_id"] for r in (first, second, other)] == [1, 2, 1]

    async with http.get(f"{sandbox.url}/_sandbox/messages?provider=telegram&to=111") as resp:
        sent = (await resp.json())["messages"]
    assert [(m["text"], m["message_id"]) for m in sent] == [("one", "1"), ("two", "2")]


async def test_callback_data_of_64_bytes_is_accepted(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    params = {"chat_id": 1, "text": "Pick", "reply_markup": keyboard("a" * 64, "sales:diy")}
    status, body, _ = await call(http, sandbox, "sendMessage", params)
    assert status == 200
    assert body["result"]["reply_markup"] == params["reply_markup"]


@pytest.mark.parametrize(
    "data",
    ["a" * 65, "é" * 33],  # 33 two-byte characters: 33 chars but 66 bytes
    ids=["65 ascii bytes", "66 utf8 bytes"],
)
async def test_callback_data_over_64_bytes_is_rejected(
    sandbox: Sandbox, http: aiohttp.ClientSession, data: str
) -> None:
    params = {"chat_id": 1, "text": "Pick", "reply_markup": keyboard("ok", data)}
    status, body, _ = await call(http, sandbox, "sendMessage", params)

    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: BUTTON_DATA_INVALID",
    }
    async with http.get(f"{sandbox.url}/_sandbox/messages") as resp:
        assert (await resp.json())["messages"] == []


async def test_callback_data_limit_applies_to_form_encoded_markup_too(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    params = {"chat_id": "1", "text": "Pick", "reply_markup": json.dumps(keyboard("x" * 65))}
    status, body, _ = await call(http, sandbox, "sendMessage", params, form=True)
    assert status == 400
    assert body["description"] == "Bad Request: BUTTON_DATA_INVALID"


async def test_text_over_4096_is_rejected(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    ok = await call(http, sandbox, "sendMessage", {"chat_id": 1, "text": "t" * 4096})
    too_long = await call(http, sandbox, "sendMessage", {"chat_id": 1, "text": "t" * 4097})
    assert ok[0] == 200
    assert too_long[0] == 400
    assert too_long[1]["description"] == "Bad Request: message is too long"


async def test_missing_chat_id_and_empty_text_are_rejected(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    no_chat = await call(http, sandbox, "sendMessage", {"text": "hi"})
    no_text = await call(http, sandbox, "sendMessage", {"chat_id": 5})
    assert no_chat[1]["description"] == "Bad Request: chat_id is empty"
    assert no_text[1]["description"] == "Bad Request: message text is empty"


async def test_send_voice_and_photo_accept_multipart_uploads(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", "42")
    form.add_field("caption", "Listen")
    form.add_field("voice", b"OggS" * 100, filename="a.ogg", content_type="audio/ogg")
    async with http.post(f"{sandbox.telegram_url}/bot{TOKEN}/sendVoice", data=form) as resp:
        voice = await resp.json()
    assert voice["ok"] is True
    assert voice["result"]["voice"]["file_size"] == 400
    assert voice["result"]["voice"]["mime_type"] == "audio/ogg"
    assert voice["result"]["caption"] == "Listen"

    status, photo, _ = await call(
        http, sandbox, "sendPhoto", {"chat_id": 42, "photo": "https://example.invalid/p.jpg"}
    )
    assert status == 200
    assert photo["result"]["message_id"] == 2
    assert len(photo["result"]["photo"]) == 2

    async with http.get(f"{sandbox.url}/_sandbox/requests?provider=telegram") as resp:
        logged = (await resp.json())["requests"]
    assert logged[0]["form"]["voice"]["size"] == 400
    assert all("sandbox_secret" not in r["path"] for r in logged)


async def test_a_sent_voice_note_is_recorded_and_downloadable_like_telegram_files(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    audio = b"OggS\x00\x02" + bytes(range(256)) * 3
    form = aiohttp.FormData()
    form.add_field("chat_id", "42")
    form.add_field("voice", audio, filename="voice.ogg", content_type="audio/ogg")
    async with http.post(f"{sandbox.telegram_url}/bot{TOKEN}/sendVoice", data=form) as resp:
        sent = (await resp.json())["result"]
    file_id = sent["voice"]["file_id"]

    async with http.get(f"{sandbox.url}/_sandbox/messages?provider=telegram") as resp:
        messages = (await resp.json())["messages"]
    assert [m["type"] for m in messages] == ["voice"]
    assert messages[0]["payload"]["voice"] == {"file_id": file_id, "file_size": len(audio)}

    status, info, _ = await call(http, sandbox, "getFile", {"file_id": file_id})
    assert status == 200
    assert info["result"]["file_size"] == len(audio)
    file_url = f"{sandbox.telegram_url}/file/bot{TOKEN}/{info['result']['file_path']}"
    async with http.get(file_url) as resp:
        assert resp.status == 200
        assert resp.content_type == "audio/ogg"
        assert await resp.read() == audio

    status, missing, _ = await call(http, sandbox, "getFile", {"file_id": "nope"})
    assert (status, missing["description"]) == (400, "Bad Request: invalid file_id")
    async with http.get(f"{sandbox.telegram_url}/file/bot{TOKEN}/files/nope") as resp:
        assert resp.status == 404
    async with http.get(f"{sandbox.url}/_sandbox/requests?provider=telegram") as resp:
        logged = (await resp.json())["requests"]
    assert all("sandbox_secret" not in r["path"] for r in logged)


async def test_callback_answers_and_edits(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    answered = await call(http, sandbox, "answerCallbackQuery", {"callback_query_id": "99"})
    assert answered[1] == {"ok": True, "result": True}

    await call(http, sandbox, "sendMessage", {"chat_id": 7, "text": "before"})
    edited = await call(
        http, sandbox, "editMessageText", {"chat_id": 7, "message_id": 1, "text": "after"}
    )
    assert edited[0] == 200
    assert edited[1]["result"]["text"] == "after"
    assert "edit_date" in edited[1]["result"]

    missing = await call(
        http, sandbox, "editMessageText", {"chat_id": 7, "message_id": 50, "text": "x"}
    )
    assert missing[1]["description"] == "Bad Request: message to edit not found"


async def test_webhook_lifecycle_and_get_updates(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    me = await call(http, sandbox, "getMe")
    assert me[1]["result"]["id"] == 7000001

    hook = await call(http, sandbox, "setWebhook", {"url": "https://bot.example/webhook"})
    assert hook[1] == {"ok": True, "result": True, "description": "Webhook was set"}
    conflict = await call(http, sandbox, "getUpdates")
    assert conflict[0] == 409

    await call(http, sandbox, "deleteWebhook")
    update = {"message": {"message_id": 1, "chat": {"id": 5, "type": "private"}, "text": "/start"}}
    async with http.post(
        f"{sandbox.url}/_sandbox/telegram/updates", json={"token": TOKEN, "update": update}
    ) as resp:
        queued = await resp.json()
    updates = await call(http, sandbox, "getUpdates", {"offset": 0})
    assert [u["update_id"] for u in updates[1]["result"]] == [queued["update_id"]]
    confirmed = await call(http, sandbox, "getUpdates", {"offset": queued["update_id"] + 1})
    assert confirmed[1]["result"] == []


async def test_bad_token_and_unknown_method(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    bad_token = await call(http, sandbox, "getMe", token="not-a-token")
    unknown = await call(http, sandbox, "sendTelepathy")
    assert (bad_token[0], bad_token[1]["description"]) == (401, "Unauthorized")
    assert (unknown[0], unknown[1]["description"]) == (404, "Not Found")


async def test_get_with_query_string_works(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    url = f"{sandbox.telegram_url}/bot{TOKEN}/sendMessage"
    async with http.get(url, params={"chat_id": "3", "text": "via GET"}) as resp:
        body = await resp.json()
    assert body["result"]["text"] == "via GET"


async def test_429_fault_has_retry_after_in_parameters_and_header(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    spec = {"provider": "telegram", "mode": "429", "retry_after": 5, "count": 1}
    async with http.post(f"{sandbox.url}/_sandbox/faults", json=spec) as resp:
        assert resp.status == 201

    status, body, resp = await call(http, sandbox, "sendMessage", {"chat_id": 1, "text": "x"})
    assert status == 429
    assert resp.headers["Retry-After"] == "5"
    assert body["parameters"] == {"retry_after": 5}
    assert body["description"] == "Too Many Requests: retry after 5"

    again = await call(http, sandbox, "sendMessage", {"chat_id": 1, "text": "x"})
    assert again[0] == 200
    assert again[1]["result"]["message_id"] == 1  # the faulted call consumed no message id
