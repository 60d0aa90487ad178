"""Refused tokens: internal-API JWTs (orchestrator), admin access JWTs, and control-API JWTs on a
real bot process. Expired, wrong audience, old spawn generation, ``alg=none``, badly signed,
another bot's: all refused; the matching valid token is accepted (so the test can fail)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from orchestrator.models import BotInstance
from orchestrator.security import _admin_key, create_internal_token
from shared.tokens import (
    TokenError,
    control_key,
    internal_key,
    mint_control_token,
    mint_internal_token,
    verify_control_token,
)
from tests.conftest import TEST_SECRET_KEY, Actors
from tests.faults.conftest import orch, sandbox  # noqa: F401 - fixtures shared by import
from tests.faults.fleet import SandboxProcess, start_bot
from tests.support.orchestrator_proc import SECRET_KEY, OrchestratorProcess


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """An ``alg=none`` JWT (no signature)."""
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def claims(aud: str, sub: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"aud": aud, "sub": sub, "iat": now, "exp": now + 300, **extra}


def bad_variants(good: dict[str, Any], key: bytes | str) -> dict[str, str]:
    """Every way a token must be refused, built around ``good`` claims and the right key."""
    expired = {**good, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}
    return {
        "expired": jwt.encode(expired, key, algorithm="HS256"),
        "wrong audience": jwt.encode({**good, "aud": "someone-else"}, key, algorithm="HS256"),
        "no audience": jwt.encode({k: v for k, v in good.items() if k != "aud"}, key,
                                  algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in good.items() if k != "exp"}, key,
                                algorithm="HS256"),
        "alg none": unsigned(good),
        "badly signed": jwt.encode(good, b"not-the-key-" * 4, algorithm="HS256"),
        "tampered": jwt.encode(good, key, algorithm="HS256")[:-3] + "AAA",
        "HS512 with the key": jwt.encode(good, key, algorithm="HS512"),
        "garbage": "not.a.jwt",
    }


@pytest.fixture
def bot_gen(client: TestClient, actors: Actors) -> int:
    """A WhatsApp bot ``tok-bot`` at spawn generation 3 (as if it had been started 3 times)."""
    res = client.post("/admin/whatsapp/instances", headers=actors.headers["admin"],
                      json={"name": "Tok Bot"})
    assert res.status_code == 201
    client.post("/admin/whatsapp/instances", headers=actors.headers["admin"],
                json={"name": "Other Bot"})
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        bot = session.get(BotInstance, "tok-bot")
        assert bot is not None
        bot.spawn_generation = 3
        session.add(bot)
        session.commit()
    return 3


def test_internal_api_refuses_every_bad_token(
    client: TestClient, actors: Actors, bot_gen: int
) -> None:
    key = internal_key(TEST_SECRET_KEY)
    good = claims("flotilla-internal", "tok-bot", kind="whatsapp", gen=bot_gen)

    def get(token: str | None, path: str = "/internal/config") -> int:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return client.get(path, headers=headers).status_code

    valid = create_internal_token(TEST_SECRET_KEY, instance_id="tok-bot", kind="whatsapp",
                                  gen=bot_gen, minutes=5)
    assert get(valid) == 200
    assert get(jwt.encode(good, key, algorithm="HS256")) == 200
    refused = bad_variants(good, key)
    refused["old generation"] = jwt.encode({**good, "gen": bot_gen - 1}, key, algorithm="HS256")
    refused["next generation"] = jwt.encode({**good, "gen": bot_gen + 1}, key, algorithm="HS256")
    refused["wrong kind"] = jwt.encode({**good, "kind": "sms"}, key, algorithm="HS256")
    refused["signed with the raw secret"] = jwt.encode(good, TEST_SECRET_KEY, algorithm="HS256")
    refused["an admin's access token"] = actors.headers["admin"]["Authorization"].split()[1]
    refused["control audience"] = jwt.encode({**good, "aud": "flotilla-control"}, key,
                                             algorithm="HS256")
    got = {name: get(token) for name, token in refused.items()}
    got["missing"] = get(None)
    assert got == dict.fromkeys(got, 401), got
    # a valid token on another bot's path: 403
    assert get(valid, "/internal/instances/other-bot/config") == 403


def test_a_token_minted_by_the_shared_helper_is_the_orchestrators(
    client: TestClient, bot_gen: int
) -> None:
    """``shared.tokens`` is the one minting module: what it mints the orchestrator accepts, and
    the orchestrator's refresh route hands out tokens of the same form."""
    token = mint_internal_token(TEST_SECRET_KEY, "tok-bot", kind="whatsapp", gen=bot_gen)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/internal/config", headers=headers).status_code == 200
    refreshed = client.post("/internal/token/refresh", headers=headers)
    assert refreshed.status_code == 200
    fresh = refreshed.json()["token"]
    key_claims = jwt.decode(fresh, internal_key(TEST_SECRET_KEY), algorithms=["HS256"],
                            audience="flotilla-internal")
    assert (key_claims["sub"], key_claims["kind"], key_claims["gen"]) == (
        "tok-bot", "whatsapp", bot_gen)
    # the shared helper never signs with the raw secret (the old trap): such a token is refused
    raw = jwt.encode(jwt.decode(token, options={"verify_signature": False}), TEST_SECRET_KEY,
                     algorithm="HS256")
    assert client.get("/internal/config",
                      headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_control_tokens_round_trip_through_the_shared_module() -> None:
    key = control_key(TEST_SECRET_KEY, "tok-bot", 3)
    token = mint_control_token(key, "tok-bot")
    assert verify_control_token(token, key, "tok-bot")["sub"] == "tok-bot"
    with pytest.raises(TokenError):
        verify_control_token(token, control_key(TEST_SECRET_KEY, "tok-bot", 2), "tok-bot")
    with pytest.raises(TokenError):
        verify_control_token(token, key, "other-bot")


def test_admin_api_refuses_every_bad_token(client: TestClient, actors: Actors) -> None:
    token = actors.headers["alice"]["Authorization"].split()[1]
    good = jwt.decode(token, options={"verify_signature": False})
    key = _admin_key(TEST_SECRET_KEY)
    assert jwt.encode(good, key, algorithm="HS256")  # the probe can sign a valid one
    assert client.get("/admin/fleet", headers=actors.headers["alice"]).status_code == 200
    refused = bad_variants(good, key)
    refused["an internal bot token"] = create_internal_token(
        TEST_SECRET_KEY, instance_id="x", kind="whatsapp", gen=1, minutes=5)
    got = {
        name: client.get("/admin/fleet", headers={"Authorization": f"Bearer {t}"}).status_code
        for name, t in refused.items()
    }
    assert got == dict.fromkeys(got, 401), got


@pytest.fixture
def running_bot(orch: OrchestratorProcess, sandbox: SandboxProcess) -> Iterator[Any]:  # noqa: F811
    bot = start_bot(orch, sandbox, "Control Target")
    yield bot
    orch.api("POST", f"/admin/whatsapp/instances/{bot.id}/stop")


def test_control_api_refuses_every_bad_token(running_bot: Any) -> None:
    bot = running_bot
    gen = bot.orch.spawn_generation(bot.id)
    key = control_key(SECRET_KEY, bot.id, gen)
    good = claims("flotilla-control", bot.id)
    url = f"{bot.url}/control/health"

    def get(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.get(url, headers=headers, timeout=10).status_code

    assert get(jwt.encode(good, key, algorithm="HS256")) == 200
    refused = bad_variants(good, key)
    refused["old generation's key"] = jwt.encode(good, control_key(SECRET_KEY, bot.id, gen - 1),
                                                 algorithm="HS256")
    refused["another bot"] = jwt.encode({**good, "sub": "other-bot"}, key, algorithm="HS256")
    refused["internal audience"] = jwt.encode({**good, "aud": "flotilla-internal"}, key,
                                              algorithm="HS256")
    refused["signed with the orchestrator secret"] = jwt.encode(good, SECRET_KEY,
                                                                algorithm="HS256")
    got = {name: get(token) for name, token in refused.items()}
    # docs/internals.md: missing → 401, bad → 403
    assert got == dict.fromkeys(got, 403), got
    assert get(None) == 401
    assert httpx.get(url, headers={"Authorization": "Basic abc"}, timeout=10).status_code == 401
    # sending through the control API with a bad token changes nothing
    post = httpx.post(f"{bot.url}/control/send", json={"to": "+15550001111", "text": "x"},
                      headers={"Authorization": f"Bearer {refused['alg none']}"}, timeout=10)
    assert post.status_code == 403
