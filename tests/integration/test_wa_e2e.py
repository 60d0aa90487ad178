"""WhatsApp end to end: a real orchestrator, real whatsapp_bot subprocesses, the sandbox Graph API.

Replays recorded Cloud API payloads from tests/data/whatsapp and walks the seed-004 funnel.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.funnel import default_funnel
from tests.support.orchestrator_proc import OrchestratorProcess, free_port
from tests.support.wa import (
    WaCustomer,
    body_text,
    bot_fields,
    load_payload,
    options,
    sign,
    with_ids,
)

pytestmark = pytest.mark.slow

_phones = itertools.count(15550100001)


#: Each customer's phone, BSUID and username (from the identities table).
IDENTITY_COLUMNS = (
    "SELECT (SELECT value FROM identities WHERE user_id = u.id AND scheme = 'phone'), "
    "(SELECT value FROM identities WHERE user_id = u.id AND scheme = 'bsuid'), "
    "(SELECT value FROM identities WHERE user_id = u.id AND scheme = 'username') "
    "FROM users u ORDER BY u.id"
)


def new_phone() -> str:
    return f"+{next(_phones)}"


class Env:
    """The orchestrator (with its in-process sandbox) and helpers to make running bots."""

    def __init__(self, orch: OrchestratorProcess, sandbox_url: str) -> None:
        self.orch = orch
        self.sandbox_url = sandbox_url

    def bot(self, name: str, **extra: Any) -> dict[str, Any]:
        bot = self.orch.create_bot(name=name, **bot_fields(self.sandbox_url, **extra))
        res = self.orch.api("POST", f"/admin/whatsapp/instances/{bot['id']}/start")
        assert res.status_code == 200, res.text
        st = self.orch.wait_state("whatsapp", bot["id"], "running")
        bot["port"] = st["port"]
        bot["url"] = f"http://127.0.0.1:{st['port']}"
        return bot

    def customer(self, bot: dict[str, Any], phone: str | None = None, **kw: Any) -> WaCustomer:
        return WaCustomer(bot["url"], self.sandbox_url, phone or new_phone(), **kw)

    def db(self, bot_id: str) -> sqlite3.Connection:
        path = self.orch.root / "data" / f"wa_sales_{bot_id}.db"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def sandbox_requests(self) -> list[dict[str, Any]]:
        res = httpx.get(f"{self.sandbox_url}/_sandbox/requests", params={"provider": "graph"})
        return res.json()["requests"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    sandbox_port = free_port()
    orch = OrchestratorProcess(
        tmp_path_factory.mktemp("wa-e2e"),
        FLOTILLA_SANDBOX="true",
        FLOTILLA_SANDBOX_PORT=str(sandbox_port),
    ).start()
    yield Env(orch, f"http://127.0.0.1:{sandbox_port}")
    orch.close()


def first_with_options(replies: list[dict[str, Any]]) -> dict[str, Any]:
    found = [m for m in replies if options(m)]
    assert found, [json.dumps(m["payload"]) for m in replies]
    return found[0]


def test_webhook_verification_challenge(env: Env) -> None:
    bot = env.bot("Verify Bot")
    ok = httpx.get(
        f"{bot['url']}/webhook",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "e2e-verify-SECRET-5678",
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    bad = httpx.get(
        f"{bot['url']}/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    )
    assert bad.status_code == 403


def test_funnel_greeting_quiz_segment_quote_and_faq(env: Env) -> None:
    bot = env.bot("Funnel Bot", template="sales")  # the seed-004 funnel, as a template
    c = env.customer(bot)
    # greeting → welcome buttons
    welcome = first_with_options(c.say("Привет"))
    ids = [i for i, _ in options(welcome)]
    assert "sales:quiz" in ids
    # quiz as list messages; answer towards the Custom segment
    funnel = default_funnel()
    reply = c.say("Take the quiz", "sales:quiz")
    for question in funnel.quiz.questions:
        msg = first_with_options(reply)
        assert msg["payload"]["interactive"]["type"] == "list"
        best = max(question.options, key=lambda o: o.weights.get("custom", 0))
        row = f"sales:ans:{question.id}:{best.id}"
        assert row in [i for i, _ in options(msg)]
        reply = c.say(best.title, row, list_row=True)
    seg = first_with_options(reply)
    assert "Custom" in body_text(seg)
    assert "sales:discovery" in [i for i, _ in options(seg)]
    # custom discovery: free-text funnel_state steps, then the quote
    c.say("Start", "sales:discovery")
    with env.db(bot["id"]) as db:
        state = db.execute(
            "SELECT funnel_state, segment FROM users u JOIN identities i ON i.user_id = u.id "
            "WHERE i.scheme = 'phone' AND i.value = ?",
            (c.phone,),
        ).fetchone()
    assert state == ("custom_step_1", "custom")
    answers = [
        "Answer clients from our price list",
        "40 employees",
        "Bitrix24, 1C",
        "About 300 pages",
        "No server, urgent",
    ]
    for text in answers[:-1]:
        c.say(text)
    final = c.say(answers[-1])
    quote = "\n".join(body_text(m) for m in final)
    assert "Total" in quote
    assert "₽" in quote
    with env.db(bot["id"]) as db:
        steps = db.execute("SELECT COUNT(*) FROM custom_discovery").fetchone()[0]
        events = {r[0] for r in db.execute("SELECT type FROM events")}
    assert steps == 5
    assert {"quiz_answer", "segment", "quote"} <= events
    # FAQ there and back
    faq = first_with_options(c.say("FAQ", "faq:menu"))
    assert "faq:cat_product" in [i for i, _ in options(faq)]
    section = first_with_options(c.say("Product", "faq:cat_product", list_row=True))
    assert "faq:offline" in [i for i, _ in options(section)]
    item = first_with_options(c.say("Offline?", "faq:offline", list_row=True))
    assert "internet" in body_text(item).lower()
    back = first_with_options(c.say("Back", "faq:back_product"))
    assert [i for i, _ in options(back)] == [i for i, _ in options(section)]


def test_free_text_goes_to_fallback(env: Env) -> None:
    bot = env.bot("Fallback Bot", fallback_text="A colleague will answer you shortly.")
    c = env.customer(bot)
    replies = c.say("Can you recommend a good restaurant in Lisbon tonight?")
    assert len(replies) == 1
    assert replies[0]["payload"]["type"] == "text"
    assert replies[0]["payload"]["text"]["body"]


def test_blocked_number_gets_nothing_and_allow_list(env: Env) -> None:
    blocked = new_phone()
    bot = env.bot("Access Bot", blocked_phones=[blocked])
    assert env.customer(bot, blocked).say("hi", wait=1.5) == []
    assert env.customer(bot).say("hi")  # anyone else is answered
    allowed = new_phone()
    only = env.bot("Allow Bot", allowed_phones=[allowed])
    assert env.customer(only, new_phone()).say("hi", wait=1.5) == []
    assert env.customer(only, allowed).say("hi")


def test_rate_limit_notice_once(env: Env) -> None:
    bot = env.bot("Limit Bot", rate_limit_count=3, rate_limit_hours=1)
    c = env.customer(bot)
    for _ in range(3):
        assert c.say("hi")
    notice = c.say("hi")
    assert len(notice) == 1
    assert notice[0]["payload"]["type"] == "text"
    assert c.say("hi", wait=1.5) == []  # silence after the one notice
    assert c.say("hi", wait=1.5) == []


def test_duplicate_delivery_one_reply(env: Env) -> None:
    bot = env.bot("Dup Bot")
    c = env.customer(bot)
    body = c.payload("hi", wamid="wamid.dup.1")
    for _ in range(3):
        assert c.post(body).status_code == 200
    first = c.replies()
    assert len(first) == 1
    time.sleep(1)
    assert c.post(body).status_code == 200  # and once more, later
    assert c.silence() == []


def test_bad_signature_403_nothing_stored(env: Env) -> None:
    bot = env.bot("Sig Bot")
    c = env.customer(bot)
    body = c.payload("hi")
    assert c.post(body, secret="not-the-app-secret").status_code == 403
    assert c.post(body, signature="").status_code == 401
    assert (
        c.post(
            b"{not json",
        ).status_code
        == 400
    )
    assert c.silence() == []
    with env.db(bot["id"]) as db:
        assert db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0


def test_recorded_payloads_replay(env: Env) -> None:
    bot = env.bot("Replay Bot")
    c = WaCustomer(bot["url"], env.sandbox_url)
    for name in (
        "text",
        "button_reply",
        "list_reply",
        "audio",
        "image",
        "batched",
        "username_bsuid",
        "statuses",
        "status_failed",
        "unknown_field",
    ):
        res = c.post(with_ids(load_payload(name)))
        assert res.status_code == 200, (name, res.text)
    time.sleep(2)
    with env.db(bot["id"]) as db:
        inbound = db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]
        users = db.execute(IDENTITY_COLUMNS).fetchall()
    assert inbound >= 8  # every message of every payload, the batch counting several
    assert ("+5511987654321", "BR.1502576394655843", "@maria.lopez") in users
    assert all(u[0] is None or u[0].startswith("+") for u in users)  # E.164


def test_username_customer_without_phone_is_answered_by_bsuid(env: Env) -> None:
    bot = env.bot("Username Bot")
    c = WaCustomer(
        bot["url"], env.sandbox_url, None, bsuid="BR.9902576394655111", username="@ana.silva"
    )
    replies = c.say("hi")
    assert replies
    assert replies[0]["payload"]["recipient"] == "BR.9902576394655111"
    assert "to" not in replies[0]["payload"]
    with env.db(bot["id"]) as db:
        row = db.execute(IDENTITY_COLUMNS).fetchone()
    assert row == (None, "BR.9902576394655111", "@ana.silva")


def test_restart_mid_funnel_keeps_state(env: Env) -> None:
    bot = env.bot("Restart Bot", template="sales")
    c = env.customer(bot)
    c.say("hi")
    c.say("Start", "sales:discovery")
    c.say("Answer customers from our contracts")
    res = env.orch.api("POST", f"/admin/whatsapp/instances/{bot['id']}/restart")
    assert res.status_code == 200
    env.orch.wait_state("whatsapp", bot["id"], "running")
    with env.db(bot["id"]) as db:
        assert (
            db.execute(
                "SELECT funnel_state FROM users u JOIN identities i ON i.user_id = u.id "
                "WHERE i.scheme = 'phone' AND i.value = ?",
                (c.phone,),
            ).fetchone()[0]
            == "custom_step_2"
        )
    step3 = c.say("15 people")
    assert "Step 3 of 5" in body_text(step3[0])


def test_message_before_kill9_is_answered_once_after_respawn(env: Env) -> None:
    bot = env.bot("Crash Bot")
    pid = env.orch.status("whatsapp", bot["id"])["pid"]
    # Meta is failing (500) when the message arrives: the bot acknowledges and persists it, its
    # reply waits in the outbox, and then the bot is killed.
    httpx.post(f"{env.sandbox_url}/_sandbox/faults", json={"provider": "graph", "mode": "500"})
    c = env.customer(bot)
    assert c.post(c.payload("hi", wamid="wamid.crash.1")).status_code == 200
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    httpx.delete(f"{env.sandbox_url}/_sandbox/faults")
    deadline = time.monotonic() + 10
    st = env.orch.status("whatsapp", bot["id"])
    while time.monotonic() < deadline and not (st["state"] == "running" and st["pid"] != pid):
        time.sleep(0.05)
        st = env.orch.status("whatsapp", bot["id"])
    assert st["state"] == "running"
    assert st["pid"] != pid
    replies = c.replies(wait=15, quiet=2)
    assert len(replies) == 1, replies
    # Meta retries the same delivery: still one reply
    assert c.post(c.payload("hi", wamid="wamid.crash.1")).status_code == 200
    assert c.silence() == []


def test_outside_24h_window_not_sent_free_form(env: Env) -> None:
    bot = env.bot("Window Bot")
    c = env.customer(bot)
    old = int(time.time()) - 25 * 3600
    assert c.post(c.payload("hi", ts=old)).status_code == 200
    time.sleep(1.5)
    # the bot answers the (old) inbound only if the window allows; an operator message is refused
    c.replies(wait=1, quiet=0.2)
    res = env.orch.api(
        "POST",
        f"/admin/whatsapp/instances/{bot['id']}/messages",
        json={"to": c.phone, "text": "Are you still interested?"},
    )
    assert res.status_code == 202, res.text  # queued; the outbox then refuses it
    assert c.silence(2) == []
    with env.db(bot["id"]) as db:
        errors = [
            r[0]
            for r in db.execute("SELECT last_error FROM outbox WHERE state = 'failed'").fetchall()
        ]
    assert any("24" in (e or "") for e in errors), errors


def test_every_interactive_message_within_meta_limits(env: Env) -> None:
    sends = [r for r in env.sandbox_requests()
             if r["method"] == "POST" and r["path"].endswith("/messages")]
    rejected = [r for r in sends if r["status"] == 400]
    assert rejected == []
    interactive = [
        r for r in env.sandbox_requests() if (r.get("json") or {}).get("type") == "interactive"
    ]
    assert interactive  # earlier tests sent buttons and lists
    for r in interactive:
        inter = r["json"]["interactive"]
        assert len(inter["body"]["text"]) <= 1024
        buttons = inter["action"].get("buttons", [])
        assert len(buttons) <= 3
        assert all(len(b["reply"]["title"]) <= 20 for b in buttons)
        rows = [row for s in inter["action"].get("sections", []) for row in s["rows"]]
        assert len(rows) <= 10
        assert all(len(row["title"]) <= 24 for row in rows)


def test_hooks_ingress_forwards_signed_webhook(env: Env) -> None:
    bot = env.bot("Ingress Bot")
    c = WaCustomer(f"{env.orch.url}/hooks/whatsapp/{bot['id']}", env.sandbox_url, new_phone())
    assert c.say("hi")  # signature still verifies through the orchestrator
    raw = b'{"object":"whatsapp_business_account","entry":[]}'
    res = httpx.post(
        f"{env.orch.url}/hooks/whatsapp/{bot['id']}/webhook",
        content=raw,
        headers={"X-Hub-Signature-256": sign(raw, "wrong")},
    )
    assert res.status_code == 403
    assert httpx.post(f"{env.orch.url}/hooks/whatsapp/nope/webhook").status_code == 404
