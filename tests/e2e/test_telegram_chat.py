"""Browser: a fresh Telegram bot works out of the box with the sandbox, and one that refuses
every update says so.

The add-bot form wires a new Telegram bot to the sandbox (a generated bot token *and* webhook
secret); started, it is green with no "needs attention"; the test chat's customer is a
Telegram user id (not a phone, which the Telegram simulator answers 422) and "hi" gets the
greeting. Then updates with a wrong secret token arrive through ``/hooks``: the bot's header
and the Fleet page turn amber with the reason.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess

BOT = "tg-bakery"


def test_a_fresh_telegram_bot_chats_and_shows_attention_when_updates_are_refused(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    page = new_page()
    login(page)
    page.get_by_test_id("add-bot").click()
    form = page.locator("#add-bot-form")
    form.locator("select[name=kind]").select_option("telegram")
    form.locator("input[name=name]").fill("TG Bakery")
    expect(page.get_by_test_id("slug")).to_have_text(BOT)
    expect(form.locator("input[name=sandbox]")).to_be_checked()
    form.get_by_role("button", name="Create bot").click()
    page.wait_for_url(f"**/bots/telegram/{BOT}/settings")

    # The sandbox wiring includes a generated webhook secret (shown masked).
    expect(page.locator("#f-webhook_secret")).to_have_value(re.compile(r"^\*{4}\w{4}$"))
    stored = orch.api("GET", f"/admin/telegram/instances/{BOT}").json()
    assert stored["webhook_secret"].startswith("****")
    assert stored["telegram_api_base_url"] == f"{orch.sandbox_url}/telegram"  # type: ignore[attr-defined]

    # Start: green, nothing needs attention.
    item = page.locator(f"li.bot[data-bot={BOT}]")
    item.get_by_role("button", name=re.compile("Start")).click()
    expect(item).to_have_attribute("data-state", "running", timeout=30_000)
    expect(page.get_by_test_id("state")).to_have_text("running")
    expect(page.get_by_test_id("attention")).to_have_count(0)

    # Test chat: the customer is a Telegram user id; "hi" → the greeting.
    page.locator("[data-tab=chat]").click()
    page.wait_for_url(re.compile(r"/chat"))
    customer = page.locator("input[aria-label='Customer number']").input_value()
    assert re.fullmatch(r"\d{5,20}", customer), customer
    page.fill(".composer input[name=text]", "hi")
    page.locator(".composer").get_by_role("button", name="Send").click()
    msgs = page.get_by_test_id("sim-msgs")
    expect(msgs.get_by_test_id("customer-msg").first).to_have_text(re.compile("hi"))
    expect(msgs.locator(".error")).to_have_count(0)
    reply = msgs.get_by_test_id("bot-reply").first
    expect(reply).to_be_visible(timeout=15_000)
    assert reply.inner_text().strip()
    shot(page, "telegram-test-chat")
    assert orch.status("telegram", BOT).get("attention") is None, (
        "a bot that answers must not need attention"
    )

    # Updates signed with another secret (e.g. the webhook registered by another install):
    # refused, and after a few in a row the bot needs attention, with the reason.
    for n in range(4):
        res = httpx.post(
            f"{orch.url}/hooks/telegram/{BOT}/webhook",
            json={"update_id": 900 + n, "message": {"message_id": n, "text": "hello"}},
            headers={"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"},
            timeout=10,
        )
        assert res.status_code == 403, res.text
    page.locator("[data-tab=settings]").click()
    attention = page.get_by_test_id("attention")
    expect(attention).to_contain_text("Needs attention", timeout=15_000)
    expect(attention).to_contain_text("different secret token")
    expect(page.locator("#bot-status .dot")).to_have_class(re.compile(r"\battention\b"))
    shot(page, "telegram-needs-attention")

    page.get_by_role("link", name="Fleet").click()
    row = page.locator(f"tr[data-bot={BOT}]")
    expect(row).to_have_attribute("data-attention", "1")
    expect(row.get_by_test_id("attention")).to_contain_text("different secret token")
    expect(row.locator(".dot")).to_have_class(re.compile(r"\battention\b"))
    shot(page, "fleet-needs-attention")

    orch.api("POST", f"/admin/telegram/instances/{BOT}/stop")
