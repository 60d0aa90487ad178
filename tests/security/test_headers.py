"""Exposure: security headers on every response, no inline script in the UI, masked secrets
show a guest no character, ``/metrics`` answers only to a token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_settings

TEMPLATES = Path(__file__).resolve().parents[2] / "admin_ui" / "templates"
SECRET = "EAAG-very-secret-token-9876"


def csp_directives(value: str) -> dict[str, list[str]]:
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def assert_secure_headers(res: Any) -> None:
    h = res.headers
    assert h["x-content-type-options"] == "nosniff", res.url
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "same-origin"
    csp = csp_directives(h["content-security-policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"], "no inline or foreign script on the UI and API"


def test_every_response_carries_the_security_headers(client: TestClient, actors: Any) -> None:
    admin = actors.headers["admin"]
    responses = [
        client.get("/login"),  # a UI page, signed out
        client.get("/health"),
        client.get("/static/app.js"),
        client.get("/admin/users", headers=admin),
        client.get("/admin/users"),  # 401
        client.get("/no-such-page"),  # 404
        client.post("/admin/users", content=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=admin),
    ]
    token = admin["Authorization"][7:]
    responses.append(
        client.get("/bots", headers={"Cookie": f"flotilla_session={token}"})
    )  # signed in
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 401, 404, 413, 200]
    for res in responses:
        assert_secure_headers(res)


def test_api_docs_need_no_cdn_and_no_unsafe_inline(client: TestClient) -> None:
    """``/docs`` and ``/redoc`` load Swagger UI and ReDoc from the orchestrator itself; the one
    inline script (Swagger UI's start) runs under a fresh nonce, nothing else inline runs."""
    nonces = set()
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        res = client.get(path)
        assert res.status_code == 200, path
        assert res.headers["x-frame-options"] == "DENY"
        policy = res.headers["content-security-policy"]
        assert "http" not in policy, f"{path}: a foreign host in {policy}"
        csp = csp_directives(policy)
        assert csp["default-src"] == ["'self'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in csp["script-src"], path
        assert "'unsafe-eval'" not in csp["script-src"], path
        allowed = {"'self'"} | {s for s in csp["script-src"] if s.startswith("'nonce-")}
        assert set(csp["script-src"]) == allowed, path
        for tag in re.findall(r"<script\b[^>]*>", res.text):
            if "src=" in tag:
                src = re.search(r'src="([^"]*)"', tag)
                assert src, tag
                assert src.group(1).startswith("/"), f"{path}: foreign script {tag}"
                assert client.get(src.group(1)).status_code == 200, src.group(1)
            else:
                nonce = re.search(r'nonce="([^"]+)"', tag)
                assert nonce, f"{path}: inline script without a nonce {tag}"
                assert f"'nonce-{nonce.group(1)}'" in csp["script-src"], tag
                nonces.add(nonce.group(1))
        for href in re.findall(r'<link[^>]*href="([^"]*)"', res.text):
            assert href.startswith("/"), f"{path}: foreign stylesheet or icon {href}"
            assert client.get(href).status_code == 200, href
    assert len(nonces) == 2, "a fresh nonce for each page"


def test_ui_templates_hold_no_inline_script() -> None:
    """CSP ``script-src 'self'`` blocks inline code: the UI must need none."""
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if 'type="application/json"' in tag:
                continue  # a data block, never run (filled with |tojson, which escapes <)
            assert "src=" in tag, f"{path.name}: inline <script>"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{path.name}: inline event handler"
        assert "hx-on" not in text, f"{path.name}: hx-on runs inline code"
        assert "javascript:" not in text, path.name
        for trigger in re.findall(r'hx-trigger="([^"]*)"', text):
            assert "[" not in trigger, f"{path.name}: htmx trigger filters are eval'd"


def test_a_guest_sees_no_character_of_a_secret(client: TestClient, actors: Any) -> None:
    res = client.post(
        "/admin/whatsapp/instances",
        json={"name": "Masked", "access_token": SECRET, "app_secret": "app-secret-5555"},
        headers=actors.headers["admin"],
    )
    assert res.status_code == 201, res.text
    bot_id = res.json()["id"]
    guest = actors.headers["gary"]
    one = client.get(f"/admin/whatsapp/instances/{bot_id}", headers=guest).json()
    listed = client.get("/admin/whatsapp/instances", headers=guest).json()
    for shown in (one, next(b for b in listed if b["id"] == bot_id)):
        assert shown["access_token"] == "****"
        assert shown["app_secret"] == "****"
    # The UI page a guest sees carries no character of it either.
    page = client.get(
        f"/bots/whatsapp/{bot_id}/settings",
        headers={"Cookie": f"flotilla_session={guest['Authorization'][7:]}"},
    )
    assert page.status_code == 200
    assert "9876" not in page.text
    assert "5555" not in page.text
    # Admins (and the owner) still see which key is set.
    admin_view = client.get(f"/admin/whatsapp/instances/{bot_id}", headers=actors.headers["admin"])
    assert admin_view.json()["access_token"] == "****9876"


def test_metrics_answer_only_to_an_admins_token(client: TestClient, actors: Any) -> None:
    res = client.get("/metrics")
    assert res.status_code == 401
    assert "flotilla_http" not in res.text
    assert client.get("/metrics", headers=actors.headers["alice"]).status_code == 403
    assert client.get("/metrics", headers=actors.headers["gary"]).status_code == 403
    res = client.get("/metrics", headers=actors.headers["admin"])
    assert res.status_code == 200
    assert "flotilla_http_requests_total" in res.text


@pytest.fixture
def metrics_client(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    from orchestrator.main import create_app

    settings = make_settings(tmp_path, sqlite_url, metrics_token="scrape-me-0123456789")
    with TestClient(create_app(settings)) as c:
        yield c


def test_metrics_token_setting(metrics_client: TestClient) -> None:
    assert metrics_client.get("/metrics").status_code == 401
    wrong = {"Authorization": "Bearer scrape-me-nope"}
    assert metrics_client.get("/metrics", headers=wrong).status_code == 401
    right = {"Authorization": "Bearer scrape-me-0123456789"}
    res = metrics_client.get("/metrics", headers=right)
    assert res.status_code == 200
    assert "flotilla_http_requests_total" in res.text
