"""Suggested answers on the Desk in a real browser (issue 13 item 6): a question the bot could
not answer is handed to a person, the person replies and resolves it on the Desk → the pair
appears under "Suggested answers" → edited and accepted → the bot answers the same question
with it. A guest sees the suggestions without controls.

Real orchestrator subprocess, a real whatsapp_bot subprocess, the sandbox Graph API; the
customer writes through the test chat's API (``/simulate``).
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

CUSTOMER = "+15550100891"
QUESTION = "Do you deliver to Gdansk?"
REPLY = "Yes we do, in 2 days."
EDITED = "Yes, we deliver to Gdansk in two days."


def _sent_to(orch: OrchestratorProcess, phone: str) -> list[str]:
    res = httpx.get(
        f"{orch.sandbox_url}/_sandbox/messages",  # type: ignore[attr-defined]
        params={"provider": "graph", "to": phone.lstrip("+")},
    )
    return [str(m.get("text") or "") for m in res.json()["messages"]]


def _wait_sent(orch: OrchestratorProcess, phone: str, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text == t for t in _sent_to(orch, phone)):
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
    made = orch.create_bot(name="Answers Shop", **bot_fields(sandbox))
    res = orch.api("POST", f"/admin/whatsapp/instances/{made['id']}/start")
    assert res.status_code == 200, res.text
    orch.wait_state("whatsapp", made["id"], "running", timeout=30)
    return made


def test_accept_an_edited_suggested_answer_on_the_desk(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    _say(orch, bot["id"], CUSTOMER, QUESTION)
    _wait_sent(orch, CUSTOMER, "A manager will answer you here shortly.")

    page = new_page()
    login(page)
    page.goto("/desk")
    expect(page.get_by_test_id("proposals-empty")).to_be_visible()
    row = page.get_by_test_id("handover").first
    expect(row).to_contain_text(QUESTION, timeout=15_000)
    row.click()
    page.wait_for_url(re.compile(r"/desk\?"))
    page.fill("#desk-panel textarea[name=text]", REPLY)
    page.locator("#desk-panel").get_by_role("button", name="Reply").click()
    _wait_sent(orch, CUSTOMER, REPLY)
    page.locator("#desk-panel").get_by_role("button", name="Resolve").click()
    expect(page.get_by_test_id("desk-panel")).to_have_attribute("data-status", "resolved")

    # The resolve refreshes the suggestions: the question with the person's reply.
    proposal = page.get_by_test_id("proposal")
    expect(proposal).to_have_count(1, timeout=10_000)
    expect(proposal.get_by_label("Question")).to_have_value(QUESTION)
    expect(proposal.get_by_label("Answer")).to_have_value(REPLY)
    shot(page, "desk-proposal")
    proposal.get_by_label("Answer").fill(EDITED)
    proposal.get_by_role("button", name="Accept").click()
    expect(page.get_by_test_id("proposal-accepted")).to_be_visible()
    expect(page.get_by_test_id("proposal")).to_have_count(0)
    expect(page.get_by_test_id("proposals-empty")).to_be_visible()
    shot(page, "desk-proposal-accepted")

    accepted = orch.api("GET", "/admin/answer-proposals", params={"status": "accepted"}).json()
    assert [(p["question"], p["answer"]) for p in accepted] == [(QUESTION, EDITED)]
    # The bot answers the same question itself now, with the edited answer; no new handover.
    _say(orch, bot["id"], CUSTOMER, QUESTION)
    _wait_sent(orch, CUSTOMER, EDITED)
    assert orch.api("GET", "/admin/handovers").json() == []


def test_a_guest_sees_suggestions_without_controls(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    phone = "+15550100892"
    _say(orch, bot["id"], phone, "Can I pay with a gift card?")
    _wait_sent(orch, phone, "A manager will answer you here shortly.")
    hid = next(h["id"] for h in orch.api("GET", "/admin/handovers").json())
    url = f"/admin/whatsapp/instances/{bot['id']}/handovers/{hid}"
    assert (
        orch.api("POST", f"{url}/reply", json={"text": "Yes, gift cards work."}).status_code == 202
    )
    assert orch.api("POST", f"{url}/resolve").status_code == 200
    res = orch.api(
        "POST",
        "/admin/users",
        json={"username": "guesty", "password": "guesty-password-123", "role": "guest"},
    )
    assert res.status_code == 201, res.text

    page = new_page()
    login(page, "guesty", "guesty-password-123")
    page.goto("/desk")
    proposal = page.get_by_test_id("proposal")
    expect(proposal).to_contain_text("Can I pay with a gift card?")
    expect(proposal).to_contain_text("Yes, gift cards work.")
    expect(proposal.get_by_role("button")).to_have_count(0)


def test_the_handoff_tab_switches_auto_accept(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot['id']}/handoff")
    form = page.locator("#handoff-form")
    box = form.get_by_label("Add them to the knowledge base at once")
    expect(box).not_to_be_checked()
    box.check()
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("handoff-saved")).to_be_visible()
    stored = orch.api("GET", f"/admin/whatsapp/instances/{bot['id']}").json()["handoff"]
    assert stored["auto_accept_answers"] is True
    page.reload()
    expect(
        page.locator("#handoff-form").get_by_label("Add them to the knowledge base at once")
    ).to_be_checked()
    page.locator("#handoff-form").get_by_label("Add them to the knowledge base at once").uncheck()
    page.locator("#handoff-form").get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("handoff-saved")).to_be_visible()
    stored = orch.api("GET", f"/admin/whatsapp/instances/{bot['id']}").json()["handoff"]
    assert stored["auto_accept_answers"] is False
