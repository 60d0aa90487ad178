"""The API behind issue 12's UI fixes: changing your own password (``POST /auth/password``) and
the test chat's voice-note player (``GET …/simulate/media/{media_id}``).

Real parts: the app in-process with its database (SQLite, and PostgreSQL when configured), the
real token route, and a real sandbox on a free port that the "bot" uploads its voice note to
over HTTP, as a WhatsApp bot does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from orchestrator.api.deps import SESSION_COOKIE
from orchestrator.security import csrf_token
from shared.sandbox import SandboxThread
from tests.conftest import TEST_SECRET_KEY, Actors

STRONG = "tulip-orbit-harbor-91-quiet"
NEWER = "granite-lantern-violet-47-moss"


def _token(client: TestClient, username: str, password: str) -> Any:
    return client.post("/auth/token", data={"username": username, "password": password})


@pytest.fixture
def guest(client: TestClient, actors: Actors) -> dict[str, str]:
    """A guest with a known password, signed in."""
    return actors.add("gina", "guest", password=STRONG)


def test_a_guest_changes_their_own_password_and_other_sessions_end(
    client: TestClient, guest: dict[str, str]
) -> None:
    second = _token(client, "gina", STRONG).json()["access_token"]
    other_device = {"Authorization": f"Bearer {second}"}
    res = client.post(
        "/auth/password",
        json={"current_password": STRONG, "new_password": NEWER},
        headers=guest,
    )
    assert res.status_code == 200, res.text
    fresh = {"Authorization": f"Bearer {res.json()['access_token']}"}
    # every older token is revoked (this one and the other device's); the fresh one works
    assert client.get("/auth/me", headers=guest).status_code == 401
    assert client.get("/auth/me", headers=other_device).status_code == 401
    me = client.get("/auth/me", headers=fresh)
    assert me.status_code == 200
    assert me.json()["username"] == "gina"
    assert _token(client, "gina", STRONG).status_code == 401
    assert _token(client, "gina", NEWER).status_code == 200
    assert "password" not in res.text.replace("access_token", "")


def test_a_wrong_current_password_is_refused_and_throttled_like_a_sign_in(
    client: TestClient, guest: dict[str, str]
) -> None:
    answers = [
        client.post(
            "/auth/password",
            json={"current_password": "not-my-password", "new_password": NEWER},
            headers=guest,
        )
        for _ in range(7)
    ]
    codes = [a.status_code for a in answers]
    assert codes[0] == 403, codes
    assert answers[0].json()["detail"] == "the current password is not right"
    assert 429 in codes, codes  # the sign-in throttling counts these failures
    blocked = client.post(
        "/auth/password",
        json={"current_password": STRONG, "new_password": NEWER},
        headers=guest,
    )
    assert blocked.status_code == 429, blocked.text
    assert int(blocked.headers["Retry-After"]) >= 1
    assert _token(client, "gina", STRONG).status_code in (200, 429)  # unchanged


def test_a_weak_or_same_new_password_is_a_422_with_the_policy_message(
    client: TestClient, guest: dict[str, str]
) -> None:
    weak = client.post(
        "/auth/password",
        json={"current_password": STRONG, "new_password": "password123"},
        headers=guest,
    )
    assert weak.status_code == 422, weak.text
    (err,) = weak.json()["detail"]
    assert err["loc"][-1] == "new_password"
    assert "too easy to guess" in err["msg"]
    same = client.post(
        "/auth/password",
        json={"current_password": STRONG, "new_password": STRONG},
        headers=guest,
    )
    assert same.status_code == 422
    assert "differ" in same.text
    # nothing changed: the old password still signs in, the session still works
    assert client.get("/auth/me", headers=guest).status_code == 200
    assert _token(client, "gina", STRONG).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"current_password": STRONG},
        {"current_password": STRONG, "new_password": "x" * 257},
        {"current_password": "x" * 257, "new_password": NEWER},
        {"current_password": STRONG, "new_password": NEWER, "role": "admin"},
        {"current_password": ["a"], "new_password": NEWER},
    ],
)
def test_bad_password_change_bodies_are_422(
    client: TestClient, guest: dict[str, str], body: dict[str, Any]
) -> None:
    res = client.post("/auth/password", json=body, headers=guest)
    assert res.status_code == 422, res.text
    assert client.get("/auth/me", headers=guest).status_code == 200


def test_changing_a_password_needs_a_sign_in(client: TestClient, actors: Actors) -> None:
    res = client.post("/auth/password", json={"current_password": STRONG, "new_password": NEWER})
    assert res.status_code == 401


def test_a_cookie_session_needs_the_csrf_token_to_change_its_password(
    client: TestClient, guest: dict[str, str]
) -> None:
    cookie = guest["Authorization"].removeprefix("Bearer ")
    body = {"current_password": STRONG, "new_password": NEWER}
    client.cookies.set(SESSION_COOKIE, cookie)
    try:
        refused = client.post("/auth/password", json=body)
        assert refused.status_code == 403, refused.text
        assert "CSRF" in refused.json()["detail"]
        wrong = client.post("/auth/password", json=body, headers={"X-CSRF-Token": "nope"})
        assert wrong.status_code == 403
        assert client.get("/auth/me").status_code == 200  # nothing changed: still signed in
        ok = client.post(
            "/auth/password",
            json=body,
            headers={"X-CSRF-Token": csrf_token(TEST_SECRET_KEY, cookie)},
        )
        assert ok.status_code == 200, ok.text
        assert client.get("/auth/me").status_code == 401  # the old cookie's token is revoked
    finally:
        client.cookies.clear()


# ---------------------------------------------------------------- voice notes in the test chat

BASE = "/admin/whatsapp/instances"
CUSTOMER = "+15550001111"
OGG = b"OggS\x00\x02" + bytes(range(256)) * 8


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread() as sb:
        yield sb


def _upload(sandbox: SandboxThread, data: bytes, mime: str) -> str:
    res = httpx.post(
        f"{sandbox.url}/graph/v21.0/1234567890/media",
        data={"messaging_product": "whatsapp", "type": mime},
        files={"file": ("voice.ogg", data, mime)},
        headers={"Authorization": "Bearer sandbox-token"},
    )
    assert res.status_code == 200, res.text
    return str(res.json()["id"])


def _send_audio(sandbox: SandboxThread, to: str, media_id: str) -> None:
    res = httpx.post(
        f"{sandbox.url}/graph/v21.0/1234567890/messages",
        json={"messaging_product": "whatsapp", "to": to, "type": "audio",
              "audio": {"id": media_id}},
        headers={"Authorization": "Bearer sandbox-token"},
    )  # fmt: skip
    assert res.status_code == 200, res.text


def test_the_test_chat_plays_the_bots_voice_note(
    client: TestClient,
    actors: Actors,
    wa_payload: Callable[..., dict[str, Any]],
    sandbox: SandboxThread,
) -> None:
    res = client.post(
        BASE,
        json=wa_payload(graph_api_base_url=f"{sandbox.url}/graph"),
        headers=actors.headers["alice"],
    )
    assert res.status_code == 201, res.text
    bot = res.json()["id"]
    voice = _upload(sandbox, OGG, "audio/ogg; codecs=opus")
    _send_audio(sandbox, CUSTOMER.lstrip("+"), voice)
    page = _upload(sandbox, b"<script>alert(1)</script>", "text/html")
    _send_audio(sandbox, CUSTOMER.lstrip("+"), page)
    elsewhere = _upload(sandbox, OGG, "audio/ogg")
    _send_audio(sandbox, "19990000000", elsewhere)

    replies = client.get(
        f"{BASE}/{bot}/simulate/replies", params={"to": CUSTOMER}, headers=actors.headers["alice"]
    ).json()["messages"]
    assert replies[0]["media"] == {"kind": "audio", "id": voice, "link": None}

    url = f"{BASE}/{bot}/simulate/media"
    for who in ("alice", "gary", "admin"):  # the owner, a guest (read-only), an admin
        got = client.get(f"{url}/{voice}", params={"to": CUSTOMER}, headers=actors.headers[who])
        assert got.status_code == 200, (who, got.text)
        assert got.content == OGG
        assert got.headers["content-type"] == "audio/ogg"
        assert got.headers["x-content-type-options"] == "nosniff"

    # Another user's bot: not found; signed out: 401.
    got = client.get(f"{url}/{voice}", params={"to": CUSTOMER}, headers=actors.headers["bob"])
    assert got.status_code == 404
    assert client.get(f"{url}/{voice}", params={"to": CUSTOMER}).status_code == 401
    # Media not sent to this customer, or no such media: 404, even though the sandbox has it.
    h = actors.headers["alice"]
    assert client.get(f"{url}/{elsewhere}", params={"to": CUSTOMER}, headers=h).status_code == 404
    assert client.get(f"{url}/42", params={"to": CUSTOMER}, headers=h).status_code == 404
    # A type that a browser could run is a download, never served as itself.
    got = client.get(f"{url}/{page}", params={"to": CUSTOMER}, headers=h)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == "attachment"
    # Bad ids and a missing customer: 422 with a message, not a 500.
    for bad in ("a%20b", "x" * 129, "%3Cscript%3E"):
        got = client.get(f"{url}/{bad}", params={"to": CUSTOMER}, headers=h)
        assert got.status_code == 422, (bad, got.text)
    assert client.get(f"{url}/{voice}", headers=h).status_code == 422
    assert client.get(f"{url}/{voice}", params={"to": "x" * 200}, headers=h).status_code == 422


def test_the_media_player_needs_a_bot_wired_to_the_sandbox(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    res = client.post(BASE, json=wa_payload(), headers=actors.headers["admin"])
    bot = res.json()["id"]
    got = client.get(
        f"{BASE}/{bot}/simulate/media/123", params={"to": CUSTOMER},
        headers=actors.headers["admin"],
    )  # fmt: skip
    assert got.status_code == 409
    assert "sandbox" in got.json()["detail"]


# ---------------------------------------------------------------- the UI routes, abused


def _as_browser(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    """Sign ``client`` in with the token of ``headers`` as a session cookie; the CSRF header."""
    cookie = headers["Authorization"].removeprefix("Bearer ")
    client.cookies.set(SESSION_COOKIE, cookie)
    return {"X-CSRF-Token": csrf_token(TEST_SECRET_KEY, cookie), "HX-Request": "true"}


def test_knowledge_deletion_in_the_ui_is_refused_to_guests_and_other_users(
    client: TestClient, actors: Actors
) -> None:
    res = client.post(
        "/admin/knowledge", json={"name": "Alice facts"}, headers=actors.headers["alice"]
    )
    assert res.status_code == 201, res.text
    kb = res.json()["id"]
    try:
        for who in ("bob", "gary"):
            h = _as_browser(client, actors.headers[who])
            page = client.post(f"/ui/knowledge/{kb}/delete", headers=h)
            assert page.status_code == 200  # htmx swaps only 2xx: the error is shown in place
            assert 'class="alert error"' in page.text, who
            page = client.post(f"/ui/knowledge/{kb}/documents/doc1/delete", headers=h)
            assert page.status_code == 200
            assert 'class="alert error"' in page.text, who
        h = _as_browser(client, actors.headers["alice"])
        for bad in ("x" * 65, "a.b", "a%20b"):
            page = client.post(f"/ui/knowledge/{kb}/documents/{bad}/delete", headers=h)
            assert page.status_code in (200, 404, 422), (bad, page.status_code)
            assert "Traceback" not in page.text
        page = client.post("/ui/knowledge/no-such-kb/delete", headers=h)
        assert page.status_code == 200
        assert 'class="alert error"' in page.text
        # without the CSRF token a cookie session cannot delete anything
        refused = client.post(f"/ui/knowledge/{kb}/delete", headers={"HX-Request": "true"})
        assert refused.status_code == 403
    finally:
        client.cookies.clear()
    assert client.get(f"/admin/knowledge/{kb}", headers=actors.headers["admin"]).status_code == 200
    h = _as_browser(client, actors.headers["alice"])
    try:
        page = client.post(f"/ui/knowledge/{kb}/delete", headers=h)
        assert "Deleted the knowledge base “Alice facts”" in page.text
    finally:
        client.cookies.clear()
    assert client.get(f"/admin/knowledge/{kb}", headers=actors.headers["admin"]).status_code == 404


def test_the_account_page_changes_the_password_and_keeps_the_browser_signed_in(
    client: TestClient, guest: dict[str, str]
) -> None:
    h = _as_browser(client, guest)
    try:
        wrong = client.post(
            "/ui/account/password",
            data={"current_password": "nope", "new_password": NEWER, "repeat_password": NEWER},
            headers=h,
        )
        assert wrong.status_code == 200
        assert "Your current password is not right." in wrong.text
        weak = client.post(
            "/ui/account/password",
            data={"current_password": STRONG, "new_password": "password123",
                  "repeat_password": "password123"},
            headers=h,
        )  # fmt: skip
        assert "too easy to guess" in weak.text
        huge = client.post(
            "/ui/account/password",
            data={"current_password": STRONG, "new_password": "y" * 5000,
                  "repeat_password": "y" * 5000},
            headers=h,
        )  # fmt: skip
        assert huge.status_code == 200
        assert "256" in huge.text
        ok = client.post(
            "/ui/account/password",
            data={"current_password": STRONG, "new_password": NEWER, "repeat_password": NEWER},
            headers=h,
        )
        assert ok.status_code == 200, ok.text
        assert ok.headers["HX-Redirect"] == "/account?changed=1"
        fresh = ok.cookies.get(SESSION_COOKIE)
        assert fresh
        assert fresh != guest["Authorization"].removeprefix("Bearer ")
        assert STRONG not in ok.text
        assert NEWER not in ok.text
        page = client.get("/account?changed=1")
        assert page.status_code == 200
        assert "Password changed" in page.text
    finally:
        client.cookies.clear()
    assert client.get("/auth/me", headers=guest).status_code == 401
