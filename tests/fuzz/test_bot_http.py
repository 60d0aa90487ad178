"""Hostile webhook traffic against a real ``whatsapp_bot`` process: signed bodies the parser has
never seen, unsigned and mis-signed ones, and bodies over the 3 MB limit. The bot answers 200,
400, 401, 403 or 413, never 500, stays up, and logs no unhandled error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.fleet import SandboxProcess, inbound_payload, sign, start_bot
from tests.faults.results import record_bad_inputs, sized
from tests.fuzz.strategies import any_json, load_fixtures, mutated
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = pytest.mark.slow

LIMIT = 3 * 1024 * 1024
OVER = int(3.5 * 1024 * 1024)


@pytest.fixture(scope="module")
def bot_url(orch: OrchestratorProcess, sandbox: SandboxProcess) -> Iterator[str]:
    bot = start_bot(orch, sandbox, "Fuzz Target")
    yield bot.url
    log = bot.log_path.read_text(errors="replace")
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    # Unhandled: a traceback, aiohttp's "Error handling request", an asyncio error, or any line
    # logged with an exception. (A send the sandbox refuses for a mangled recipient is a logged
    # business error, "send failed permanently", and is fine.)
    unhandled = [
        x for x in lines
        if "exc" in x or x.get("logger") in ("aiohttp.server", "asyncio", "aiohttp.web")
        or x.get("level") == "CRITICAL"
    ]
    assert "Traceback" not in log, log[-3000:]
    assert not unhandled, unhandled[:5]
    st_ = bot.status()
    assert st_["state"] == "running", st_
    assert st_["restarts"] == 0, st_


def test_oversized_bodies_are_413_before_anything_else(bot_url: str) -> None:
    big = inbound_payload("15550000001", "wamid.big", "x" * OVER, "1")
    assert len(big) > OVER
    with httpx.Client(timeout=30) as http:
        signed = http.post(f"{bot_url}/webhook", content=big,
                           headers={"X-Hub-Signature-256": sign(big)})
        unsigned = http.post(f"{bot_url}/webhook", content=big)

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 256 * 1024):
                yield big[i:i + 256 * 1024]

        chunked = http.post(f"{bot_url}/webhook", content=chunks(),
                            headers={"X-Hub-Signature-256": sign(big)})
        just_under = inbound_payload("15550000002", "wamid.under", "y" * (LIMIT - 4096), "1")
        assert len(just_under) < LIMIT
        under = http.post(f"{bot_url}/webhook", content=just_under,
                          headers={"X-Hub-Signature-256": sign(just_under)})
    # the size is checked before the signature: an unsigned giant is a 413, not a 401
    assert [signed.status_code, unsigned.status_code, chunked.status_code] == [413, 413, 413]
    assert under.status_code == 200
    record_bad_inputs("whatsapp_bot.oversized", 3)


def test_hostile_signed_bodies_never_500(bot_url: str) -> None:
    fixtures = load_fixtures("whatsapp")
    statuses: dict[int, int] = {}
    tried = 0
    bodies = (
        mutated(fixtures).map(lambda d: json.dumps(d).encode())
        | any_json.map(lambda d: json.dumps(d).encode())
        | st.binary(max_size=300)
    )
    headers_kind = st.sampled_from(["good", "good", "good", "none", "bad", "garbage"])

    with httpx.Client(timeout=15) as http:

        @settings(max_examples=sized(150, 1000), deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(raw=bodies, kind=headers_kind)
        def post(raw: bytes, kind: str) -> None:
            nonlocal tried
            tried += 1
            headers: dict[str, Any] = {"Content-Type": "application/json"}
            if kind == "good":
                headers["X-Hub-Signature-256"] = sign(raw)
            elif kind == "bad":
                headers["X-Hub-Signature-256"] = sign(raw, "not-the-secret")
            elif kind == "garbage":
                headers["X-Hub-Signature-256"] = "sha256=zz"
            res = http.post(f"{bot_url}/webhook", content=raw, headers=headers)
            statuses[res.status_code] = statuses.get(res.status_code, 0) + 1
            expected = {"good": {200, 400}, "none": {401}, "bad": {403}, "garbage": {403}}[kind]
            assert res.status_code in expected, (kind, res.status_code, res.text, raw[:300])

        post()
    record_bad_inputs("whatsapp_bot.http", tried)
    assert statuses.get(200), statuses
