"""The channel contract, checked for every registered kind (``shared.channels.registry.kinds()``)
against a real bot subprocess, the sandbox providers and a fake of the internal API.

Each kind supplies a small fixture adapter below (:data:`ADAPTERS`): how its provider signs a
webhook, a sample inbound message, its recorded payloads (``tests/data/<provider>``), how a
delivery status arrives. The contract:

* a webhook without a signature is 401, with a wrong one 403, and nothing is stored or sent;
* every recorded payload parses into messages whose customer identities are schemes the
  manifest declares, and a signed recorded payload is accepted and queued;
* a redelivery (the same provider message id twice) is one inbox row and one reply;
* replies stay within the manifest's capabilities (``max_buttons``, ``max_text``), a long
  operator message included (split, nothing lost);
* an operator message goes out through the sandbox and is stored as sent;
* a signed status callback updates the delivery status (a channel whose provider reports none
  says so in its adapter).

Channel-specific behaviour (menus, Telegram's callback answers, ...) stays in the per-channel
process tests (tests/integration/test_*_bot_process.py).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest

import sms_bot.webhook
import whatsapp_bot.webhook
from shared.channels import registry
from shared.channels.base import InboundMessage, StatusUpdate
from shared.sandbox import STATE_KEY
from shared.store import bot_db_filename
from shared.tokens import mint_control_token
from sms_bot.parse import parse_inbound, parse_status
from telegram_bot.parse import parse_update
from tests.botkit_support import APP_SECRET, FakeOrchestrator, start_servers, wa_config
from whatsapp_bot.parse import parse_payload

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
KEY = "c0" * 32
BOT_ID = "contract-bot"
T = TypeVar("T")


@dataclass(frozen=True)
class Webhook:
    """One provider request to a bot's public route."""

    path: str
    body: bytes
    content_type: str
    provider_id: str = ""


@dataclass
class ChannelFixture:
    """What the contract needs to know about one kind (its test-side adapter)."""

    config: Callable[[str, int], dict[str, Any]]
    #: A customer's text message: (customer number, message number, text) → webhook.
    inbound: Callable[[int, int, str], Webhook]
    #: Signature headers for a webhook, right or wrong.
    sign: Callable[[Webhook, bool], dict[str, str]]
    #: The customer's address as the sandbox records it, and as an operator types it.
    address: Callable[[int], str]
    operator_address: Callable[[int], str]
    #: Recorded payloads: file name → (webhook, parsed messages, parsed statuses).
    recorded: dict[str, Callable[[], tuple[Webhook, list[InboundMessage], list[StatusUpdate]]]]
    #: Buttons in a sandbox-recorded outbound payload.
    buttons: Callable[[Any], int]
    #: The id the bot stores for a message the sandbox recorded (``messages.provider_message_id``).
    stored_id: Callable[[dict[str, Any]], str] = lambda sent: str(sent["message_id"])
    #: A status callback for a sent message, or None when the provider sends none.
    status: Callable[[dict[str, Any], str], Webhook] | None = None
    no_status_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ WhatsApp

WA_TEXT = json.loads((DATA / "whatsapp" / "text.json").read_text())


def _wa_phone(n: int) -> str:
    return f"1650555{n:04d}"


def wa_inbound(customer: int, message: int, text: str) -> Webhook:
    body = copy.deepcopy(WA_TEXT)
    value = body["entry"][0]["changes"][0]["value"]
    bsuid = f"US.{9000000000 + customer}"
    value["contacts"] = [
        {
            "profile": {"name": f"Customer {customer}"},
            "wa_id": _wa_phone(customer),
            "user_id": bsuid,
        }
    ]
    provider_id = f"wamid.contract-{customer}-{message}"
    value["messages"] = [
        {
            "from": _wa_phone(customer),
            "from_user_id": bsuid,
            "id": provider_id,
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": text},
        }
    ]
    return Webhook("/webhook", json.dumps(body).encode(), "application/json", provider_id)


