"""Outbound requests (issue 10, finding 7): a bot's provider base URLs are the official APIs
unless an admin allows others, a provider's error answer is kept only in part, and WhatsApp
media is fetched (with the access token) only from Meta's media hosts, within a size limit.

Base URLs go through the real admin API in-process (every configured database); media and
error answers through the real adapters against local HTTP servers that record what they got.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fastapi.testclient import TestClient

from orchestrator.crud import InstanceRules
from orchestrator.schemas import provider_url_allowed, url_matches
from orchestrator.settings import Settings
from shared.channels.base import CustomerRef, InboundMessage, SendError, TextReply
from sms_bot.adapter import TwilioAdapter
from telegram_bot.adapter import TelegramAdapter
from tests.botkit_support import Harness, make_harness
from tests.conftest import Actors, make_settings
from whatsapp_bot.adapter import WhatsAppAdapter

# ---------------------------------------------------------------- provider base URLs


@pytest.fixture
def strict_client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    """The orchestrator as installed: no provider URLs allowed besides the official ones."""
    from orchestrator.main import create_app

    app = create_app(make_settings(tmp_path, db_url, allowed_provider_urls=[]))
    with TestClient(app) as c:
        yield c


SSRF_URLS = [
    "http://127.0.0.1:8000",  # the orchestrator itself
    "http://127.0.0.1:8000/admin",
    "http://localhost:6379",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://[::1]:8000",
    "http://10.0.0.5",
    "http://graph.facebook.com",  # official host, but not over https
    "https://graph.facebook.com.evil.example",
    "https://graph.facebook.com:8443",
    "https://api.telegram.org",  # another provider's official host
]


@pytest.mark.parametrize(
    ("kind", "field", "extra"),
    [
        ("whatsapp", "graph_api_base_url", {}),
        ("sms", "twilio_base_url", {}),
        ("telegram", "telegram_api_base_url", {}),
    ],
)
def test_provider_base_urls_other_than_official_are_refused(
    strict_client: TestClient, kind: str, field: str, extra: dict[str, Any]
) -> None:
    actors = Actors(strict_client)
    h = actors.add("alice", "user")
    for url in SSRF_URLS:
        if field == "telegram_api_base_url" and url == "https://api.telegram.org":
            continue
        res = strict_client.post(
            f"/admin/{kind}/instances", json={"name": "Probe", field: url, **extra}, headers=h
        )
        assert res.status_code == 422, (url, res.text)
        detail = res.json()["detail"][0]
        assert detail["loc"] == ["body", field], detail
        assert "FLOTILLA_ALLOWED_PROVIDER_URLS" in detail["msg"]
    # the official URL (or none: the bot uses it) is fine; a later change to a probe is not
    res = strict_client.post(f"/admin/{kind}/instances", json={"name": "Real"}, headers=h)
    assert res.status_code == 201, res.text
    bot = res.json()
    for url in SSRF_URLS[:3]:
        res = strict_client.put(
            f"/admin/{kind}/instances/{bot['id']}", json={field: url}, headers=h
        )
        assert res.status_code == 422, (url, res.text)
        assert res.json()["detail"][0]["loc"] == ["body", field]
    official = bot[field]
    res = strict_client.put(
        f"/admin/{kind}/instances/{bot['id']}", json={field: official + "/"}, headers=h
    )
    assert res.status_code == 200, res.text
    assert (
        strict_client.get(f"/admin/{kind}/instances/{bot['id']}", headers=h).json()[field]
        == official
    )


def test_base_urls_with_credentials_or_queries_are_malformed(strict_client: TestClient) -> None:
    h = Actors(strict_client).add("alice", "user")
    for url in (
        "https://graph.facebook.com@127.0.0.1:8000",
        "https://user:pw@graph.facebook.com",
        "https://graph.facebook.com/?x=1",
        "https://graph.facebook.com/#frag",
        "https://graph.facebook.com:99999",
        "https://graph.facebook.com\\@127.0.0.1",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_x",
    ):
        res = strict_client.post(
            "/admin/whatsapp/instances",
            json={"name": "Probe", "graph_api_base_url": url},
            headers=h,
        )
        assert res.status_code == 422, (url, res.text)


def test_allowed_provider_urls_setting() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        allowed_provider_urls="https://proxy.example.com/graph, relay.example.net:8443",  # type: ignore[arg-type]
        sandbox=False,
    )
    allowed = InstanceRules.from_settings(settings).allowed_provider_urls
    assert allowed == ("https://proxy.example.com/graph", "relay.example.net:8443")
    field = "graph_api_base_url"
    for url in (
        "https://graph.facebook.com",
        "https://proxy.example.com/graph",
        "https://proxy.example.com/graph/v2",
        "https://relay.example.net:8443",
        "http://relay.example.net:8443/x",
    ):
        assert provider_url_allowed(field, url, allowed), url
    for url in (
        "https://proxy.example.com",
        "https://proxy.example.com/graphx",
        "http://proxy.example.com/graph",
        "https://proxy.example.com:444/graph",
        "https://relay.example.net",
        "https://evil.example/graph",
        "https://proxy.example.com.evil.example/graph",
    ):
        assert not provider_url_allowed(field, url, allowed), url
    # the sandbox's own URL only when the sandbox runs
    assert not url_matches("http://127.0.0.1:8090/graph", "127.0.0.1:8091")
    on = InstanceRules.from_settings(
        Settings(_env_file=None, sandbox=True, sandbox_port=8090)  # type: ignore[call-arg]
    )
    assert provider_url_allowed(field, "http://127.0.0.1:8090/graph", on.allowed_provider_urls)
    assert not provider_url_allowed(field, "http://127.0.0.1:8000/graph", on.allowed_provider_urls)
    off = InstanceRules.from_settings(Settings(_env_file=None, sandbox=False))  # type: ignore[call-arg]
    assert not provider_url_allowed(
        field, "http://127.0.0.1:8090/graph", off.allowed_provider_urls
    )


def test_allowed_provider_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_ALLOWED_PROVIDER_URLS", "http://127.0.0.1:9000/graph,proxy.lan")
    assert Settings().allowed_provider_urls == ["http://127.0.0.1:9000/graph", "proxy.lan"]
    monkeypatch.setenv("FLOTILLA_ALLOWED_PROVIDER_URLS", "")
    assert Settings().allowed_provider_urls == []


# ---------------------------------------------------------------- local fake servers

LONG_TAIL = "INTERNAL-SERVICE-SECRET-TAIL"
LONG_TEXT = "internal answer " + "A" * 600 + LONG_TAIL
MEDIA_TOKEN = "EAAG-media-test-token-SECRET"  # noqa: S105 - a test value
TG_TOKEN = "1:abc"  # noqa: S105 - a test value


class Recorder:
    """A server on its own port (a "foreign host") that records every request's headers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def app(self) -> web.Application:
        async def any_request(request: web.Request) -> web.Response:
            self.seen.append(dict(request.headers))
            return web.Response(body=b"leaked internal data", content_type="audio/ogg")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", any_request)
        return app


