"""The system under fire: a sandbox Graph API process, a real orchestrator process and its real
``whatsapp_bot`` subprocesses, plus a Meta-like webhook sender.

The sender behaves as Meta documents for Cloud API webhooks: every delivery is signed
(``X-Hub-Signature-256``) and anything but a 200 (or a connection error) is retried with a
back-off. Meta keeps retrying for 7 days; here every message has a deadline so a broken bot fails
the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from orchestrator.security import create_control_token
from tests.support.orchestrator_proc import REPO, SECRET_KEY, OrchestratorProcess, free_port

APP_SECRET = "faults-app-SECRET-4c1f9e"
VERIFY_TOKEN = "faults-verify-SECRET-77aa"
ACCESS_TOKEN = "EAAG-faults-access-SECRET-0b3d"
WABA_ID = "102290129340398"
#: Every secret the fault suite configures; none may show up in a log or a response.
SECRETS = (APP_SECRET, VERIFY_TOKEN, ACCESS_TOKEN)


class SandboxProcess:
    """``python -m shared.sandbox`` on a free port (its own process, so it has its own core)."""

    def __init__(self, root: Path, seed: int = 7) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "sandbox.log"
        self.seed = seed
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self, timeout: float = 15) -> SandboxProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shared.sandbox", "--port", str(self.port),
             "--seed", str(self.seed), "--log-level", "WARNING"],
            cwd=REPO, stdout=log, stderr=log, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/_sandbox/health").status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError("sandbox did not start")

    def reset(self) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()

    def add_fault(self, **rule: Any) -> None:
        self.http.post("/_sandbox/faults", json=rule).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_sandbox/faults").raise_for_status()

    def register_status_webhook(self, phone_number_id: str, url: str, app_secret: str) -> None:
        """Have the sandbox send Meta-like status webhooks of this number to ``url``."""
        self.http.post("/_sandbox/webhooks", json={
            "provider": "graph", "phone_number_id": phone_number_id, "url": url,
            "app_secret": app_secret, "waba_id": WABA_ID,
        }).raise_for_status()

    def webhook_stats(self) -> dict[str, Any]:
        """The sandbox's status-webhook delivery counters."""
        res = self.http.get("/_sandbox/webhooks")
        res.raise_for_status()
        return res.json()["stats"]  # type: ignore[no-any-return]

    def messages(self, sender: str) -> list[dict[str, Any]]:
        """Accepted outbound Graph messages a bot (its ``phone_number_id``) sent."""
        res = self.http.get("/_sandbox/messages", params={"provider": "graph"})
        res.raise_for_status()
        return [m for m in res.json()["messages"] if m["sender"] == sender]

    def requests(self) -> list[dict[str, Any]]:
        res = self.http.get("/_sandbox/requests", params={"provider": "graph", "limit": 1_000_000})
        res.raise_for_status()
        return res.json()["requests"]  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.http.close()


