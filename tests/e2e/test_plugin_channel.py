"""Browser: a channel registered only through ``FLOTILLA_CHANNEL_PLUGINS`` (the test's webchat
kind under ``tests/support/webchat``) appears in the add-bot form, and its settings form is its
manifest's fields (labels, help text, a masked secret) — the UI knows channels only through
``GET /admin/channels``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, running_orchestrator, shot
from tests.support.orchestrator_proc import OrchestratorProcess

WIDGET = "http://127.0.0.1:9/widget"


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    """This module's orchestrator also loads the webchat plugin (no other test sees it)."""
    yield from running_orchestrator(
        tmp_path_factory, FLOTILLA_CHANNEL_PLUGINS="tests.support.webchat"
    )


def test_a_plugin_channel_appears_in_the_add_bot_form(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    page = new_page()
    login(page)
    page.get_by_test_id("add-bot").click()
    form = page.locator("#add-bot-form")
    kinds = form.locator("select[name=kind] option")
    expect(kinds).to_have_count(4)
    assert kinds.evaluate_all("os => os.map(o => [o.value, o.textContent.trim()])") == [
        ["whatsapp", "WhatsApp"],
        ["sms", "SMS"],
        ["telegram", "Telegram"],
        ["webchat", "Web chat"],
    ]
    form.locator("select[name=kind]").select_option("webchat")
    form.locator("input[name=name]").fill("Site Chat")
    expect(page.get_by_test_id("slug")).to_have_text("site-chat")
    sandbox = form.locator("input[name=sandbox]")
    if sandbox.count():
        sandbox.uncheck()  # the webchat channel has no sandbox provider
    form.get_by_role("button", name="Create bot").click()
    page.wait_for_url("**/bots/webchat/site-chat/settings")

    # The settings form is the manifest's fields, in plain language.
    expect(page.locator("label[for=f-webchat_secret]")).to_have_text("Widget secret")
    expect(page.locator("label[for=f-webchat_outbound_url]")).to_have_text("Widget address")
    expect(page.get_by_text("Where the bot posts its replies")).to_be_visible()
    page.fill("#f-webchat_secret", "widget-secret-e2e-4321")
    page.fill("#f-webchat_outbound_url", WIDGET)
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.locator("#f-webchat_secret")).to_have_value("****4321")
    shot(page, "plugin-channel-settings")
    stored = orch.api("GET", "/admin/webchat/instances/site-chat").json()
    assert stored["kind"] == "webchat"
    assert stored["webchat_secret"] == "****4321"
    assert stored["webchat_outbound_url"] == WIDGET