def provider_app(foreign_url: str, seen: list[dict[str, str]]) -> web.Application:
    """Graph, Telegram and Twilio stand-ins answering errors with long bodies, and Graph media
    lookups whose ``url`` points wherever a test wants (``media_id`` picks the case)."""

    async def graph_message(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": LONG_TEXT, "code": 100}}, status=400)

    async def graph_media(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        media_id = request.match_info["media_id"]
        own = str(request.url.with_path("/graph/_files/").with_query(None))
        urls = {
            "foreign": f"{foreign_url}/whatsapp_business/attachments/?mid=1",
            "lookalike": f"{foreign_url.replace('127.0.0.1', 'localhost')}/x",
            "redirect": own + "redirect",
            "small": own + "small",
            "big": own + "big",
            "declared-big": own + "declared-big",
        }
        return web.json_response({"url": urls[media_id], "mime_type": "audio/ogg"})

    async def files(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        name = request.match_info["name"]
        if name == "redirect":
            raise web.HTTPFound(f"{foreign_url}/stolen")
        if name == "small":
            return web.Response(body=b"OggS-voice", content_type="audio/ogg")
        if name == "declared-big":
            return web.Response(body=b"z" * 5000, content_type="audio/ogg")
        resp = web.StreamResponse()  # chunked: no Content-Length to trust
        resp.content_type = "audio/ogg"
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"z" * 1000)
        await resp.write_eof()
        return resp

    async def telegram(request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 400, "description": LONG_TEXT}, status=400
        )

    async def twilio(request: web.Request) -> web.Response:
        return web.json_response(
            {"code": 30001, "message": LONG_TEXT, "status": 400, "more_info": "x"}, status=400
        )

    app = web.Application()
    app.router.add_post("/graph/v21.0/{pnid}/messages", graph_message)
    app.router.add_get("/graph/_files/{name}", files)
    app.router.add_get("/graph/v21.0/{media_id}", graph_media)
    app.router.add_post("/telegram/bot{token}/{method}", telegram)
    app.router.add_post("/twilio/2010-04-01/Accounts/{sid}/Messages.json", twilio)
    return app


class Servers:
    def __init__(self, provider: TestServer, foreign: Recorder, seen: list[dict[str, str]]):
        self.provider_url = str(provider.make_url("")).rstrip("/")
        self.foreign = foreign
        self.provider_seen = seen


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    recorder = Recorder()
    foreign = TestServer(recorder.app(), host="127.0.0.1")
    await foreign.start_server()
    seen: list[dict[str, str]] = []
    provider = TestServer(
        provider_app(str(foreign.make_url("")).rstrip("/"), seen), host="127.0.0.1"
    )
    await provider.start_server()
    yield Servers(provider, recorder, seen)
    await provider.close()
    await foreign.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def wa(http: aiohttp.ClientSession, servers: Servers, **kw: Any) -> WhatsAppAdapter:
    return WhatsAppAdapter(
        http,
        base_url=f"{servers.provider_url}/graph",
        version="v21.0",
        phone_number_id="106540352242922",
        access_token=MEDIA_TOKEN,
        **kw,
    )


# ---------------------------------------------------------------- media


@pytest.mark.parametrize("case", ["foreign", "lookalike", "redirect"])
async def test_media_is_not_fetched_from_a_foreign_host_and_the_token_stays_home(
    http: aiohttp.ClientSession, servers: Servers, case: str
) -> None:
    with pytest.raises(SendError, match="not on a WhatsApp media host"):
        await wa(http, servers).download_media(case)
    assert servers.foreign.seen == []  # not even a request, so no token
    assert all(h.get("Authorization") == f"Bearer {MEDIA_TOKEN}" for h in servers.provider_seen)


async def test_media_from_the_graph_origin_is_fetched_within_the_size_limit(
    http: aiohttp.ClientSession, servers: Servers
) -> None:
    data, mime = await wa(http, servers).download_media("small")
    assert (data, mime) == (b"OggS-voice", "audio/ogg")
    for case in ("big", "declared-big"):
        with pytest.raises(SendError, match="larger than 4096 bytes"):
            await wa(http, servers, max_media_bytes=4096).download_media(case)
    assert servers.foreign.seen == []


def test_meta_media_hosts() -> None:
    adapter = WhatsAppAdapter(
        None,  # type: ignore[arg-type]  # only the URL rule is used: no session needed
        base_url="https://graph.facebook.com",
        version="v21.0",
        phone_number_id="1",
        access_token="t",  # noqa: S106 - a test value
    )
    for url in (
        "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2",
        "https://scontent.xx.fbcdn.net/v/t1/a.ogg",
        "https://mmg.whatsapp.net/d/f/a.enc",
        "https://graph.facebook.com/v21.0/123",
    ):
        assert adapter.media_url_allowed(url), url
    for url in (
        "http://lookaside.fbsbx.com/x",  # not https
        "https://lookaside.fbsbx.com.evil.example/x",
        "https://evil.example/lookaside.fbsbx.com",
        "https://fbcdn.net.evil.example/x",
        "https://evilfbcdn.net/x",
        "https://lookaside.fbsbx.com@127.0.0.1/x",
        "https://lookaside.fbsbx.com:8443/x",
        "http://127.0.0.1:8000/admin",
        "https://169.254.169.254/latest",
        "file:///etc/passwd",
    ):
        assert not adapter.media_url_allowed(url), url


# ---------------------------------------------------------------- provider error bodies


async def test_provider_error_text_is_cut_in_every_adapter(
    http: aiohttp.ClientSession, servers: Servers
) -> None:
    customer = CustomerRef(phone="+14155550123")
    adapters = [
        wa(http, servers),
        TelegramAdapter(http, token=TG_TOKEN, base_url=f"{servers.provider_url}/telegram"),
        TwilioAdapter(
            http,
            account_sid="AC" + "0" * 32,
            auth_token="tok",  # noqa: S106 - a test value
            base_url=f"{servers.provider_url}/twilio",
            from_number="+15005550006",
        ),
    ]
    for adapter in adapters:
        is_telegram = isinstance(adapter, TelegramAdapter)
        target = CustomerRef(telegram_id="521") if is_telegram else customer
        with pytest.raises(SendError) as info:
            await adapter.send(target, TextReply(text="hi"))
        message = str(info.value)
        assert "internal answer AAAA" in message, message  # the start is kept, for the owner
        assert LONG_TAIL not in message
        assert len(message) <= 360, (type(adapter).__name__, len(message))


@pytest.fixture
async def harness(tmp_path: Path, servers: Servers) -> AsyncIterator[Harness]:
    async for h in make_harness(tmp_path, graph_api_base_url=f"{servers.provider_url}/graph"):
        yield h


async def test_a_stored_send_error_keeps_only_the_start_of_the_answer(harness: Harness) -> None:
    harness.ctx.accept_inbound(
        InboundMessage("wamid.e1", CustomerRef(phone="+15550100001"), text="zxqv hello?")
    )
    await harness.settle()
    failed = [m for m in harness.ctx.store.messages() if m["direction"] == "out"]
    assert failed, harness.ctx.store.messages()
    rows = harness.ctx.store.outbox_all()
    errors = [m["error"] for m in failed] + [r.last_error for r in rows]
    assert [m["status"] for m in failed] == ["failed"] * len(failed)
    for error in errors:
        assert error is not None
        assert "internal answer" in error
        assert LONG_TAIL not in error
        assert len(error) <= 360
