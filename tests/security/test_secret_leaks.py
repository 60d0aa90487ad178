"""No test secret in any API response or any log file: a real orchestrator with a bot of each
kind (the WhatsApp one running and exercised), every admin GET route read by every role, and
then every response body and every file under its data/log dirs scanned."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.conftest import ORCHESTRATOR_ENV
from tests.faults.fleet import (
    ACCESS_TOKEN,
    APP_SECRET,
    VERIFY_TOKEN,
    SandboxProcess,
    inbound_payload,
    sign,
    start_bot,
)
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = pytest.mark.slow

AUTH_TOKEN = "twilio-auth-SECRET-5e6f"
BOT_TOKEN = "123456:telegram-bot-SECRET-9a8b"
WEBHOOK_SECRET = "tg-webhook-SECRET-c0d1"
SECRETS = (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN, AUTH_TOKEN, BOT_TOKEN, WEBHOOK_SECRET)


def leaks(text: str) -> list[str]:
    return [s[:8] + "…" for s in SECRETS if s in text]


def test_no_secret_in_any_response_or_log(tmp_path: Path) -> None:
    sandbox = SandboxProcess(tmp_path).start()
    orch = OrchestratorProcess(tmp_path / "orch", **ORCHESTRATOR_ENV)
    (tmp_path / "orch").mkdir()
    orch.start()
    bodies: list[tuple[str, str]] = []
    try:
        bot = start_bot(orch, sandbox, "Leak Probe")
        sms = orch.api("POST", "/admin/sms/instances", json={
            "name": "Leak SMS", "account_sid": "AC" + "0" * 32, "auth_token": AUTH_TOKEN,
            "from_number": "+15550009999", "twilio_base_url": f"{sandbox.url}/twilio"})
        tg = orch.api("POST", "/admin/telegram/instances", json={
            "name": "Leak TG", "bot_token": BOT_TOKEN, "webhook_secret": WEBHOOK_SECRET,
            "telegram_api_base_url": f"{sandbox.url}/telegram"})
        bodies += [("POST sms", sms.text), ("POST telegram", tg.text)]
        assert sms.status_code == 201, sms.text
        assert tg.status_code == 201, tg.text
        # traffic: good, unsigned, mis-signed webhooks; the challenge with right/wrong tokens
        with httpx.Client(timeout=15) as http:
            raw = inbound_payload("15550007777", "wamid.leak.1", "hello, what does it cost?",
                                  bot.phone_number_id)
            for headers in ({"X-Hub-Signature-256": sign(raw)}, {},
                            {"X-Hub-Signature-256": sign(raw, "wrong")}):
                r = http.post(f"{bot.url}/webhook", content=raw, headers=headers)
                bodies.append(("webhook", r.text))
            for token in (VERIFY_TOKEN, "wrong"):
                r = http.get(f"{bot.url}/webhook", params={
                    "hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "42"})
                bodies.append(("challenge", r.text))
        # an update that changes secrets, a reload, a restart
        r = orch.api("PUT", f"/admin/whatsapp/instances/{bot.id}",
                     json={"access_token": ACCESS_TOKEN, "persona": "calm"})
        bodies.append(("PUT", r.text))
        r = orch.api("POST", f"/admin/whatsapp/instances/{bot.id}/restart")
        bodies.append(("restart", r.text))
        orch.wait_state("whatsapp", bot.id, "running")
        time.sleep(1.0)
        # the funnel editor's read-only POSTs naming the bot
        r = orch.api("POST", "/admin/funnels/preview", json={
            "kind": "whatsapp", "bot_id": bot.id, "messages": [{"text": "hi"}]})
        bodies.append(("preview", r.text))
        # the desk (issue 13): a customer asks for a person; take, reply, resolve
        with httpx.Client(timeout=15) as http:
            raw = inbound_payload("15550007778", "wamid.leak.desk", "I want to talk to a person",
                                  bot.phone_number_id)
            r = http.post(f"{bot.url}/webhook", content=raw,
                          headers={"X-Hub-Signature-256": sign(raw)})
            bodies.append(("webhook desk", r.text))
        desk: list[dict[str, Any]] = []
        for _ in range(100):
            desk = orch.api("GET", "/admin/handovers").json()
            if desk:
                break
            time.sleep(0.1)
        assert desk, "the customer's request for a person reached the desk"
        bodies.append(("desk", json.dumps(desk)))
        for item in desk:
            base = f"/admin/whatsapp/instances/{item['bot_id']}/handovers/{item['id']}"
            for action, body in (("take", None), ("reply", {"text": "A person here."}),
                                 ("resolve", None)):
                r = orch.api("POST", f"{base}/{action}", json=body)
                bodies.append((f"desk {action}", r.text))
        # owner answers → knowledge base (issue 13 item 6): the proposals, one dropped
        r = orch.api("GET", "/admin/answer-proposals")
        bodies.append(("answer proposals", r.text))
        for item in r.json():
            r = orch.api("POST", f"/admin/whatsapp/instances/{item['bot_id']}"
                         f"/answer-proposals/{item['id']}/drop")
            bodies.append(("answer proposal drop", r.text))
        # every GET route of the admin API, as every role
        for username, role in (("gary", "guest"), ("alice", "user")):
            orch.api("POST", "/admin/users", json={
                "username": username, "password": f"{username}-password-123", "role": role})
        tokens = {"admin": orch.headers}
        for username in ("gary", "alice"):
            t = orch.http.post("/auth/token", data={"username": username,
                                                    "password": f"{username}-password-123"})
            tokens[username] = {"Authorization": f"Bearer {t.json()['access_token']}"}
        spec: dict[str, Any] = orch.http.get("/openapi.json").json()
        values = {"kind": "whatsapp", "instance_id": bot.id, "customer_key": "15550007777"}
        for path, ops in spec["paths"].items():
            if "get" not in ops or not path.startswith(("/admin", "/health", "/version")):
                continue
            for kind in ("whatsapp", "sms", "telegram"):
                ids = {"whatsapp": bot.id, "sms": "leak-sms", "telegram": "leak-tg"}
                url = re.sub(r"\{(\w+)\}", lambda m, k=kind, i=ids: (
                    k if m.group(1) == "kind" else i[k] if m.group(1) == "instance_id"
                    else values.get(m.group(1), "x")), path)
                for who, headers in tokens.items():
                    r = orch.http.get(url, headers=headers)
                    bodies.append((f"GET {url} as {who}", r.text))
                if "{kind}" not in path:
                    break
        bodies.append(("openapi", json.dumps(spec)))
    finally:
        orch.close()
        sandbox.close()
    leaked = [(where, leaks(text)) for where, text in bodies if leaks(text)]
    assert not leaked, leaked[:10]
    assert len(bodies) > 50
    # .db too: secrets are encrypted at rest in orchestrator.db and never copied to a bot db
    files = [p for p in (tmp_path / "orch").rglob("*") if p.is_file()
             and p.suffix in (".log", ".json", ".db", "")]
    files += list((tmp_path / "orch" / "logs").glob("*.log*"))
    assert any(p.name.startswith("whatsapp_bot_") for p in files), files
    in_files = [(p.name, leaks(p.read_text(errors="replace"))) for p in set(files)
                if leaks(p.read_text(errors="replace"))]
    assert not in_files, in_files
