"""A real ``python -m sms_bot`` subprocess against the sandbox Twilio API (driven by the real
``twilio`` SDK inside the bot) and a fake of the internal routes (tests/botkit_support.py).

Twilio's side is played by the test: it posts form-encoded webhooks signed with the ``twilio``
library's ``RequestValidator`` over the bot's *public* URL, which differs from the address the
bot listens on, as behind the orchestrator's ``/hooks`` ingress or a reverse proxy.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from sms_bot.webhook import sign
from tests.botkit_support import FakeOrchestrator, start_servers
from tests.integration.test_wa_bot_process import KEY, free_port, wait_health

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC00000000000000000000000000000001"
AUTH_TOKEN = "twilio-auth-token-for-tests"
PUBLIC = "https://sms.example.com/hooks/sms/support-bot"
CUSTOMER = "+14155550123"
BOT_NUMBER = "+15005550006"


def sms_config(sandbox: str, port: int) -> dict[str, Any]:
    return {
        "id": "support-bot",
        "kind": "sms",
        "name": "SMS support",
        "webhook_port": port,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": BOT_NUMBER,
        "messaging_service_sid": "",
        "twilio_base_url": f"{sandbox}/twilio",
        "public_url": PUBLIC,
        "allowed_phones": [],
        "blocked_phones": [],
        "rate_limit_count": 0,
        "rate_limit_hours": 0,
        "funnel": None,
        "fallback_text": "FALLBACK: a person will answer soon.",
    }


def inbound(sid: str, body: str, sender: str = CUSTOMER) -> dict[str, str]:
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": BOT_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


async def post_signed(
    session: aiohttp.ClientSession, bot: str, path: str, form: dict[str, str],
    token: str = AUTH_TOKEN,
) -> aiohttp.ClientResponse:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(f"{PUBLIC}{path}", form, token),
    }
    async with session.post(f"{bot}{path}", data=urlencode(form), headers=headers) as r:
        await r.read()
        return r


async def sms_to(
    session: aiohttp.ClientSession, sandbox: str, *, since: int = 0, wait: float = 0.0
) -> list[dict[str, Any]]:
    params = {"provider": "twilio", "to": CUSTOMER, "since": str(since), "wait": str(wait)}
    async with session.get(f"{sandbox}/_sandbox/messages", params=params) as r:
        return (await r.json())["messages"]  # type: ignore[no-any-return]


def db_rows(db: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


async def test_sms_bot_process_end_to_end(tmp_path: Path) -> None:
    orch = FakeOrchestrator(config={})
    sandbox_srv, fake_srv = await start_servers(orch)
    sandbox = str(sandbox_srv.make_url("")).rstrip("/")
    port = free_port()
    orch.config = sms_config(sandbox, port)
    env = {
        **os.environ,
        "BOT_INSTANCE_ID": "support-bot",
        "BOT_KIND": "sms",
        "BOT_INTERNAL_TOKEN": orch.token(),
        "BOT_CONTROL_KEY": KEY,
        "ORCHESTRATOR_URL": orch.url,
        "BOT_DATA_DIR": str(tmp_path),
        "BOT_PORT": str(port),
    }
    for name in ("WA_INSTANCE_ID", "FLOTILLA_PUBLIC_URL", "BOT_PUBLIC_URL"):
        env.pop(name, None)
    log = (tmp_path / "bot.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sms_bot", cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )
    bot = f"http://127.0.0.1:{port}"
    db = tmp_path / "sms_bot_support-bot.db"
    try:
        async with aiohttp.ClientSession() as session:
            health = await wait_health(session, bot, proc)
            assert health["kind"] == "sms"
            assert db.exists()

            # Signatures, redelivery, limits, sending and status callbacks: tests/contract.
            # 1. "hi" → one numbered welcome SMS.
            hello = inbound("SM" + "a" * 32, "hi")
            r = await post_signed(session, bot, "/webhook", hello)
            assert r.status == 200
            assert r.content_type == "text/xml"
            welcome = await sms_to(session, sandbox, wait=10)
            assert len(welcome) == 1
            body = welcome[0]["text"]
            assert "1. Find my solution" in body
            assert "2. FAQ" in body
            assert "3. Write a spec" in body
            assert "*" not in body  # *bold* markers stripped
            assert welcome[0]["payload"]["From"] == BOT_NUMBER
            # the callback names the outbox row and part, so Twilio's callback confirms it
            assert welcome[0]["payload"]["StatusCallback"] == f"{PUBLIC}/status?ob=ob:1:0"

            # 2. The customer answers "2" → option 2 of the welcome: the FAQ menu.
            r = await post_signed(session, bot, "/webhook", inbound("SM" + "b" * 32, "2"))
            assert r.status == 200
            faq = await sms_to(session, sandbox, since=welcome[0]["seq"], wait=10)
            assert len(faq) == 1
            assert "Frequently asked questions" in faq[0]["text"]
            assert "1. Product" in faq[0]["text"]
            assert "4. Main menu" in faq[0]["text"]

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
        assert [e["type"] for e in orch.events][0] == "started"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await sandbox_srv.close()
        await fake_srv.close()


def test_sms_bot_never_imports_heavy_stacks() -> None:
    code = (
        "import sys, sms_bot.__main__, sms_bot.channel, shared.botkit.runtime\n"
        "bad = [m for m in ('torch', 'faiss', 'sentence_transformers', 'piper', 'fastapi',"
        " 'sqlmodel', 'sqlalchemy', 'numpy', 'openai', 'cryptography')"
        " if sys.modules.get(m) is not None]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
