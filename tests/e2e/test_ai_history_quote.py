"""Issue 14 items 8 and 9 in a real browser: on the bot's AI tab the owner sets how many earlier
messages the AI reads (0–50; a bad value is explained at the field, nothing saved) and switches
reply quoting off; the API has the values.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess
from tests.support.wa import bot_fields

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _stored(orch: OrchestratorProcess, bot_id: str) -> dict[str, Any]:
    res = orch.api("GET", f"/admin/whatsapp/instances/{bot_id}")
    assert res.status_code == 200, res.text
    return res.json()  # type: ignore[no-any-return]


def test_owner_sets_the_history_length_and_the_quote_switch(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    sandbox = orch.sandbox_url  # type: ignore[attr-defined]
    bot = orch.create_bot(name="History Shop", **bot_fields(sandbox))
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot['id']}/ai")
    history = page.locator("#f-llm_history")
    quote = page.locator("#f-quote_replies")
    expect(page.locator("label[for=f-llm_history]")).to_have_text("Earlier messages the AI reads")
    expect(history).to_have_value("20")  # the default, as in seed 003
    expect(quote).to_be_checked()  # on by default

    history.fill("51")
    page.get_by_test_id("save").click()
    expect(page.locator("[data-error-for=llm_history]")).to_contain_text("50")
    expect(history).to_have_value("51")  # what was typed stays
    assert _stored(orch, bot["id"])["llm_history"] == 20

    history.fill("8")
    quote.uncheck()
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    shot(page, "bot-ai-history")
    stored = _stored(orch, bot["id"])
    assert stored["llm_history"] == 8
    assert stored["quote_replies"] is False

    page.reload()
    expect(page.locator("#f-llm_history")).to_have_value("8")
    expect(page.locator("#f-quote_replies")).not_to_be_checked()
