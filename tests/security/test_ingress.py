"""``/hooks`` is the internet's way in (issue 10, finding 2): it must not be a proxy to any
local port, must not pass the caller's credentials on, and must reach only a channel's public
routes however the path is spelled.

The store-side checks run in-process on every configured database; the forwarding runs against
a real orchestrator process with recording HTTP servers standing in for bots' ports (what
reaches a bot's port is the thing under test, not the bot), sent with ``http.client`` so that
paths arrive exactly as written (httpx would resolve ``..`` before sending).
"""

from __future__ import annotations

import http.client
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actors
from tests.support.echo import SLOW_REQUEST_ID, EchoServer, port_in
from tests.support.orchestrator_proc import OrchestratorProcess, free_port

# ---------------------------------------------------------------- ports (store, in-process)


def test_a_port_outside_the_bot_range_cannot_be_saved(
    client: TestClient, actors: Actors, wa_payload: Callable[..., dict[str, Any]]
) -> None:
    h = actors.headers["alice"]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    low, high = settings.port_range_start, settings.port_range_end
    for port in (5432, low - 1, high + 1, settings.port):
        res = client.post(
            "/admin/whatsapp/instances", json=wa_payload(webhook_port=port), headers=h
        )
        assert res.status_code == 422, (port, res.text)
        detail = res.json()["detail"][0]
        assert detail["loc"] == ["body", "webhook_port"]
        if port != settings.port:
            assert f"outside the bot port range {low}-{high}" in detail["msg"]
    res = client.post("/admin/whatsapp/instances", json=wa_payload(webhook_port=low), headers=h)
    assert res.status_code == 201, res.text
    bot = res.json()["id"]
    for port in (5432, 65535, high + 1):
        res = client.put(
            f"/admin/whatsapp/instances/{bot}", json={"webhook_port": port}, headers=h
        )
        assert res.status_code == 422, (port, res.text)
        assert "outside the bot port range" in res.json()["detail"][0]["msg"]
    res = client.get(f"/admin/whatsapp/instances/{bot}", headers=h)
    assert res.json()["webhook_port"] == low
    res = client.put(f"/admin/whatsapp/instances/{bot}", json={"webhook_port": high}, headers=h)
    assert res.status_code == 200, res.text
    assert res.json()["webhook_port"] == high


# ---------------------------------------------------------------- forwarding (real process)


@dataclass
class Ingress:
    orch: OrchestratorProcess
    echo: dict[str, EchoServer]  # bot id → its (in-range) port's recorder
    outside: EchoServer  # a port outside the bot range

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.orch.port, timeout=30)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            conn.close()

    def clear(self) -> None:
        for echo in (*self.echo.values(), self.outside):
            echo.clear()

    def all_seen(self) -> list[str]:
        return [
            f"{s.method} {s.path}"
            for e in (*self.echo.values(), self.outside)
            for s in e.requests()
        ]


BOTS = {
    "wa-echo": "whatsapp",
    "sms-echo": "sms",
    "tg-echo": "telegram",
    "wc-echo": "webchat",  # the test plugin channel (tests.support.webchat)
    "moved": "whatsapp",
}
HOOKS_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingress]:
    orch = OrchestratorProcess(
        tmp_path_factory.mktemp("ingress"),
        FLOTILLA_HOOKS_MAX_BODY_BYTES=str(HOOKS_LIMIT),
        FLOTILLA_HOOKS_TIMEOUT_S="1.5",
        FLOTILLA_AUTO_START_BOTS="false",
        # A channel registered through the plugin hook gets the same allow-list.
        FLOTILLA_CHANNEL_PLUGINS="tests.support.webchat",
    )
    low = int(orch.env["FLOTILLA_PORT_RANGE_START"])
    high = int(orch.env["FLOTILLA_PORT_RANGE_END"])
    echo: dict[str, EchoServer] = {}
    for bot in BOTS:
        echo[bot] = EchoServer(port_in(low, high, {e.port for e in echo.values()}))
    outside_port = free_port()
    while low <= outside_port <= high:
        outside_port = free_port()
    outside = EchoServer(outside_port)
    orch.start()
    for bot, kind in BOTS.items():
        orch.create_bot(kind, name=bot, webhook_port=echo[bot].port)
    # A row changed behind the API's back to a port outside the range (a restored backup, a
    # hand edit): /hooks must not follow it.
    con = sqlite3.connect(orch.root / "data" / "orchestrator.db")
    with con:
        con.execute(
            "UPDATE bot_instances SET webhook_port = ? WHERE id = 'moved'", (outside_port,)
        )
    con.close()
    yield Ingress(orch, echo, outside)
    orch.close()
    for server in (*echo.values(), outside):
        server.close()