def wa_sign(hook: Webhook, good: bool) -> dict[str, str]:
    secret = APP_SECRET if good else "not-the-app-secret"
    return {"X-Hub-Signature-256": whatsapp_bot.webhook.sign(hook.body, secret)}


def wa_recorded(
    name: str,
) -> Callable[[], tuple[Webhook, list[InboundMessage], list[StatusUpdate]]]:
    def load() -> tuple[Webhook, list[InboundMessage], list[StatusUpdate]]:
        raw = (DATA / "whatsapp" / name).read_bytes()
        messages, statuses = parse_payload(json.loads(raw))
        first = messages[0].provider_message_id if messages else ""
        return Webhook("/webhook", raw, "application/json", first), messages, statuses

    return load


def wa_buttons(payload: Any) -> int:
    action = (payload.get("interactive") or {}).get("action") or {}
    rows = sum(len(s.get("rows") or []) for s in action.get("sections") or [])
    return max(len(action.get("buttons") or []), 1 if rows else 0)


def wa_status(sent: dict[str, Any], status: str) -> Webhook:
    body = json.loads((DATA / "whatsapp" / "statuses.json").read_text())
    value = body["entry"][0]["changes"][0]["value"]
    value["statuses"] = [
        {
            "id": sent["message_id"],
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": sent["to"],
        }
    ]
    return Webhook("/webhook", json.dumps(body).encode(), "application/json")


WHATSAPP = ChannelFixture(
    config=lambda sandbox, port: {**wa_config(f"{sandbox}/graph", port=port), "id": BOT_ID},
    inbound=wa_inbound,
    sign=wa_sign,
    address=_wa_phone,
    operator_address=lambda n: "+" + _wa_phone(n),
    recorded={
        name: wa_recorded(name)
        for name in (
            "text.json",
            "button_reply.json",
            "list_reply.json",
            "audio.json",
            "image.json",
            "batched.json",
            "username_bsuid.json",
            "unknown_field.json",
            "statuses.json",
            "status_failed.json",
        )
    },
    buttons=wa_buttons,
    status=wa_status,
)

# ------------------------------------------------------------------------------ SMS (Twilio)

SMS_PUBLIC = f"https://sms.example.com/hooks/sms/{BOT_ID}"
SMS_ACCOUNT = "AC00000000000000000000000000000001"
SMS_TOKEN = "twilio-auth-token-for-tests"
SMS_NUMBER = "+15005550006"


def sms_config(sandbox: str, port: int) -> dict[str, Any]:
    return {
        "id": BOT_ID,
        "kind": "sms",
        "name": "SMS contract",
        "webhook_port": port,
        "account_sid": SMS_ACCOUNT,
        "auth_token": SMS_TOKEN,
        "from_number": SMS_NUMBER,
        "messaging_service_sid": "",
        "twilio_base_url": f"{sandbox}/twilio",
        "public_url": SMS_PUBLIC,
        "allowed_phones": [],
        "blocked_phones": [],
        "rate_limit_count": 0,
        "rate_limit_hours": 0,
        "funnel": None,
        "fallback_text": "FALLBACK: a person will answer soon.",
    }


def _sms_phone(n: int) -> str:
    return f"+1415555{n:04d}"


def _form(hook: Webhook) -> dict[str, str]:
    return dict(httpx.QueryParams(hook.body.decode()))


def sms_inbound(customer: int, message: int, text: str) -> Webhook:
    sid = f"SM{customer:04d}{message:04d}" + "0" * 24
    form = {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": text,
        "To": SMS_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": SMS_ACCOUNT,
        "From": _sms_phone(customer),
        "ApiVersion": "2010-04-01",
    }
    return Webhook("/webhook", urlencode(form).encode(), "application/x-www-form-urlencoded", sid)


