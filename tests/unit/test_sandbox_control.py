"""The sandbox's control API: faults, reset, seeding, long-poll, bounds, CLI."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from shared.sandbox import Sandbox, start_sandbox

REPO = Path(__file__).resolve().parents[2]
TOKEN = "9000001:sandbox"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send_telegram(http: aiohttp.ClientSession, base: str, text: str = "hi") -> int:
    url = f"{base}/telegram/bot{TOKEN}/sendMessage"
    async with http.post(url, json={"chat_id": 1, "text": text}) as resp:
        return resp.status


async def send_graph(http: aiohttp.ClientSession, base: str) -> int:
    payload = {"messaging_product": "whatsapp", "to": "+1555", "text": {"body": "hi"}}
    async with http.post(
        f"{base}/graph/v21.0/1/messages", json=payload, headers={"Authorization": "Bearer t"}
    ) as resp:
        return resp.status


async def add_fault(http: aiohttp.ClientSession, base: str, **spec: Any) -> dict[str, Any]:
    async with http.post(f"{base}/_sandbox/faults", json=spec) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def get_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_health(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    health = await get_json(http, f"{sandbox.url}/_sandbox/health")
    assert health["status"] == "ok"


async def test_count_fault_expires_after_n_requests(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await add_fault(http, sandbox.url, provider="telegram", mode="500", count=2)

    statuses = [await send_telegram(http, sandbox.url) for _ in range(4)]

    assert statuses == [500, 500, 200, 200]
    assert (await get_json(http, f"{sandbox.url}/_sandbox/faults"))["faults"] == []
    logged = (await get_json(http, f"{sandbox.url}/_sandbox/requests"))["requests"]
    assert [(r["status"], r["fault"]) for r in logged] == [
        (500, "500"),
        (500, "500"),
        (200, None),
        (200, None),
    ]


async def test_fault_without_count_stays_until_deleted(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await add_fault(http, sandbox.url, provider="graph", mode="429")
    assert [await send_graph(http, sandbox.url) for _ in range(3)] == [429, 429, 429]

    async with http.delete(f"{sandbox.url}/_sandbox/faults") as resp:
        assert (await resp.json())["removed"] == 1
    assert await send_graph(http, sandbox.url) == 200


async def test_faults_only_hit_their_provider(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await add_fault(http, sandbox.url, provider="graph", mode="500")
    assert await send_telegram(http, sandbox.url) == 200
    assert await send_graph(http, sandbox.url) == 500


async def test_path_filter_limits_a_fault_to_one_method(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await add_fault(http, sandbox.url, provider="telegram", mode="500", method="sendVoice")
    assert await send_telegram(http, sandbox.url) == 200


async def test_rate_faults_are_reproducible_with_a_seed(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    async def pattern() -> list[int]:
        async with http.post(f"{sandbox.url}/_sandbox/reset") as resp:
            assert resp.status == 200
        await add_fault(http, sandbox.url, provider="telegram", mode="500", rate=0.5, seed=1234)
        return [await send_telegram(http, sandbox.url) for _ in range(30)]

    first = await pattern()
    second = await pattern()

    assert first == second
    assert 500 in first
    assert 200 in first


async def test_slow_fault_delays_then_answers_normally(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await add_fault(http, sandbox.url, provider="telegram", mode="slow", delay=0.4, count=1)
    started = time.monotonic()
    status = await send_telegram(http, sandbox.url)
    assert status == 200
    assert time.monotonic() - started >= 0.4
    logged = (await get_json(http, f"{sandbox.url}/_sandbox/requests"))["requests"]
    assert logged[0]["fault"] == "slow"
    assert logged[0]["duration_ms"] >= 400


@pytest.mark.parametrize(
    "spec",
    [
        {"provider": "graph", "mode": "explode"},
        {"provider": "whatsapp", "mode": "429"},
        {"provider": "graph", "mode": "429", "rate": 1.5},
        {"provider": "graph", "mode": "429", "count": 0},
    ],
)
async def test_invalid_fault_specs_are_refused(
    sandbox: Sandbox, http: aiohttp.ClientSession, spec: dict[str, Any]
) -> None:
    async with http.post(f"{sandbox.url}/_sandbox/faults", json=spec) as resp:
        assert resp.status == 400
    assert (await get_json(http, f"{sandbox.url}/_sandbox/faults"))["faults"] == []


async def test_reset_forgets_requests_and_messages_but_ids_stay_unique(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await send_telegram(http, sandbox.url)
    await send_graph(http, sandbox.url)
    before = (await get_json(http, f"{sandbox.url}/_sandbox/requests"))["requests"]
    assert len(before) == 2

    async with http.delete(f"{sandbox.url}/_sandbox/requests") as resp:
        assert resp.status == 200

    assert (await get_json(http, f"{sandbox.url}/_sandbox/requests"))["requests"] == []
    assert (await get_json(http, f"{sandbox.url}/_sandbox/messages"))["messages"] == []
    await send_telegram(http, sandbox.url)
    after = (await get_json(http, f"{sandbox.url}/_sandbox/requests"))["requests"]
    assert after[0]["seq"] > before[-1]["seq"]


async def test_since_returns_only_newer_requests(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    for i in range(3):
        await send_telegram(http, sandbox.url, text=f"t{i}")
    logged = (await get_json(http, f"{sandbox.url}/_sandbox/requests"))["requests"]
    newer = (await get_json(http, f"{sandbox.url}/_sandbox/requests?since={logged[0]['seq']}"))[
        "requests"
    ]
    assert [r["json"]["text"] for r in newer] == ["t1", "t2"]
    graph_only = await get_json(http, f"{sandbox.url}/_sandbox/requests?provider=graph")
    assert graph_only["requests"] == []


async def test_messages_long_poll_waits_for_the_next_message(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.3)
        await send_telegram(http, sandbox.url, text="late reply")

    sender = asyncio.create_task(send_later())
    started = time.monotonic()
    found = await get_json(http, f"{sandbox.url}/_sandbox/messages?provider=telegram&wait=5")
    await sender

    assert [m["text"] for m in found["messages"]] == ["late reply"]
    assert time.monotonic() - started < 4


async def test_request_log_is_bounded() -> None:
    runner, app = await start_sandbox("127.0.0.1", 0, max_requests=5)
    try:
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for i in range(8):
                await send_telegram(http, base, text=f"t{i}")
            logged = (await get_json(http, f"{base}/_sandbox/requests"))["requests"]
    finally:
        await runner.cleanup()
    assert [r["seq"] for r in logged] == [4, 5, 6, 7, 8]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_cli_serves_until_terminated() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.sandbox", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health: dict[str, Any] = {}
        for _ in range(100):
            try:
                health = httpx.get(f"{base}/_sandbox/health").json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health.get("status") == "ok"
        sent = httpx.post(
            f"{base}/graph/v21.0/1/messages",
            json={"messaging_product": "whatsapp", "to": "+1555", "text": {"body": "hi"}},
            headers={"Authorization": "Bearer t"},
        )
        assert sent.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
