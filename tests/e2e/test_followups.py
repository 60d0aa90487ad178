"""Follow-ups in a real browser (issue 14): the bot's Follow-ups tab (switch on, edit a
reminder, a clear error for a bad value), then a conversation shows the customer's active
sequence with its next reminder time, and Stop ends it ("stopped by hand"). A guest sees the
settings and the panel but no controls.

Real orchestrator subprocess, a real whatsapp_bot subprocess, the sandbox Graph API; the customer
writes through the test chat's API (``/simulate``), as the Test chat tab does.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess
from tests.support.wa import bot_fields

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUSTOMER = "+15550100991"


@pytest.fixture(scope="module")
def bot(orch: OrchestratorProcess) -> dict[str, Any]:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    return orch.create_bot(name="Reminder Shop", template="sales", **bot_fields(sandbox))


def _followups(orch: OrchestratorProcess, bot_id: str) -> dict[str, Any]:
    res = orch.api("GET", f"/admin/whatsapp/instances/{bot_id}")
    assert res.status_code == 200, res.text
    return res.json()["followups"]  # type: ignore[no-any-return]


def test_owner_switches_reminders_on_and_edits_them(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot['id']}/settings")
    page.locator("[data-tab=followups]").click()
    page.wait_for_url(re.compile(r"/followups$"))
    form = page.locator("#followups-form")
    expect(form).to_contain_text("When a customer stops answering")
    checkbox = form.locator("#fu-enabled")
    expect(checkbox).not_to_be_checked()  # off by default
    hours = form.locator("input[name=after_hours]")
    texts = form.locator("textarea[name=text]")
    expect(hours.nth(0)).to_have_value("24")
    expect(hours.nth(4)).to_have_value("720")

    # a bad value is explained, nothing is saved
    checkbox.check()
    hours.nth(0).fill("")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("followups-error")).to_contain_text(
        "Reminder 1: say after how many hours to send it."
    )
    assert _followups(orch, bot["id"])["enabled"] is False
    # the API's own check comes back in plain words too
    form = page.locator("#followups-form")
    form.locator("input[name=after_hours]").nth(0).fill("100")  # after reminder 2's 72 h
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("followups-error")).to_contain_text("later than the one before")

    form = page.locator("#followups-form")
    form.locator("input[name=after_hours]").nth(0).fill("24")
    form.locator("textarea[name=text]").nth(0).fill("Hi! Any questions about our offer?")
    form.locator("#fu-timezone").fill("Asia/Almaty")
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("followups-saved")).to_be_visible()
    shot(page, "followups-settings")
    saved = _followups(orch, bot["id"])
    assert saved["enabled"] is True
    assert saved["timezone"] == "Asia/Almaty"
    assert saved["touches"][0] == {
        "after_hours": 24.0,
        "text": "Hi! Any questions about our offer?",
    }
    assert [t["after_hours"] for t in saved["touches"]] == [24, 72, 168, 336, 720]
    page.reload()
    expect(page.locator("#fu-enabled")).to_be_checked()
    expect(texts.nth(0)).to_have_value("Hi! Any questions about our offer?")


def test_conversation_shows_the_active_sequence_and_stop_ends_it(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    res = orch.api("POST", f"/admin/whatsapp/instances/{bot['id']}/start")
    assert res.status_code == 200, res.text
    orch.wait_state("whatsapp", bot["id"], "running", timeout=30)
    res = orch.api(
        "POST",
        f"/admin/whatsapp/instances/{bot['id']}/simulate",
        json={"from": CUSTOMER, "text": "hi"},
    )
    assert res.status_code == 202, res.text
    url = f"/admin/whatsapp/instances/{bot['id']}/conversations/{CUSTOMER}/followups"
    deadline = time.monotonic() + 20
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = orch.api("GET", url)
        state = got.json() if got.status_code == 200 else {}
        if state.get("sequence"):
            break
        time.sleep(0.2)
    assert state["sequence"]["active"] is True, state

    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot['id']}/conversations?customer=%2B15550100991")
    panel = page.get_by_test_id("followup-panel")
    expect(panel.get_by_test_id("followup-state")).to_have_text("reminders on")
    expect(panel).to_contain_text("0 of 5 sent")
    next_due = state["sequence"]["next_due_at"][:16].replace("T", " ")
    expect(panel.get_by_test_id("followup-next")).to_have_text(f"{next_due} UTC")
    shot(page, "followups-conversation")
    panel.get_by_test_id("followup-stop").click()
    panel = page.get_by_test_id("followup-panel")
    expect(panel.get_by_test_id("followup-state")).to_have_text("reminders ended")
    expect(panel).to_contain_text("stopped by hand")
    after = orch.api("GET", url).json()
    assert after["sequence"]["stop_reason"] == "stopped_by_operator"
    assert after["sequence"]["active"] is False


def test_a_guest_sees_reminders_without_controls(
    new_page: Any, orch: OrchestratorProcess, bot: dict[str, Any]
) -> None:
    password = "guest-reminders-1"
    res = orch.api(
        "POST",
        "/admin/users",
        json={"username": "fu-guest", "password": password, "role": "guest"},
    )
    assert res.status_code in (201, 422), res.text
    page = new_page()
    login(page, "fu-guest", password)
    page.goto(f"/bots/whatsapp/{bot['id']}/followups")
    form = page.locator("#followups-form")
    expect(form.locator("#fu-enabled")).to_be_disabled()
    expect(form.get_by_role("button", name="Save")).to_have_count(0)
    page.goto(f"/bots/whatsapp/{bot['id']}/conversations?customer=%2B15550100991")
    panel = page.get_by_test_id("followup-panel")
    expect(panel.get_by_test_id("followup-state")).to_have_text("reminders ended")
    expect(panel.get_by_test_id("followup-stop")).to_have_count(0)