def sms_sign(hook: Webhook, good: bool) -> dict[str, str]:
    token = SMS_TOKEN if good else "not-the-auth-token"
    url = f"{SMS_PUBLIC}{hook.path}"
    return {"X-Twilio-Signature": sms_bot.webhook.sign(url, _form(hook), token)}


def sms_recorded(
    name: str,
) -> Callable[[], tuple[Webhook, list[InboundMessage], list[StatusUpdate]]]:
    def load() -> tuple[Webhook, list[InboundMessage], list[StatusUpdate]]:
        raw = (DATA / "twilio" / name).read_text()
        form = dict(httpx.QueryParams(raw)) if name.endswith(".txt") else json.loads(raw)
        body = urlencode(form).encode()
        if name.startswith("status"):
            status = parse_status(form)
            hook = Webhook("/status", body, "application/x-www-form-urlencoded")
            return hook, [], [status] if status is not None else []
        message = parse_inbound(form)
        hook = Webhook(
            "/webhook", body, "application/x-www-form-urlencoded", message.provider_message_id
        )
        return hook, [message], []

    return load


def sms_status(sent: dict[str, Any], status: str) -> Webhook:
    sid = sent["message_id"]
    form = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": sent["to"],
        "MessageSid": sid,
        "AccountSid": SMS_ACCOUNT,
        "From": SMS_NUMBER,
        "ApiVersion": "2010-04-01",
    }
    return Webhook("/status", urlencode(form).encode(), "application/x-www-form-urlencoded")


SMS = ChannelFixture(
    config=sms_config,
    inbound=sms_inbound,
    sign=sms_sign,
    address=_sms_phone,
    operator_address=_sms_phone,
    recorded={
        name: sms_recorded(name)
        for name in (
            "inbound_sms.json",
            "inbound_mms.json",
            "inbound_digit.txt",
            "status_delivered.json",
            "status_undelivered.json",
        )
    },
    buttons=lambda payload: 0,
    status=sms_status,
)

# ------------------------------------------------------------------------------ Telegram

TG_TOKEN = "7000000001:AAH-contract-token_for-the-sandbox"
TG_SECRET = "contract-secret_for-tests"
TG_TEXT = json.loads((DATA / "telegram" / "message_text.json").read_text())


def tg_config(sandbox: str, port: int) -> dict[str, Any]:
    return {
        "id": BOT_ID,
        "kind": "telegram",
        "name": "Telegram contract",
        "webhook_port": port,
        "bot_token": TG_TOKEN,
        "webhook_secret": TG_SECRET,
        "telegram_api_base_url": f"{sandbox}/telegram",
        "public_url": f"https://tg.example.com/hooks/telegram/{BOT_ID}",
        "allowed_phones": [],
        "blocked_phones": [],
        "rate_limit_count": 0,
        "rate_limit_hours": 0,
        "funnel": None,
        "fallback_text": "FALLBACK: a person will answer soon.",
    }


def _tg_user(n: int) -> str:
    return str(700000000 + n)


def tg_inbound(customer: int, message: int, text: str) -> Webhook:
    body = copy.deepcopy(TG_TEXT)
    update_id = 900000000 + customer * 1000 + message
    body["update_id"] = update_id
    user = int(_tg_user(customer))
    body["message"]["from"].update(id=user, username=f"contract_{customer}")
    body["message"]["chat"].update(id=user, username=f"contract_{customer}")
    body["message"]["message_id"] = message
    body["message"]["date"] = int(time.time())
    body["message"]["text"] = text
    return Webhook(
        "/webhook", json.dumps(body).encode(), "application/json", f"update:{update_id}"
    )


def tg_sign(hook: Webhook, good: bool) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET if good else "not-the-secret"}