@dataclass
class Bot:
    """A WhatsApp bot instance running under the orchestrator."""

    orch: OrchestratorProcess
    id: str
    phone_number_id: str
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self) -> dict[str, Any]:
        return self.orch.status("whatsapp", self.id)

    @property
    def log_path(self) -> Path:
        return self.orch.root / "logs" / f"whatsapp_bot_{self.id}.log"

    def log_events(self) -> list[dict[str, Any]]:
        """The bot's JSON log lines (its own and the supervisor's)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append(item)
        return out

    def db_summary(self) -> str:
        """Inbox and outbox rows by state, read from the bot's SQLite file (read-only)."""
        path = self.orch.root / "data" / f"wa_sales_{self.id}.db"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            inbox = con.execute("SELECT state, COUNT(*) FROM inbox GROUP BY state").fetchall()
            outbox = con.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        finally:
            con.close()
        return f"inbox {dict(inbox)}, outbox {dict(outbox)}"

    def recovery_summary(self) -> str:
        """What the restarts had to recover: inbox rows replayed, outbox rows interrupted
        mid-send (held for the provider's confirmation), and how many of those the provider's
        status webhooks settled without sending again."""
        replayed = held = confirmed = 0
        for event in self.log_events():
            if event.get("msg") == "replaying unhandled inbox rows":
                replayed += int(event.get("count", 0))
            if event.get("msg") == "outbox rows interrupted by a crash settled":
                held += int(event.get("resent", 0))
            if event.get("msg") == "reply sent" and int(event.get("parts_skipped") or 0) > 0:
                confirmed += 1
        return (f"inbox rows replayed {replayed}, outbox rows interrupted mid-send {held}, "
                f"settled by provider confirmation without resending {confirmed}")

    def health(self) -> dict[str, Any] | None:
        """The bot's ``/control/health`` with a control token of its current generation."""
        token = create_control_token(
            SECRET_KEY, instance_id=self.id, gen=self.orch.spawn_generation(self.id)
        )
        try:
            res = httpx.get(f"{self.url}/control/health", timeout=5,
                            headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError:
            return None
        return res.json() if res.status_code == 200 else None  # type: ignore[no-any-return]


def start_bot(
    orch: OrchestratorProcess, sandbox: SandboxProcess, name: str, **extra: Any
) -> Bot:
    """Create a WhatsApp bot wired to the sandbox, start it and wait until it runs."""
    phone_number_id = str(100_000_000_000 + free_port())
    created = orch.create_bot(
        name=name,
        phone_number_id=phone_number_id,
        waba_id=WABA_ID,
        access_token=ACCESS_TOKEN,
        verify_token=VERIFY_TOKEN,
        app_secret=APP_SECRET,
        graph_api_base_url=f"{sandbox.url}/graph",
        **extra,
    )
    bot = Bot(orch, created["id"], phone_number_id)
    res = orch.api("POST", f"/admin/whatsapp/instances/{bot.id}/start")
    assert res.status_code == 200, res.text
    st = orch.wait_state("whatsapp", bot.id, "running", timeout=30)
    bot.port = int(st["port"])
    # Status webhooks flow as on Meta: the bot learns which sends were accepted even when it
    # died before reading the answer (biz_opaque_callback_data carries the outbox row's tag).
    sandbox.register_status_webhook(phone_number_id, f"{bot.url}/webhook", APP_SECRET)
    return bot


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    """``X-Hub-Signature-256`` of a raw body."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def customer_phone(scenario: int, n: int) -> str:
    """A distinct E.164-looking number (digits only, as Meta sends ``from``) per message."""
    return f"1555{scenario:02d}{n:05d}"


def inbound_payload(phone: str, wamid: str, text: str, phone_number_id: str) -> bytes:
    """A Cloud API ``messages`` webhook body for one text message, as Meta sends it."""
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881",
                         "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": f"Customer {phone[-5:]}"}, "wa_id": phone}],
            "messages": [{"from": phone, "id": wamid, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}],
        }}]}],
    }
    return json.dumps(body).encode()


@dataclass
class SenderStats:
    """What the sender saw: deliveries, attempts, answers by status, and give-ups."""

    deliveries: int = 0
    attempts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    gave_up: list[str] = field(default_factory=list)
    #: monotonic times of non-200 answers and connection errors (bot down windows).
    failures_at: list[float] = field(default_factory=list)
    ok_at: list[float] = field(default_factory=list)
    #: monotonic time of the 200 that ended each delivery, by message id (the last one wins).
    ok_by_id: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (f"{self.deliveries} deliveries in {self.attempts} attempts ({codes}); "
                f"{len(self.gave_up)} given up")


class MetaSender:
    """Delivers signed webhooks and retries every non-200 and connection error, as Meta does.

    Args:
        url: the bot's ``/webhook`` URL (may be read again on every attempt, see ``url_of``).
        concurrency: deliveries in flight at once.
        deadline_s: how long one delivery is retried before the sender gives up.
    """

    def __init__(self, url: str, *, concurrency: int = 32, deadline_s: float = 90.0) -> None:
        self.url = url
        self.deadline_s = deadline_s
        self.stats = SenderStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MetaSender:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10),
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def deliver(self, raw: bytes, wamid: str, *, delay_s: float = 0.0) -> bool:
        """Deliver one body until it is answered 200; return False when the deadline passed."""
        assert self._session is not None
        if delay_s:
            await asyncio.sleep(delay_s)
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw)}
        self.stats.deliveries += 1
        deadline = time.monotonic() + self.deadline_s
        backoff = 0.05
        while True:
            async with self._slots:
                self.stats.attempts += 1
                try:
                    async with self._session.post(self.url, data=raw, headers=headers) as res:
                        await res.read()
                        status = str(res.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
            self.stats.statuses[status] += 1
            if status == "200":
                self.stats.ok_at.append(time.monotonic())
                self.stats.ok_by_id[wamid] = self.stats.ok_at[-1]
                return True
            self.stats.failures_at.append(time.monotonic())
            if time.monotonic() + backoff > deadline:
                self.stats.gave_up.append(wamid)
                return False
            await asyncio.sleep(backoff)
            backoff = min(1.0, backoff * 2)


def count_replies(
    messages: Iterable[dict[str, Any]], expected: dict[str, int]
) -> tuple[int, int, Counter[str]]:
    """Compare replies per customer with what each customer should have got.

    Returns:
        ``(lost, doubled, per_customer)``: customers short of their replies count as lost
        messages, surplus replies count as doubled.
    """
    per_customer: Counter[str] = Counter(m["to"] for m in messages)
    lost = sum(max(0, n - per_customer.get(to, 0)) for to, n in expected.items())
    doubled = sum(max(0, per_customer.get(to, 0) - expected.get(to, 0)) for to in per_customer)
    return lost, doubled, per_customer


def wait_replies(
    sandbox: SandboxProcess,
    bot: Bot,
    expected: dict[str, int],
    *,
    timeout: float,
    settle_s: float = 2.0,
) -> list[dict[str, Any]]:
    """Wait until every customer has its replies and the bot's inbox and outbox are empty, then
    keep watching for ``settle_s`` more so late doubles are counted too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lost, _doubled, _ = count_replies(sandbox.messages(bot.phone_number_id), expected)
        health = bot.health() if lost == 0 else None
        if lost == 0 and health and not health["inbox_pending"] and not health["outbox_pending"]:
            break
        time.sleep(0.25)
    time.sleep(settle_s)
    return sandbox.messages(bot.phone_number_id)


def scan_for_secrets(paths: Iterable[Path], secrets: Iterable[str] = SECRETS) -> list[str]:
    """Return ``file: secret`` for every test secret found in the given files."""
    found = []
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found += [f"{path.name}: {s[:6]}…" for s in secrets if s in text]
    return found