CLIENT_CREDENTIALS = {
    "Cookie": "flotilla_session=the-callers-session",
    "Authorization": "Bearer the-callers-admin-token",
    "Proxy-Authorization": "Basic cHJveHk6c2VjcmV0",
    "X-Forwarded-For": "10.0.0.1",
    "X-Forwarded-Host": "evil.example.com",
    "X-Forwarded-Proto": "http",
    "X-Real-IP": "10.0.0.2",
    "X-Api-Key": "the-callers-api-key",
}


def test_forwarded_request_carries_no_credentials_and_no_cookie_comes_back(
    ingress: Ingress,
) -> None:
    ingress.clear()
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    status, headers, answer = ingress.send(
        "POST",
        "/hooks/whatsapp/wa-echo/webhook?probe=1",
        body=body,
        headers={
            **CLIENT_CREDENTIALS,
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": "sha256=" + "ab" * 32,
        },
    )
    assert status == 200, answer
    assert answer == b"echo:" + body
    assert "set-cookie" not in headers
    assert "echo-backend" not in headers.get("server", "")
    [seen] = ingress.echo["wa-echo"].requests()
    assert (seen.method, seen.path, seen.body) == ("POST", "/webhook?probe=1", body)
    assert seen.headers["x-hub-signature-256"] == "sha256=" + "ab" * 32
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == "facebookexternalua"
    for name in CLIENT_CREDENTIALS:
        assert name.lower() not in seen.headers, (name, seen.headers)
    assert not any(h.startswith("x-forwarded-") for h in seen.headers), seen.headers


def test_each_channel_reaches_its_public_routes_with_their_methods(ingress: Ingress) -> None:
    ingress.clear()
    ok = [
        (
            "GET",
            "/hooks/whatsapp/wa-echo/webhook?hub.mode=subscribe&hub.challenge=42",
            "wa-echo",
            "/webhook?hub.mode=subscribe&hub.challenge=42",
        ),
        ("POST", "/hooks/whatsapp/wa-echo/webhook", "wa-echo", "/webhook"),
        ("POST", "/hooks/sms/sms-echo/webhook", "sms-echo", "/webhook"),
        ("POST", "/hooks/sms/sms-echo/status?ob=ob:7:0", "sms-echo", "/status?ob=ob:7:0"),
        ("POST", "/hooks/telegram/tg-echo/webhook", "tg-echo", "/webhook"),
        ("POST", "/hooks/webchat/wc-echo/webhook", "wc-echo", "/webhook"),
        ("POST", "/hooks/webchat/wc-echo/x/../webhook", "wc-echo", "/webhook"),
        # spellings that normalise cleanly to a public route reach exactly that route
        ("POST", "/hooks/whatsapp/wa-echo/x/../webhook", "wa-echo", "/webhook"),
        ("POST", "/hooks/whatsapp/wa-echo/%77ebhook", "wa-echo", "/webhook"),
    ]
    for method, target, bot, path in ok:
        ingress.clear()
        status, _, _ = ingress.send(method, target, body=b"x" if method == "POST" else None)
        assert status == 200, (method, target)
        assert ingress.all_seen() == [f"{method} {path}"], (target, ingress.all_seen())
        assert len(ingress.echo[bot].requests()) == 1, target  # that bot's port, no other
    refused = [
        ("GET", "/hooks/sms/sms-echo/webhook", 405),
        ("PUT", "/hooks/whatsapp/wa-echo/webhook", 405),
        ("DELETE", "/hooks/telegram/tg-echo/webhook", 405),
        ("POST", "/hooks/telegram/tg-echo/status", 404),  # SMS's route, not Telegram's
        ("POST", "/hooks/whatsapp/sms-echo/webhook", 404),  # wrong kind for that bot
        ("POST", "/hooks/whatsapp/nobody/webhook", 404),
        ("POST", "/hooks/whatsapp/wa-echo/", 404),
        ("GET", "/hooks/webchat/wc-echo/webhook", 405),
        ("POST", "/hooks/webchat/wc-echo/status", 404),  # SMS's route, not the plugin's
        ("POST", "/hooks/webchat/wa-echo/webhook", 404),  # wrong kind for that bot
        ("POST", "/hooks/nochat/wc-echo/webhook", 404),  # no such kind
    ]
    for method, target, expected in refused:
        ingress.clear()
        status, _, _ = ingress.send(method, target, body=b"x")
        assert status == expected, (method, target, status)
        assert ingress.all_seen() == [], (target, ingress.all_seen())


