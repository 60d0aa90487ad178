"""Follow-up sequences end to end: a real ``python -m sms_bot`` subprocess started with
``FLOTILLA_TEST_CLOCK=1``, the real sandbox Twilio API and the fake internal routes
(tests/botkit_support.py). Time moves through the bot's test-only ``/control/clock``; customers
write through ``/control/simulate``; what reaches the customer is counted at the sandbox.

- a lead goes silent → touches 1…5 at 24/72/168/336/720 h (none a minute early);
- a lead who answers after touch 2 → sequence stopped with ``stop_reason = answered`` and its
  touch 3 never sent; an operator then stops the next sequence by hand;
- ``STOP`` → opted out: a confirmation, then nothing proactive ever.

The clock route is refused unless the switch is set (in-process check at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from shared.botkit import build_app
from shared.tokens import mint_control_token
from tests.botkit_support import FakeOrchestrator, make_harness, start_servers, wa_config
from tests.integration.test_sms_bot_process import sms_config
from tests.integration.test_wa_bot_process import KEY, free_port, wait_health

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HOURS = [24, 72, 168, 336, 720]
SILENT = "+14155550123"
ANSWERS = "+14155550124"
STOPS = "+14155550125"


@dataclass
class Bot:
    url: str
    sandbox: str
    session: aiohttp.ClientSession
    provider: str = "twilio"
    moved_s: float = 0.0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_control_token(KEY, 'support-bot')}"}

    async def say(self, phone: str, text: str) -> None:
        async with self.session.post(
            f"{self.url}/control/simulate",
            headers=self.headers,
            json={"from": phone, "text": text},
        ) as r:
            assert r.status == 202, await r.text()

    async def clock_to(self, hours: float, *, minus_s: float = 0.0) -> None:
        """Move the bot's clock so that ``hours`` (minus ``minus_s``) have passed since t0."""
        target = hours * 3600 - minus_s
        async with self.session.post(
            f"{self.url}/control/clock",
            headers=self.headers,
            json={"advance_s": target - self.moved_s},
        ) as r:
            assert r.status == 200, await r.text()
        self.moved_s = target

    async def sms(self, phone: str, since: int = 0, wait: float = 0.0) -> list[dict[str, Any]]:
        to = phone.lstrip("+") if self.provider == "graph" else phone
        params = {"provider": self.provider, "to": to, "since": str(since), "wait": str(wait)}
        async with self.session.get(f"{self.sandbox}/_sandbox/messages", params=params) as r:
            return (await r.json())["messages"]  # type: ignore[no-any-return]

    async def texts(self, phone: str) -> list[str]:
        return [m["text"] for m in await self.sms(phone)]

    async def wait_texts(self, phone: str, count: int, timeout: float = 10.0) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            texts = await self.texts(phone)
            if len(texts) >= count or asyncio.get_running_loop().time() > deadline:
                return texts
            await asyncio.sleep(0.05)

    async def followups(self, phone: str) -> dict[str, Any]:
        async with self.session.get(
            f"{self.url}/control/followups", headers=self.headers, params={"to": phone}
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()  # type: ignore[no-any-return]


FOLLOWUPS = {
    "enabled": True,
    "touches": [{"after_hours": h, "text": f"touch {i + 1}"} for i, h in enumerate(HOURS)],
    "quiet_start": "00:00",  # no quiet hours: the real time of day must not matter here
    "quiet_end": "00:00",
}


@contextlib.asynccontextmanager
async def run_bot(tmp_path: Path, kind: str) -> AsyncIterator[Bot]:
    """A ``python -m {kind}_bot`` subprocess with the test clock, wired to the sandbox."""
    orch = FakeOrchestrator(config={})
    sandbox_srv, fake_srv = await start_servers(orch)
    sandbox = str(sandbox_srv.make_url("")).rstrip("/")
    port = free_port()
    if kind == "sms":
        orch.config = sms_config(sandbox, port)
    else:
        orch.config = wa_config(
            f"{sandbox}/graph",
            port=port,
            wa_template_name="checkin_v1",
            wa_template_params="{text}",
        )
    orch.config["followups"] = FOLLOWUPS
    env = {
        **os.environ,
        "BOT_INSTANCE_ID": "support-bot",
        "BOT_KIND": kind,
        "BOT_INTERNAL_TOKEN": orch.token(),
        "BOT_CONTROL_KEY": KEY,
        "ORCHESTRATOR_URL": orch.url,
        "BOT_DATA_DIR": str(tmp_path),
        "BOT_PORT": str(port),
        "FLOTILLA_TEST_CLOCK": "1",
    }
    for name in ("WA_INSTANCE_ID", "FLOTILLA_PUBLIC_URL", "BOT_PUBLIC_URL"):
        env.pop(name, None)
    log = (tmp_path / "bot.log").open("wb")
    module = "sms_bot" if kind == "sms" else "whatsapp_bot"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}"
            await wait_health(session, url, proc)
            yield Bot(
                url=url,
                sandbox=sandbox,
                session=session,
                provider="twilio" if kind == "sms" else "graph",
            )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await sandbox_srv.close()
        await fake_srv.close()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with run_bot(tmp_path, "sms") as running:
        yield running


