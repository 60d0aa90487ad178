"""A real ``python -m telegram_bot`` subprocess against the sandbox Bot API and a fake of the
internal routes (tests/botkit_support.py). The test plays Telegram: it posts updates with the
``X-Telegram-Bot-Api-Secret-Token`` header the bot registered through ``setWebhook``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shared.sandbox import STATE_KEY
from tests.botkit_support import FakeOrchestrator, start_servers
from tests.integration.test_sms_bot_process import db_rows
from tests.integration.test_wa_bot_process import KEY, free_port, wait_health

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "telegram"
TOKEN = "7000000001:AAH-test-token_for-the-sandbox"
SECRET = "s3cret-token_for-tests"
PUBLIC = "https://tg.example.com/hooks/telegram/support-bot"
USER = "521234567"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


def tg_config(sandbox: str, port: int) -> dict[str, Any]:
    return {
        "id": "support-bot",
        "kind": "telegram",
        "name": "Telegram support",
        "webhook_port": port,
        "bot_token": TOKEN,
        "webhook_secret": SECRET,
        "telegram_api_base_url": f"{sandbox}/telegram",
        "public_url": PUBLIC,
        "allowed_phones": [],
        "blocked_phones": [],
        "rate_limit_count": 0,
        "rate_limit_hours": 0,
        "funnel": None,
        "fallback_text": "FALLBACK: a person will answer soon.",
    }


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())  # type: ignore[no-any-return]


async def to_user(
    session: aiohttp.ClientSession, sandbox: str, *, since: int = 0, wait: float = 0.0
) -> list[dict[str, Any]]:
    params = {"provider": "telegram", "to": USER, "since": str(since), "wait": str(wait)}
    async with session.get(f"{sandbox}/_sandbox/messages", params=params) as r:
        return (await r.json())["messages"]  # type: ignore[no-any-return]


async def post_update(
    session: aiohttp.ClientSession, bot: str, body: dict[str, Any], secret: str | None = SECRET
) -> int:
    headers = {HEADER: secret} if secret is not None else {}
    async with session.post(f"{bot}/webhook", json=body, headers=headers) as r:
        return r.status


async def test_telegram_bot_process_end_to_end(tmp_path: Path) -> None:
    orch = FakeOrchestrator(config={})
    sandbox_srv, fake_srv = await start_servers(orch)
    sandbox = str(sandbox_srv.make_url("")).rstrip("/")
    state = sandbox_srv.app[STATE_KEY]
    port = free_port()
    orch.config = tg_config(sandbox, port)
    env = {
        **os.environ,
        "BOT_INSTANCE_ID": "support-bot",
        "BOT_KIND": "telegram",
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
        sys.executable, "-m", "telegram_bot", cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )
    bot = f"http://127.0.0.1:{port}"
    db = tmp_path / "telegram_bot_support-bot.db"
    try:
        async with aiohttp.ClientSession() as session:
            health = await wait_health(session, bot, proc)
            assert health["kind"] == "telegram"
            assert db.exists()

            # On start the bot registered its public webhook URL with the secret.
            for _ in range(50):
                if state.telegram_bot(TOKEN).webhook_url:
                    break
                await asyncio.sleep(0.1)
            assert state.telegram_bot(TOKEN).webhook_url == f"{PUBLIC}/webhook"
            assert state.telegram_bot(TOKEN).webhook_secret == SECRET

            # Secrets, redelivery, limits and sending: tests/contract.
            # 1. "hi" → one welcome with an inline keyboard.
            hello = load("message_text.json")
            assert await post_update(session, bot, hello) == 200
            welcome = await to_user(session, sandbox, wait=10)
            assert len(welcome) == 1
            assert "<b>Private AI</b>" in welcome[0]["text"]
            assert welcome[0]["payload"]["parse_mode"] == "HTML"
            keyboard = welcome[0]["payload"]["reply_markup"]["inline_keyboard"]
            assert [row[0]["callback_data"] for row in keyboard] == [
                "sales:quiz", "faq:menu", "tz:start",
            ]

            # 2. Pressing "FAQ" → the FAQ menu, and the press is answered.
            press = load("callback_query.json")
            press["callback_query"]["message"]["message_id"] = int(welcome[0]["message_id"])
            assert await post_update(session, bot, press) == 200
            faq = await to_user(session, sandbox, since=welcome[0]["seq"], wait=10)
            assert len(faq) == 1
            assert "Frequently asked questions" in faq[0]["text"]
            rows = faq[0]["payload"]["reply_markup"]["inline_keyboard"]
            assert rows[0][0]["callback_data"] == "faq:cat_product"
            for _ in range(50):
                answered = [
                    r for r in state.requests if r.path.endswith("/answerCallbackQuery")
                ]
                if answered:
                    break
                await asyncio.sleep(0.1)
            assert answered

            # 3. An authentic update the bot cannot read: 200 (Telegram must not stall) and
            #    a dead letter.
            assert await post_update(session, bot, load("unknown_shape.json")) == 200
            assert len(db_rows(db, "SELECT 1 FROM dead_letters")) == 1

            # The customer is keyed by their Telegram id, with username and name kept.
            (user,) = db_rows(
                db,
                "SELECT (SELECT value FROM identities WHERE user_id = u.id "
                "AND scheme = 'telegram_user'), (SELECT value FROM identities WHERE "
                "user_id = u.id AND scheme = 'username'), profile_name, (SELECT value FROM "
                "identities WHERE user_id = u.id AND scheme = 'phone') FROM users u",
            )
            assert tuple(user) == (USER, "anna_k", "Anna Kowalska", None)

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await sandbox_srv.close()
        await fake_srv.close()


def test_telegram_bot_never_imports_heavy_stacks() -> None:
    code = (
        "import sys, telegram_bot.__main__, telegram_bot.channel, shared.botkit.runtime\n"
        "bad = [m for m in ('torch', 'faiss', 'sentence_transformers', 'piper', 'fastapi',"
        " 'sqlmodel', 'sqlalchemy', 'numpy', 'openai', 'cryptography')"
        " if sys.modules.get(m) is not None]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