def tg_recorded(
    name: str,
) -> Callable[[], tuple[Webhook, list[InboundMessage], list[StatusUpdate]]]:
    def load() -> tuple[Webhook, list[InboundMessage], list[StatusUpdate]]:
        raw = (DATA / "telegram" / name).read_bytes()
        message = parse_update(json.loads(raw))
        messages = [message] if message is not None else []
        first = message.provider_message_id if message is not None else ""
        return Webhook("/webhook", raw, "application/json", first), messages, []

    return load


def tg_buttons(payload: Any) -> int:
    keyboard = (payload.get("reply_markup") or {}).get("inline_keyboard") or []
    return sum(len(row) for row in keyboard)


TELEGRAM = ChannelFixture(
    config=tg_config,
    inbound=tg_inbound,
    sign=tg_sign,
    address=_tg_user,
    operator_address=_tg_user,
    recorded={
        name: tg_recorded(name)
        for name in (
            "message_text.json",
            "callback_query.json",
            "contact.json",
            "document.json",
            "location.json",
            "photo.json",
            "start_command.json",
            "voice.json",
        )
    },
    buttons=tg_buttons,
    stored_id=lambda sent: f"{sent['to']}:{sent['message_id']}",
    no_status_reason="Telegram's Bot API reports no delivery status to a bot",
)

#: The test-side adapter of every kind; a registered kind without one fails the suite.
ADAPTERS: dict[str, ChannelFixture] = {"whatsapp": WHATSAPP, "sms": SMS, "telegram": TELEGRAM}


def adapter_for(kind: str) -> ChannelFixture:
    if kind not in ADAPTERS:
        pytest.fail(f"channel {kind!r} is registered but has no contract adapter in {__file__}")
    return ADAPTERS[kind]


# ------------------------------------------------------------------------------ running bot