async def test_touches_stop_on_answer_and_opt_out(bot: Bot) -> None:
    for phone in (SILENT, ANSWERS, STOPS):
        await bot.say(phone, "hi")
        assert len(await bot.wait_texts(phone, 1)) == 1  # the welcome
    await bot.say(STOPS, "STOP")
    stops = await bot.wait_texts(STOPS, 2)
    assert "won't get any more reminders" in stops[1]

    for number, hours in enumerate(HOURS, start=1):
        await bot.clock_to(hours, minus_s=60)  # a minute early: nothing
        await asyncio.sleep(0.4)
        assert len(await bot.texts(SILENT)) == number
        await bot.clock_to(hours)
        texts = await bot.wait_texts(SILENT, number + 1)
        assert texts[1:] == [f"touch {n}" for n in range(1, number + 1)]
        if number <= 2:
            # the second lead's touch is due at the same moment; an SMS number sends 1
            # message/s, so it goes out a second later (paced): wait for it before moving on
            got = await bot.wait_texts(ANSWERS, number + 1)
            assert got[1:] == [f"touch {n}" for n in range(1, number + 1)]
        if number == 2:
            # the second lead answers after touch 2
            await bot.say(ANSWERS, "sorry, busy this week")
            assert len(await bot.wait_texts(ANSWERS, 4)) == 4  # the bot's reply
            state = await bot.followups(ANSWERS)
            first = state["sequences"][0]
            assert first["status"] == "stopped"
            assert first["stop_reason"] == "answered"
            assert first["touches_sent"] == 2
            # the bot's reply started a new sequence; the operator stops it by hand
            async with bot.session.post(
                f"{bot.url}/control/followups/stop", headers=bot.headers, json={"to": ANSWERS}
            ) as r:
                assert r.status == 200
                stopped = await r.json()
            assert stopped["stopped"] is True
            assert stopped["sequence"]["stop_reason"] == "stopped_by_operator"

    await asyncio.sleep(0.5)
    silent = await bot.followups(SILENT)
    assert silent["sequences"][0]["status"] == "completed"
    assert silent["sequences"][0]["touches_sent"] == 5
    assert [j["status"] for j in silent["jobs"]] == ["done"] * 5
    assert len(await bot.texts(SILENT)) == 6  # welcome + 5 touches, each once
    # the answering lead got touches 1-2, the bot's reply, and nothing after
    answers = await bot.texts(ANSWERS)
    assert answers[1:3] == ["touch 1", "touch 2"]
    assert len(answers) == 4
    assert "touch 3" not in answers
    third = [j for j in (await bot.followups(ANSWERS))["jobs"] if j["dedupe_key"].endswith(":3")]
    assert [j["status"] for j in third] == ["skipped"]
    # the opted-out customer never got a touch
    state = await bot.followups(STOPS)
    assert state["opted_out"]["reason"] == "keyword"
    # its sequence (started by the welcome) ended with the opt-out, before any touch
    assert [(q["stop_reason"], q["touches_sent"]) for q in state["sequences"]] == [
        ("opted_out", 0)
    ]
    assert len(await bot.texts(STOPS)) == 2


async def test_clock_route_is_refused_without_the_switch(tmp_path: Path) -> None:
    async for h in make_harness(tmp_path):
        server = TestServer(build_app(h.ctx), host="127.0.0.1")
        await server.start_server()
        try:
            url = str(server.make_url("/control/clock"))
            headers = {"Authorization": f"Bearer {mint_control_token('ab' * 32, 'support-bot')}"}
            async with h.http.post(url, json={"advance_s": 86400}, headers=headers) as r:
                assert r.status == 403
                assert "FLOTILLA_TEST_CLOCK=1" in (await r.json())["detail"]
            async with h.http.post(url, json={"advance_s": 86400}) as r:
                assert r.status == 401  # and no token at all: not even looked at
        finally:
            await server.close()


async def test_clock_route_checks_its_input(bot: Bot) -> None:
    url = f"{bot.url}/control/clock"
    for body in (
        {"advance_s": -5},
        {"advance_s": "soon"},
        {"advance_s": True},
        {"advance_s": 10**12},
    ):
        async with bot.session.post(url, headers=bot.headers, json=body) as r:
            assert r.status == 422, body
    async with bot.session.post(url, headers=bot.headers, data=b"not json") as r:
        assert r.status == 400
    async with bot.session.get(
        f"{bot.url}/control/followups", headers=bot.headers, params={"to": "+19999999999"}
    ) as r:
        assert r.status == 404
    async with bot.session.post(
        f"{bot.url}/control/followups/stop", headers=bot.headers, json={"to": "x" * 500}
    ) as r:
        assert r.status == 422


async def test_whatsapp_touches_outside_the_24_hour_window_use_the_template(
    tmp_path: Path,
) -> None:
    """A WhatsApp lead silent for a day is past the customer-service window: every touch goes
    out as the configured template, once each."""
    async with run_bot(tmp_path, "whatsapp") as wa:
        await wa.say(SILENT, "hi")
        assert len(await wa.wait_texts(SILENT, 1)) == 1  # the welcome, free-form
        for number, hours in enumerate(HOURS, start=1):
            await wa.clock_to(hours)
            assert len(await wa.wait_texts(SILENT, number + 1)) == number + 1
        await asyncio.sleep(0.5)
        sent = await wa.sms(SILENT)
        assert len(sent) == 6
        assert [m["text"] for m in sent[1:]] == ["checkin_v1"] * 5
        assert {m["payload"]["type"] for m in sent[1:]} == {"template"}
        # each template carries its touch's text as the body parameter
        params = [
            m["payload"]["template"]["components"][0]["parameters"][0]["text"] for m in sent[1:]
        ]
        assert params == [f"touch {n}" for n in range(1, 6)]
        state = await wa.followups(SILENT)
        assert state["sequences"][0]["status"] == "completed"