def test_each_channel_gets_only_its_own_signature_header(ingress: Ingress) -> None:
    """The headers passed on besides content type and user agent are the ones the channel's
    manifest names (``public_headers``): the plugin's for the plugin, Meta's for WhatsApp."""
    signatures = {
        "X-Webchat-Signature": "sha256=" + "cd" * 32,
        "X-Hub-Signature-256": "sha256=" + "ab" * 32,
        "X-Telegram-Bot-Api-Secret-Token": "tg-secret",
    }
    for kind, bot, own in (
        ("webchat", "wc-echo", "x-webchat-signature"),
        ("whatsapp", "wa-echo", "x-hub-signature-256"),
        ("telegram", "tg-echo", "x-telegram-bot-api-secret-token"),
    ):
        ingress.clear()
        status, _, _ = ingress.send(
            "POST", f"/hooks/{kind}/{bot}/webhook", body=b"{}", headers=signatures
        )
        assert status == 200, kind
        [seen] = ingress.echo[bot].requests()
        passed = {name.lower() for name in signatures} & set(seen.headers)
        assert passed == {own}, (kind, seen.headers)


TRAVERSALS = [
    "control/health",
    "control/send",
    "./control/health",
    "x/../control/health",
    "%2e/control/health",
    "%2E/control/health",
    "webhook/../control/health",
    "webhook/%2e%2e/control/health",
    "webhook/%2E%2E/control/health",
    "%2e%2e/%2e%2e/control/health",
    "//control/health",
    "//control",
    "Control/health",
    "CONTROL/health",
    "webhook%2f..%2fcontrol%2fhealth",
    "webhook%2F..%2Fcontrol%2Fhealth",
    "webhook%5c..%5ccontrol%5chealth",
    "webhook/..%2fcontrol/health",
    "%252e%252e/control/health",
    "webhook/../../../../etc/passwd",
    "Webhook",
    "WEBHOOK",
    "webhook%00",
    "webhook;x",
    "webhook/x",
    "webhook.json",
    "..",
    ".",
]


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize(("kind", "bot"), [("whatsapp", "wa-echo"), ("webchat", "wc-echo")])
def test_no_spelling_reaches_a_route_that_is_not_public(
    ingress: Ingress, kind: str, bot: str, path: str
) -> None:
    ingress.clear()
    for method in ("GET", "POST"):
        status, _, _ = ingress.send(
            method,
            f"/hooks/{kind}/{bot}/{path}",
            body=b"{}",
            headers={"Authorization": "Bearer x"},
        )
        assert status in (404, 400), (method, path, status)
    assert ingress.all_seen() == [], ingress.all_seen()


def test_a_row_pointing_outside_the_range_is_not_forwarded(ingress: Ingress) -> None:
    ingress.clear()
    for method in ("GET", "POST"):
        status, _, _ = ingress.send(method, "/hooks/whatsapp/moved/webhook", body=b"{}")
        assert status == 404
    assert ingress.outside.requests() == []
    assert ingress.echo["moved"].requests() == []


def test_bodies_over_the_limit_are_refused_before_the_bot_sees_them(ingress: Ingress) -> None:
    ingress.clear()
    status, _, _ = ingress.send("POST", "/hooks/whatsapp/wa-echo/webhook", b"x" * HOOKS_LIMIT)
    assert status == 200
    assert len(ingress.echo["wa-echo"].requests()[0].body) == HOOKS_LIMIT
    ingress.clear()
    status, _, _ = ingress.send(
        "POST", "/hooks/whatsapp/wa-echo/webhook", b"x" * (HOOKS_LIMIT + 1)
    )
    assert status == 413
    # chunked, no Content-Length: counted while reading
    conn = http.client.HTTPConnection("127.0.0.1", ingress.orch.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/hooks/whatsapp/wa-echo/webhook",
            body=iter([b"y" * 16384] * (HOOKS_LIMIT // 16384 + 2)),
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert ingress.all_seen() == []


def test_a_slow_bot_times_out(ingress: Ingress) -> None:
    ingress.clear()
    started = time.monotonic()
    status, _, _ = ingress.send(
        "POST", "/hooks/whatsapp/wa-echo/webhook", b"{}", {"X-Request-ID": SLOW_REQUEST_ID}
    )
    took = time.monotonic() - started
    assert status == 504
    assert took < 3.5, took  # FLOTILLA_HOOKS_TIMEOUT_S=1.5; the echo server takes 4 s
