"""A real ``python -m whatsapp_bot`` subprocess against the sandbox Graph API and a fake of the
three internal routes (the orchestrator-backed end-to-end test comes with the orchestrator)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shared.tokens import mint_control_token
from tests.botkit_support import APP_SECRET, FakeOrchestrator, start_servers, wa_config
from whatsapp_bot.webhook import sign

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "whatsapp"
KEY = "ef" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh(name: str) -> bytes:
    """A recorded payload as Meta would deliver it now (inside the 24-hour window)."""
    body = json.loads((DATA / name).read_text())
    for entry in body["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(int(time.time()))
    return json.dumps(body).encode()


async def wait_health(
    session: aiohttp.ClientSession, url: str, proc: asyncio.subprocess.Process, timeout: float = 15
) -> dict[str, Any]:
    token = mint_control_token(KEY, "support-bot")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.returncode is None, "bot exited early"
        try:
            async with session.get(
                f"{url}/control/health", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                if r.status == 200:
                    return await r.json()  # type: ignore[no-any-return]
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("bot did not become healthy")


async def sandbox_messages(
    session: aiohttp.ClientSession, sandbox: str, to: str, wait: float = 0.0
) -> list[dict[str, Any]]:
    async with session.get(
        f"{sandbox}/_sandbox/messages", params={"provider": "graph", "to": to, "wait": str(wait)}
    ) as r:
        return (await r.json())["messages"]  # type: ignore[no-any-return]


async def test_bot_process_end_to_end(tmp_path: Path) -> None:
    orch = FakeOrchestrator(config={})
    sandbox_srv, fake_srv = await start_servers(orch)
    sandbox = str(sandbox_srv.make_url("")).rstrip("/")
    port = free_port()
    orch.config = wa_config(f"{sandbox}/graph", port=port)
    env = {
        **os.environ,
        "BOT_INSTANCE_ID": "support-bot",
        "BOT_KIND": "whatsapp",
        "BOT_INTERNAL_TOKEN": orch.token(),
        "BOT_CONTROL_KEY": KEY,
        "ORCHESTRATOR_URL": orch.url,
        "BOT_DATA_DIR": str(tmp_path),
        "BOT_PORT": str(port),
    }
    env.pop("WA_INSTANCE_ID", None)
    log = (tmp_path / "bot.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "whatsapp_bot",
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    bot = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            health = await wait_health(session, bot, proc)
            assert health["pid"] == proc.pid
            assert health["kind"] == "whatsapp"
            assert (tmp_path / "wa_sales_support-bot.db").exists()

            # Signatures, redelivery, limits, sending and statuses: tests/contract.
            raw = fresh("text.json")
            headers = {"X-Hub-Signature-256": sign(raw, APP_SECRET)}
            async with session.post(f"{bot}/webhook", data=raw, headers=headers) as r:
                assert r.status == 200
            assert await sandbox_messages(session, sandbox, "16505551234", wait=5)

            raw_u = fresh("username_bsuid.json")
            async with session.post(
                f"{bot}/webhook",
                data=raw_u,
                headers={"X-Hub-Signature-256": sign(raw_u, APP_SECRET)},
            ) as r:
                assert r.status == 200
            to_bsuid = await sandbox_messages(session, sandbox, "BR.1502576394655843", wait=5)
            assert to_bsuid
            assert to_bsuid[0]["payload"]["recipient"] == "BR.1502576394655843"

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # Wait without blocking the loop: the fake orchestrator must answer the bot's "stopping".
        assert await asyncio.wait_for(proc.wait(), 5) == 0
        assert time.monotonic() - started < 3.5
        types = [e["type"] for e in orch.events]
        assert types[0] == "started"
        assert types[-1] == "stopping"
        lines = (tmp_path / "bot.log").read_text().splitlines()
        parsed = [json.loads(line) for line in lines if line.startswith("{")]
        assert parsed
        assert all(p.get("bot_id") == "support-bot" for p in parsed)
        assert any(p.get("provider_message_id") for p in parsed)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await sandbox_srv.close()
        await fake_srv.close()


def test_bot_never_imports_heavy_stacks() -> None:
    code = (
        "import sys, whatsapp_bot.__main__, whatsapp_bot.channel, shared.botkit.runtime\n"
        # a None entry is the bot's import guard: the package was blocked, not loaded
        "bad = [m for m in ('torch', 'faiss', 'sentence_transformers', 'piper', 'fastapi',"
        " 'sqlmodel', 'sqlalchemy', 'numpy', 'openai', 'cryptography')"
        " if sys.modules.get(m) is not None]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