class LoopThread:
    """An event loop in a thread, for the aiohttp sandbox and fake orchestrator."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningBot:
    kind: str
    fx: ChannelFixture
    url: str
    sandbox: str
    db: Path
    proc: subprocess.Popen[bytes]
    http: httpx.Client
    state: Any
    customers: Iterator[int]

    def post(self, hook: Webhook, headers: dict[str, str] | None) -> httpx.Response:
        sent = {"Content-Type": hook.content_type, **(headers or {})}
        return self.http.post(f"{self.url}{hook.path}", content=hook.body, headers=sent)

    def deliver(self, hook: Webhook) -> httpx.Response:
        return self.post(hook, self.fx.sign(hook, True))

    def sent_to(self, address: str, *, since: int = 0, wait: float = 0.0) -> list[dict[str, Any]]:
        provider = registry.get(self.kind).sandbox
        assert provider is not None
        res = self.http.get(
            f"{self.sandbox}/_sandbox/messages",
            params={
                "provider": provider.provider,
                "to": address,
                "since": since,
                "wait": wait,
            },
            timeout=wait + 10,
        )
        return res.json()["messages"]  # type: ignore[no-any-return]

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def wait_row(self, sql: str, *args: Any, timeout: float = 10.0) -> sqlite3.Row:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.rows(sql, *args)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no row for {sql} {args}")

    def control(self, path: str, body: dict[str, Any]) -> httpx.Response:
        token = mint_control_token(KEY, BOT_ID)
        return self.http.post(
            f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    def new_customer(self) -> int:
        return next(self.customers)


@pytest.fixture(scope="module", params=registry.kinds())
def bot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningBot]:
    kind: str = request.param
    fx = adapter_for(kind)
    manifest = registry.get(kind)
    tmp = tmp_path_factory.mktemp(f"contract-{kind}")
    loop = LoopThread()
    orch = FakeOrchestrator(config={}, instance_id=BOT_ID)
    sandbox_srv, fake_srv = loop.run(start_servers(orch))
    sandbox = str(sandbox_srv.make_url("")).rstrip("/")
    port = free_port()
    orch.config = fx.config(sandbox, port)
    env = {
        **os.environ,
        "BOT_INSTANCE_ID": BOT_ID,
        "BOT_KIND": kind,
        "BOT_INTERNAL_TOKEN": orch.token(),
        "BOT_CONTROL_KEY": KEY,
        "ORCHESTRATOR_URL": orch.url,
        "BOT_DATA_DIR": str(tmp),
        "BOT_PORT": str(port),
    }
    for name in ("WA_INSTANCE_ID", "FLOTILLA_PUBLIC_URL", "BOT_PUBLIC_URL"):
        env.pop(name, None)
    log = (tmp / "bot.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", manifest.module],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(timeout=20)
    try:
        deadline = time.monotonic() + 30
        token = mint_control_token(KEY, BOT_ID)
        while True:
            assert proc.poll() is None, (tmp / "bot.log").read_text()[-3000:]
            try:
                res = http.get(
                    f"{url}/control/health", headers={"Authorization": f"Bearer {token}"}
                )
                if res.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "bot did not become healthy"
            time.sleep(0.1)
        counter = iter(range(1, 10_000))
        yield RunningBot(
            kind,
            fx,
            url,
            sandbox,
            tmp / bot_db_filename(kind, BOT_ID),
            proc,
            http,
            sandbox_srv.app[STATE_KEY],
            counter,
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        http.close()
        loop.run(sandbox_srv.close())
        loop.run(fake_srv.close())
        loop.stop()


# ------------------------------------------------------------------------------ the contract


def test_every_registered_kind_has_a_contract_adapter() -> None:
    missing = [kind for kind in registry.kinds() if kind not in ADAPTERS]
    assert missing == [], f"kinds without a contract adapter: {missing}"


def test_signature_refused_and_nothing_stored(bot: RunningBot) -> None:
    customer = bot.new_customer()
    hook = bot.fx.inbound(customer, 1, "hi")
    assert bot.post(hook, None).status_code == 401
    assert bot.post(hook, bot.fx.sign(hook, False)).status_code == 403
    time.sleep(0.5)
    assert bot.rows("SELECT 1 FROM inbox WHERE provider_message_id = ?", hook.provider_id) == []
    assert bot.sent_to(bot.fx.address(customer)) == []
    # the same request, signed, is accepted (so the refusals above were the signature's)
    assert bot.deliver(hook).status_code == 200
    bot.wait_row("SELECT 1 FROM inbox WHERE provider_message_id = ?", hook.provider_id)


@pytest.mark.parametrize("kind", registry.kinds())
def test_recorded_payloads_parse_into_declared_identities(kind: str) -> None:
    fx = adapter_for(kind)
    schemes = set(registry.get(kind).identity_schemes)
    parsed_any = False
    for name, load in fx.recorded.items():
        _hook, messages, statuses = load()
        for message in messages:
            parsed_any = True
            assert message.provider_message_id, name
            assert message.customer.identities, name
            assert set(message.customer.identities) <= schemes, (name, message.customer)
        for status in statuses:
            assert status.provider_message_id, name
            assert status.status, name
    assert parsed_any


def test_recorded_payload_accepted_and_queued(bot: RunningBot) -> None:
    for name, load in bot.fx.recorded.items():
        hook, messages, _statuses = load()
        res = bot.deliver(hook)
        assert res.status_code == 200, (name, res.text)
        for message in messages:
            bot.wait_row(
                "SELECT 1 FROM inbox WHERE provider_message_id = ?", message.provider_message_id
            )


def test_redelivery_is_one_inbox_row_and_one_reply(bot: RunningBot) -> None:
    once, twice = bot.new_customer(), bot.new_customer()
    assert bot.deliver(bot.fx.inbound(once, 1, "hi")).status_code == 200
    hook = bot.fx.inbound(twice, 1, "hi")
    for _ in range(2):
        assert bot.deliver(hook).status_code == 200
    assert bot.sent_to(bot.fx.address(once), wait=10)
    assert bot.sent_to(bot.fx.address(twice), wait=10)
    time.sleep(1.0)
    assert bot.deliver(hook).status_code == 200  # a late third delivery too
    time.sleep(1.0)
    # the customer whose message came three times got what the one who wrote once got (each
    # greeted by the name the provider sent, where it sends one)
    expected = [
        m["text"].replace(f"Customer {once}", f"Customer {twice}")
        for m in bot.sent_to(bot.fx.address(once))
    ]
    assert [m["text"] for m in bot.sent_to(bot.fx.address(twice))] == expected
    rows = bot.rows(
        "SELECT COUNT(*) AS n FROM inbox WHERE provider_message_id = ?", hook.provider_id
    )
    assert rows[0]["n"] == 1


def test_replies_stay_within_the_channels_limits(bot: RunningBot) -> None:
    caps = registry.get(bot.kind).capabilities
    customer = bot.new_customer()
    address = bot.fx.address(customer)
    assert bot.deliver(bot.fx.inbound(customer, 1, "hi")).status_code == 200
    welcome = bot.sent_to(address, wait=10)
    assert welcome
    for message in welcome:
        assert len(message["text"] or "") <= caps.max_text
        if caps.max_buttons is not None:
            assert bot.fx.buttons(message["payload"]) <= caps.max_buttons
        else:
            assert bot.fx.buttons(message["payload"]) == 0
    # an operator message longer than two whole messages is split, each part within the limit
    words = [f"w{i}" for i in range(caps.max_text // 2)]
    text = " ".join(words)
    assert len(text) > 2 * caps.max_text
    res = bot.control("/control/send", {"to": bot.fx.operator_address(customer), "text": text})
    assert res.status_code in (200, 202), res.text
    deadline = time.monotonic() + 15
    parts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        parts = bot.sent_to(address, since=welcome[-1]["seq"], wait=2)
        if " ".join(p["text"] or "" for p in parts).split()[-1:] == [words[-1]]:
            break
    assert len(parts) >= 3
    assert all(len(p["text"] or "") <= caps.max_text for p in parts)
    assert " ".join(p["text"] or "" for p in parts).split() == words


def test_operator_send_goes_through_the_sandbox(bot: RunningBot) -> None:
    customer = bot.new_customer()
    address = bot.fx.address(customer)
    assert bot.deliver(bot.fx.inbound(customer, 1, "hi")).status_code == 200
    welcome = bot.sent_to(address, wait=10)
    res = bot.control(
        "/control/send",
        {"to": bot.fx.operator_address(customer), "text": "Hello from the operator"},
    )
    assert res.status_code in (200, 202), res.text
    assert res.json().get("outbox_id")
    sent = bot.sent_to(address, since=welcome[-1]["seq"], wait=10)
    assert [m["text"] for m in sent] == ["Hello from the operator"]
    row = bot.wait_row(
        "SELECT status FROM messages WHERE provider_message_id = ?", bot.fx.stored_id(sent[0])
    )
    assert row["status"] == "sent"


def test_status_callback_updates_delivery_status(bot: RunningBot) -> None:
    if bot.fx.status is None:
        assert bot.fx.no_status_reason
        pytest.skip(bot.fx.no_status_reason)
    customer = bot.new_customer()
    address = bot.fx.address(customer)
    assert bot.deliver(bot.fx.inbound(customer, 1, "hi")).status_code == 200
    sent = bot.sent_to(address, wait=10)[0]
    sql = "SELECT status FROM messages WHERE provider_message_id = ?"
    stored = bot.fx.stored_id(sent)
    assert bot.wait_row(sql, stored)["status"] == "sent"
    callback = bot.fx.status(sent, "delivered")
    assert bot.post(callback, bot.fx.sign(callback, False)).status_code == 403
    time.sleep(0.3)
    assert bot.rows(sql, stored)[0]["status"] == "sent"
    assert bot.deliver(callback).status_code == 200
    bot.wait_row(sql + " AND status = 'delivered'", stored)
