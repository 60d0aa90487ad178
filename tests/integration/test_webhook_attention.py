"""WhatsApp and SMS bots that refuse every webhook show "needs attention" (issue 12 item 6),
against a real orchestrator, real ``python -m whatsapp_bot`` / ``python -m sms_bot`` bots behind
the ``/hooks`` ingress and the in-process sandbox:

* several refused webhooks in a row (a wrong App secret / Auth token) → the reason in the bot's
  status and on the fleet list, never the secret; a correctly signed webhook clears it;
* a bot with no App secret / Auth token at all needs attention from its start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.botkit.attention import REFUSALS_BEFORE_ATTENTION
from tests.support.orchestrator_proc import OrchestratorProcess, free_port
from whatsapp_bot.webhook import sign

pytestmark = pytest.mark.slow

APP_SECRET = "wa-app-secret-for-tests"


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


def wa_body(n: int) -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "200000000000009",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": "100000000000009"},
                                "contacts": [{"wa_id": "353861234567", "profile": {"name": "A"}}],
                                "messages": [
                                    {
                                        "from": "353861234567",
                                        "id": f"wamid.attention.{n}",
                                        "timestamp": "1700000000",
                                        "type": "text",
                                        "text": {"body": "hi"},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def wa_hook(orch: OrchestratorProcess, bot_id: str, n: int, secret: str | None) -> int:
    raw = wa_body(n)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(raw, secret)
    res = httpx.post(
        f"{orch.url}/hooks/whatsapp/{bot_id}/webhook", content=raw, headers=headers, timeout=10
    )
    return res.status_code


def wait_attention(
    orch: OrchestratorProcess, kind: str, bot_id: str, present: bool, timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = orch.status(kind, bot_id)
        if bool(st.get("attention")) is present:
            return st
        time.sleep(0.05)
    raise AssertionError(f"attention {'not ' if present else ''}shown: {st}")


def start(orch: OrchestratorProcess, kind: str, bot_id: str) -> dict[str, Any]:
    assert orch.api("POST", f"/admin/{kind}/instances/{bot_id}/start").status_code == 200
    return orch.wait_state(kind, bot_id, "running", timeout=30)


def fleet_attention(orch: OrchestratorProcess, bot_id: str) -> Any:
    rows = orch.api("GET", "/admin/fleet").json()
    return next(r for r in rows if r["id"] == bot_id)["attention"]


def test_whatsapp_wrong_app_secret_needs_attention_until_a_webhook_verifies(
    orch: OrchestratorProcess,
) -> None:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    bot = orch.create_bot(
        "whatsapp",
        name="WA Secret Mismatch",
        phone_number_id="100000000000009",
        access_token="sandbox-token-attention",
        verify_token="verify-attention",
        app_secret=APP_SECRET,
        graph_api_base_url=f"{sandbox}/graph",
    )
    bot_id = bot["id"]
    assert start(orch, "whatsapp", bot_id)["attention"] is None

    for n in range(REFUSALS_BEFORE_ATTENTION - 1):
        assert wa_hook(orch, bot_id, n, "another-secret") == 403
    time.sleep(0.5)
    assert orch.status("whatsapp", bot_id)["attention"] is None  # a stray request: no alarm

    assert wa_hook(orch, bot_id, 99, "another-secret") == 403
    st = wait_attention(orch, "whatsapp", bot_id, present=True)
    assert st["state"] == "running"
    assert "different App secret" in st["attention"]
    assert APP_SECRET not in json.dumps(st)
    assert "different App secret" in fleet_attention(orch, bot_id)

    assert wa_hook(orch, bot_id, 100, APP_SECRET) == 200
    wait_attention(orch, "whatsapp", bot_id, present=False)
    assert fleet_attention(orch, bot_id) is None

    # unsigned webhooks: attention with that reason
    for n in range(REFUSALS_BEFORE_ATTENTION):
        assert wa_hook(orch, bot_id, 200 + n, None) == 401
    st = wait_attention(orch, "whatsapp", bot_id, present=True)
    assert "without Meta's signature" in st["attention"]
    orch.api("POST", f"/admin/whatsapp/instances/{bot_id}/stop")


def test_whatsapp_without_app_secret_needs_attention_from_start(orch: OrchestratorProcess) -> None:
    # A bot wired to the sandbox gets a generated App secret (it must not start amber) ...
    sandboxed = orch.create_bot(
        "whatsapp",
        name="WA Sandbox",
        phone_number_id="100000000000029",
        access_token="sandbox-token-sandboxed",
        graph_api_base_url=f"{orch.sandbox_url}/graph",  # type: ignore[attr-defined]
    )
    assert sandboxed["app_secret"].startswith("****")
    assert sandboxed["verify_token"].startswith("****")
    assert start(orch, "whatsapp", sandboxed["id"])["attention"] is None
    orch.api("POST", f"/admin/whatsapp/instances/{sandboxed['id']}/stop")
    # ... one for Meta without an App secret refuses everything: amber from its start.
    bot = orch.create_bot(
        "whatsapp",
        name="WA No Secret",
        phone_number_id="100000000000019",
        access_token="real-looking-token",
    )
    assert bot["app_secret"] == ""
    start(orch, "whatsapp", bot["id"])
    st = wait_attention(orch, "whatsapp", bot["id"], present=True)
    assert "no App secret" in st["attention"]


def test_sms_wrong_auth_token_needs_attention(orch: OrchestratorProcess) -> None:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    bot = orch.create_bot(
        "sms",
        name="SMS Token Mismatch",
        account_sid="AC" + "0" * 32,
        auth_token="sms-auth-token-for-tests",
        from_number="+15005550006",
        twilio_base_url=f"{sandbox}/twilio",
    )
    bot_id = bot["id"]
    assert start(orch, "sms", bot_id)["attention"] is None
    form = {"From": "+15005550001", "To": "+15005550006", "Body": "hi", "MessageSid": "SM1"}
    for n in range(REFUSALS_BEFORE_ATTENTION):
        form["MessageSid"] = f"SM{n:032d}"
        res = httpx.post(
            f"{orch.url}/hooks/sms/{bot_id}/webhook",
            data=form,
            headers={"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"},
            timeout=10,
        )
        assert res.status_code == 403
    st = wait_attention(orch, "sms", bot_id, present=True)
    assert "signatures do not match" in st["attention"]
    assert "sms-auth-token-for-tests" not in json.dumps(st)
    orch.api("POST", f"/admin/sms/instances/{bot_id}/stop")
