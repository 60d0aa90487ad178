"""The Desk page in a real browser (issue 13): a customer asks for a person → the handover
appears on the Desk with the nav badge → Take, Reply (the customer receives it), Resolve → the
bot answers the next message. A guest sees the desk without controls.

Real orchestrator subprocess, a real whatsapp_bot subprocess, the sandbox Graph API; the
customer writes through the test chat's API (``/simulate``), as the Test chat tab does.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess
from tests.support.wa import bot_fields

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACK = "A manager will answer you here shortly."
CUSTOMER = "+15550100881"
OTHER = "+15550100882"


def _sent_to(orch: OrchestratorProcess, phone: str) -> list[str]:
    res = httpx.get(
        f"{orch.sandbox_url}/_sandbox/messages",  # type: ignore[attr-defined]
        params={"provider": "graph", "to": phone.lstrip("+")},
    )
    return [str(m.get("text") or "") for m in res.json()["messages"]]


def _wait_sent(orch: OrchestratorProcess, phone: str, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in t for t in _sent_to(orch, phone)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never reached {phone}: {_sent_to(orch, phone)}")


def _say(orch: OrchestratorProcess, bot_id: str, phone: str, text: str) -> None:
    res = orch.api(
        "POST", f"/admin/whatsapp/instances/{bot_id}/simulate", json={"from": phone, "text": text}
    )
    assert res.status_code == 202, res.text


@pytest.fixture(scope="module")
def bot(orch: OrchestratorProcess) -> dict[str, Any]:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    made = orch.create_bot(name="Desk Shop", template="sales", **bot_fields(sandbox))
    res = orch.api("POST", f"/admin/whatsapp/instances/{made['id']}/start")
    assert res.status_code == 200, res.text
    orch.wait_state("whatsapp", made["id"], "running", timeout=30)
    return made


def test_take_reply_resolve_on_the_desk(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    page = new_page()
    login(page)
    expect(page.get_by_test_id("desk-badge")).to_have_count(0)

    _say(orch, bot["id"], CUSTOMER, "I want to talk to a person")
    _wait_sent(orch, CUSTOMER, ACK)
    # The badge counts it without a reload (polled).
    expect(page.get_by_test_id("desk-badge")).to_have_text("1", timeout=15_000)
    page.get_by_test_id("nav-desk").click()
    page.wait_for_url(re.compile(r"/desk"))
    row = page.get_by_test_id("handover").first
    expect(row).to_have_attribute("data-status", "pending")
    expect(row).to_contain_text("I want to talk to a person")
    expect(row.get_by_test_id("handover-status")).to_have_text("waiting")
    row.click()
    panel = page.get_by_test_id("desk-panel")
    expect(panel).to_have_attribute("data-status", "pending")
    chat = page.locator("#chat-messages")
    expect(chat.get_by_test_id("bubble-in").first).to_contain_text("I want to talk to a person")
    expect(chat).to_contain_text(ACK)
    shot(page, "desk-pending")

    panel.get_by_role("button", name="Take").click()
    expect(page.get_by_test_id("desk-panel")).to_have_attribute("data-status", "active")
    expect(page.get_by_test_id("panel-status")).to_have_text("taken by admin")
    expect(page.get_by_test_id("desk-badge")).to_have_count(0, timeout=15_000)

    page.fill("#desk-panel textarea[name=text]", "Hello, Maria from the shop here.")
    page.locator("#desk-panel").get_by_role("button", name="Reply").click()
    _wait_sent(orch, CUSTOMER, "Hello, Maria from the shop here.")
    expect(page.locator("#chat-messages")).to_contain_text(
        "Hello, Maria from the shop here.", timeout=10_000
    )
    # The customer answers the person; the bot stays silent.
    before = len(_sent_to(orch, CUSTOMER))
    _say(orch, bot["id"], CUSTOMER, "Thanks Maria, where is my order?")
    expect(page.locator("#chat-messages")).to_contain_text(
        "where is my order?", timeout=10_000
    )
    time.sleep(1.0)
    assert len(_sent_to(orch, CUSTOMER)) == before
    shot(page, "desk-active")

    page.locator("#desk-panel").get_by_role("button", name="Resolve").click()
    expect(page.get_by_test_id("desk-panel")).to_have_attribute("data-status", "resolved")
    expect(page.get_by_test_id("desk-empty")).to_be_visible(timeout=10_000)
    # Back to the bot: the next message gets the funnel's answer.
    _say(orch, bot["id"], CUSTOMER, "hi")
    _wait_sent(orch, CUSTOMER, "What would you like to do?")
    shot(page, "desk-resolved")


def test_guest_sees_the_desk_without_controls(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    password = "gus-password-1"
    res = orch.api(
        "POST", "/admin/users", json={"username": "gus", "password": password, "role": "guest"}
    )
    assert res.status_code in (201, 422), res.text
    _say(orch, bot["id"], OTHER, "operator please")
    _wait_sent(orch, OTHER, ACK)

    page = new_page()
    login(page, "gus", password)
    expect(page.get_by_test_id("desk-badge")).to_have_text("1", timeout=15_000)
    page.goto("/desk")
    row = page.get_by_test_id("handover").first
    expect(row).to_contain_text("operator please")
    row.click()
    panel = page.get_by_test_id("desk-panel")
    expect(panel).to_contain_text("Read-only")
    expect(panel.get_by_role("button")).to_have_count(0)
    expect(panel.locator("textarea")).to_have_count(0)
    shot(page, "desk-guest")
    # The API refuses the guest whatever the page shows (with the page's CSRF token).
    handovers = orch.api("GET", "/admin/handovers").json()
    hid = next(h["id"] for h in handovers if h["customer_key"] == OTHER)
    csrf = {"X-CSRF-Token": page.locator("meta[name=csrf-token]").get_attribute("content")}
    res = page.request.post(
        f"/admin/whatsapp/instances/{bot['id']}/handovers/{hid}/take", headers=csrf
    )
    assert res.status == 403
    assert "CSRF" not in res.text()
    still = orch.api("GET", "/admin/handovers").json()
    assert next(h["status"] for h in still if h["id"] == hid) == "pending"
    # An admin takes it elsewhere: the guest's open page follows without a reload.
    res = orch.api("POST", f"/admin/whatsapp/instances/{bot['id']}/handovers/{hid}/take")
    assert res.status_code == 200, res.text
    expect(page.get_by_test_id("panel-status")).to_have_text("taken by admin", timeout=10_000)
    # The Conversations tab marks the customer a person has.
    page.goto(f"/bots/whatsapp/{bot['id']}/conversations")
    row = page.locator(".customer", has_text=OTHER)
    expect(row.get_by_test_id("flag-with_person")).to_have_text("with a person")


def test_the_handoff_tab_sets_what_the_customer_is_told(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot['id']}/handoff")
    form = page.locator("#handoff-form")
    expect(form.locator("#ho-t-ask_for_person")).to_be_checked()
    # A bad number is refused in place, nothing saved.
    form.locator("#ho-timeout").fill("0")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("handoff-error")).to_contain_text("more than 0 minutes")
    form = page.locator("#handoff-form")
    form.locator("#ho-timeout").fill("45")
    form.locator("#ho-renotify").fill("15")
    form.locator("#ho-ack").fill("Someone from Desk Shop will write to you here.")
    form.locator("#ho-t-frustration").uncheck()
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("handoff-saved")).to_be_visible()
    shot(page, "handoff-tab")
    stored = orch.api("GET", f"/admin/whatsapp/instances/{bot['id']}").json()["handoff"]
    assert stored["triggers"]["frustration"] is False
    assert stored["renotify_minutes"] == 15
    assert stored["pending_timeout_minutes"] == 45
    assert stored["hours"] is None
    # A running bot uses it at once.
    phone = "+15550100883"
    _say(orch, bot["id"], phone, "Can I talk to your manager?")
    _wait_sent(orch, phone, "Someone from Desk Shop will write to you here.")

    guest = new_page()
    login(guest, "gus", "gus-password-1")
    guest.goto(f"/bots/whatsapp/{bot['id']}/handoff")
    expect(guest.locator("#ho-enabled")).to_be_disabled()
    expect(guest.locator("#ho-ack")).to_be_disabled()
    expect(guest.locator("#handoff-form").get_by_role("button", name="Save")).to_have_count(0)
