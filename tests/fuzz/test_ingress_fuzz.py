"""Hostile ``/hooks`` paths against a real orchestrator: dot segments, encoded dots and slashes,
doubled slashes, backslashes, unicode and mixed case, for every channel. Recording servers
stand on the bots' ports; whatever the path, they must only ever see a request for exactly one
of that channel's declared public routes, and the orchestrator never answers 5xx."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sms_bot.manifest
import telegram_bot.manifest
import whatsapp_bot.manifest
from tests.support.echo import EchoServer, port_in
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = pytest.mark.slow

PUBLIC = {
    "whatsapp": set(whatsapp_bot.manifest.PUBLIC_ROUTES),
    "sms": set(sms_bot.manifest.PUBLIC_ROUTES),
    "telegram": set(telegram_bot.manifest.PUBLIC_ROUTES),
}
BOT_OF = {"whatsapp": "wa-fuzz", "sms": "sms-fuzz", "telegram": "tg-fuzz"}

SEGMENTS = st.sampled_from(
    [
        ".",
        "..",
        "%2e",
        "%2E",
        "%2e%2e",
        "%2E%2e",
        ".%2e",
        "%2e.",
        "%252e",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "\\",
        "",
        "webhook",
        "Webhook",
        "WEBHOOK",
        "webhook%2f",
        "status",
        "Status",
        "control",
        "Control",
        "CONTROL",
        "health",
        "send",
        "reload",
        "simulate",
        "%63ontrol",
        "%77ebhook",
        "webhook%00",
        "webhook%20",
        "ｗebhook",
        "wébhook",
        "é",
        "🙂",
        "%C0%AE",
        "%c0%af",
        "%e2%80%ae",
        "..;",
        ";",
        "x",
        "~",
        "*",
    ]
) | st.lists(
    st.sampled_from([*"./%\\cCwWeEhHbBoOkK2fF5ä", "%2e", "%2f", "%2E", "%5c"]), max_size=8
).map("".join)
RANDOM_PATHS = st.lists(SEGMENTS, min_size=0, max_size=7).map("/".join)
# Noise, then dot segments (plain or encoded), then a route-like tail: the paths that come
# closest to a public route, or to the control API from one.
NEAR_PATHS = st.builds(
    lambda noise, dots, tail: "/".join([*noise, *dots, tail]),
    st.lists(SEGMENTS, max_size=3),
    st.lists(st.sampled_from(["..", ".", "%2e%2e", "%2E%2e", "%2e", "", ".%2e"]), max_size=4),
    st.sampled_from(
        [
            "webhook",
            "status",
            "webhook/",
            "%77ebhook",
            "Webhook",
            "control/health",
            "control/send",
            "webhook/../control/send",
            "webhook%2f..%2fcontrol",
            "status/..",
        ]
    ),
)
PATHS = st.one_of(RANDOM_PATHS, NEAR_PATHS)


def request_target(kind: str, path: str, query: str) -> str:
    """The raw target: ASCII as written, anything else percent-encoded as a client would."""
    safe = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "#?")
    target = f"/hooks/{kind}/{BOT_OF[kind]}/" + quote(path, safe=safe)
    return target + (f"?{quote(query, safe='=&')}" if query else "")


@dataclass
class Fleet:
    orch: OrchestratorProcess
    echo: dict[str, EchoServer]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    orch = OrchestratorProcess(tmp_path_factory.mktemp("ingress-fuzz"))
    low = int(orch.env["FLOTILLA_PORT_RANGE_START"])
    high = int(orch.env["FLOTILLA_PORT_RANGE_END"])
    echo: dict[str, EchoServer] = {}
    for kind in BOT_OF:
        echo[kind] = EchoServer(port_in(low, high, {e.port for e in echo.values()}))
    orch.start()
    for kind, bot in BOT_OF.items():
        orch.create_bot(kind, name=bot, webhook_port=echo[kind].port)
    yield Fleet(orch, echo)
    orch.close()
    for server in echo.values():
        server.close()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(sorted(BOT_OF)),
    path=PATHS,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]),
    query=st.sampled_from(["", "a=1", "hub.challenge=1&x=..%2f"]),
)
def test_only_declared_public_routes_are_ever_forwarded(
    fleet: Fleet, kind: str, path: str, method: str, query: str
) -> None:
    for server in fleet.echo.values():
        server.clear()
    target = request_target(kind, path, query)
    conn = http.client.HTTPConnection("127.0.0.1", fleet.orch.port, timeout=30)
    try:
        conn.request(method, target, body=b"{}", headers={"Authorization": "Bearer x"})
        res = conn.getresponse()
        res.read()
        status = res.status
    finally:
        conn.close()
    event(f"answered {status}")
    assert status < 500, (target, status)
    for other, server in fleet.echo.items():
        seen = server.requests()
        if other != kind:
            assert seen == [], (target, other, seen)
            continue
        for request in seen:
            route = request.path.split("?", 1)[0]
            assert route in PUBLIC[kind], (target, request.path)
            assert "authorization" not in request.headers
        if seen:
            assert status == 200, (target, status)


def test_the_fleet_is_wired_so_the_fuzz_can_fail(fleet: Fleet) -> None:
    """The property above is only worth something if public routes do reach the recorders."""
    for kind, routes in PUBLIC.items():
        for route in routes:
            fleet.echo[kind].clear()
            for spelling in (route.lstrip("/"), f"x/..{route}", f".{route}"):
                conn = http.client.HTTPConnection("127.0.0.1", fleet.orch.port, timeout=30)
                try:
                    conn.request("POST", request_target(kind, spelling, ""), body=b"{}")
                    assert conn.getresponse().status == 200
                finally:
                    conn.close()
            assert [s.path for s in fleet.echo[kind].requests()] == [route] * 3
