"""Telegram out of the box, against a real orchestrator, real ``python -m telegram_bot`` bots
and the in-process sandbox:

* a Telegram bot created through the API for the sandbox gets a generated webhook secret;
* a bot that refuses every update (a secret mismatch: several refused webhooks in a row, none
  accepted) reports "needs attention" with the reason in its status and on the fleet list,
  cleared when an update is accepted again;
* a bot with no webhook secret at all needs attention from its start (it would refuse
  everything while showing green).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.botkit.attention import REFUSALS_BEFORE_ATTENTION
from tests.support.orchestrator_proc import OrchestratorProcess, free_port

pytestmark = pytest.mark.slow

HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET = "known-secret_for-tests"


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    sandbox_port = free_port()
    proc = OrchestratorProcess(
        tmp_path_factory.mktemp("orch"),
        FLOTILLA_SANDBOX="true",
        FLOTILLA_SANDBOX_PORT=str(sandbox_port),
        FLOTILLA_DEMO_BOT="false",
    )
    proc.sandbox_url = f"http://127.0.0.1:{sandbox_port}"  # type: ignore[attr-defined]
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def update(n: int) -> dict[str, Any]:
    return {
        "update_id": 5000 + n,
        "message": {
            "message_id": n,
            "date": 1700000000,
            "chat": {"id": 521234567, "type": "private"},
            "from": {"id": 521234567, "is_bot": False, "first_name": "Anna"},
            "text": "hi",
        },
    }


def hook(orch: OrchestratorProcess, bot_id: str, n: int, secret: str | None) -> int:
    headers = {HEADER: secret} if secret is not None else {}
    res = httpx.post(
        f"{orch.url}/hooks/telegram/{bot_id}/webhook", json=update(n), headers=headers, timeout=10
    )
    return res.status_code


def wait_attention(
    orch: OrchestratorProcess, bot_id: str, present: bool, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = orch.status("telegram", bot_id)
        if bool(st.get("attention")) is present:
            return st
        time.sleep(0.05)
    raise AssertionError(f"attention {'not ' if present else ''}shown: {st}")


def fleet_row(orch: OrchestratorProcess, bot_id: str) -> dict[str, Any]:
    rows = orch.api("GET", "/admin/fleet").json()
    return next(r for r in rows if r["id"] == bot_id)


def test_sandbox_bot_made_through_the_api_gets_a_webhook_secret(orch: OrchestratorProcess) -> None:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    bot = orch.create_bot(
        "telegram", name="API Sandbox TG", telegram_api_base_url=f"{sandbox}/telegram"
    )
    assert bot["webhook_secret"].startswith("****"), bot
    assert bot["bot_token"].startswith("****"), bot
    # Not wired to the sandbox: nothing is invented for it.
    other = orch.create_bot("telegram", name="Real TG", bot_token="123:real-token")
    assert other["webhook_secret"] == ""


def test_refused_updates_need_attention_until_one_is_accepted(orch: OrchestratorProcess) -> None:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    bot = orch.create_bot(
        "telegram",
        name="Secret Mismatch",
        bot_token="123456:sandbox-attention",
        webhook_secret=SECRET,
        telegram_api_base_url=f"{sandbox}/telegram",
    )
    bot_id = bot["id"]
    assert orch.api("POST", f"/admin/telegram/instances/{bot_id}/start").status_code == 200
    st = orch.wait_state("telegram", bot_id, "running", timeout=30)
    assert st["attention"] is None

    # Fewer refusals than the threshold (a stray request): no alarm yet.
    for n in range(REFUSALS_BEFORE_ATTENTION - 1):
        assert hook(orch, bot_id, n, "another-secret") == 403
    time.sleep(0.5)
    assert orch.status("telegram", bot_id)["attention"] is None

    assert hook(orch, bot_id, 99, "another-secret") == 403
    st = wait_attention(orch, bot_id, present=True)
    assert st["state"] == "running"
    assert "different secret token" in st["attention"]
    assert SECRET not in st["attention"]
    assert "another-secret" not in st["attention"]
    assert "different secret token" in fleet_row(orch, bot_id)["attention"]

    # An update with the right secret is accepted: the attention is over.
    assert hook(orch, bot_id, 100, SECRET) == 200
    wait_attention(orch, bot_id, present=False)
    assert fleet_row(orch, bot_id)["attention"] is None

    # Missing header several times in a row: attention again, with that reason.
    for n in range(REFUSALS_BEFORE_ATTENTION):
        assert hook(orch, bot_id, 200 + n, None) == 401
    st = wait_attention(orch, bot_id, present=True)
    assert "without a secret token" in st["attention"]

    # A stopped bot needs no attention; a new run starts clean.
    orch.api("POST", f"/admin/telegram/instances/{bot_id}/stop")
    st = orch.wait_state("telegram", bot_id, "stopped", timeout=30)
    assert st["attention"] is None
    orch.api("POST", f"/admin/telegram/instances/{bot_id}/start")
    st = orch.wait_state("telegram", bot_id, "running", timeout=30)
    time.sleep(0.5)
    assert orch.status("telegram", bot_id)["attention"] is None
    orch.api("POST", f"/admin/telegram/instances/{bot_id}/stop")


def test_a_bot_without_webhook_secret_needs_attention_from_the_start(
    orch: OrchestratorProcess,
) -> None:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    bot = orch.create_bot(
        "telegram",
        name="No Secret",
        bot_token="123456:sandbox-nosecret",
        webhook_secret=SECRET,
        telegram_api_base_url=f"{sandbox}/telegram",
    )
    bot_id = bot["id"]
    res = orch.api("PUT", f"/admin/telegram/instances/{bot_id}", json={"webhook_secret": ""})
    assert res.status_code == 200, res.text
    assert res.json()["webhook_secret"] == ""
    orch.api("POST", f"/admin/telegram/instances/{bot_id}/start")
    orch.wait_state("telegram", bot_id, "running", timeout=30)
    st = wait_attention(orch, bot_id, present=True)
    assert "no Webhook secret" in st["attention"]
    orch.api("POST", f"/admin/telegram/instances/{bot_id}/stop")


def test_a_telegram_bot_blocks_telegram_user_ids_on_its_access_list(
    orch: OrchestratorProcess,
) -> None:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    token = "123456:sandbox-access"
    bot = orch.create_bot(
        "telegram",
        name="Access TG",
        bot_token=token,
        webhook_secret=SECRET,
        telegram_api_base_url=f"{sandbox}/telegram",
        blocked_phones=["telegram_user:600000001", "600000002"],
    )
    bot_id = bot["id"]
    orch.api("POST", f"/admin/telegram/instances/{bot_id}/start")
    orch.wait_state("telegram", bot_id, "running", timeout=30)

    def from_user(n: int, user: int) -> int:
        body = update(n)
        body["message"]["chat"]["id"] = body["message"]["from"]["id"] = user
        res = httpx.post(
            f"{orch.url}/hooks/telegram/{bot_id}/webhook",
            json=body,
            headers={HEADER: SECRET},
            timeout=10,
        )
        return res.status_code

    def sent_to(user: int, wait: float = 0.0) -> list[dict[str, Any]]:
        res = httpx.get(
            f"{sandbox}/_sandbox/messages",
            params={"provider": "telegram", "to": str(user), "wait": str(wait)},
            timeout=wait + 10,
        )
        return res.json()["messages"]  # type: ignore[no-any-return]

    assert from_user(1, 600000001) == 200  # blocked as telegram_user:600000001
    assert from_user(2, 600000002) == 200  # blocked as a bare id
    assert from_user(3, 700000003) == 200  # not on the list
    assert sent_to(700000003, wait=10), "the customer not on the list is answered"
    time.sleep(1.0)  # the blocked messages were handled before (one inbox, in order)
    assert sent_to(600000001) == []
    assert sent_to(600000002) == []
    orch.api("POST", f"/admin/telegram/instances/{bot_id}/stop")
