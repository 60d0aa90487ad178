"""Browser: the setup flow makes a working bot for a made-up shop, and a customer's questions in
the test chat are answered from the shop's own document — no trace of the seed business.

Bots → Add bot → "set one up step by step" → name, what we do, hours and time zone, language,
channel (practice sandbox, on by default), template ("Answer questions from my documents"),
a document → "Create my bot" → the done page → "Try it" → the Test chat tab.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHOP = "Fernhill Plant Shop"
BOT = "fernhill-plant-shop"
DOCUMENT = """# Fernhill Plant Shop

## Opening hours
We are open Monday to Friday from 10:00 to 19:00 and on Saturday from 9:00 to 17:00.
On Sunday the shop is closed.

## Delivery
We deliver plants within 15 km of the shop for 6 euros. Orders over 60 euros are delivered
free of charge. Deliveries go out on Tuesdays and Fridays.

## Repotting
We repot your plant while you wait, for 8 euros per pot.

## Address
You will find the shop at 12 Orchard Road, next to the railway station.
"""
#: (question, a fact from the document the answer must carry)
QUESTIONS = [
    ("What time do you open on Saturday?", "9:00"),
    ("Do you deliver plants to my home?", "15 km"),
    ("Where is the shop?", "Orchard Road"),
]
SEED_TRACES = ("Private AI", "₽", "YooMoney", "your-org")


def test_setup_flow_makes_a_bot_that_answers_from_its_document(
    new_page: Any, orch: OrchestratorProcess, tmp_path: Path
) -> None:
    doc = tmp_path / "fernhill-plants.md"
    doc.write_text(DOCUMENT, encoding="utf-8")
    page = new_page()
    login(page)

    # From the Bots page's "Add bot" to the setup flow.
    page.get_by_test_id("add-bot").click()
    page.get_by_test_id("guided-setup").click()
    page.wait_for_url("**/setup")
    form = page.locator("#setup-form")
    form.locator("input[name=name]").fill(SHOP)
    form.locator("textarea[name=about]").fill("Houseplants, pots and repotting in the old town.")
    form.locator("input[name=hours]").fill("Mon–Fri 10:00–19:00, Sat 9:00–17:00")
    form.locator("input[name=timezone]").fill("Europe/Dublin")
    form.locator("input[name=language][value=en]").check()
    form.locator("input[name=contact]").fill("hello@fernhill.example")
    form.locator("select[name=kind]").select_option("whatsapp")
    expect(form.locator("input[name=sandbox]")).to_be_checked()  # practice mode by default
    expect(form.locator("input[name=template][value=documents]")).to_be_checked()
    form.locator("input[name=documents]").set_input_files(str(doc))
    assert "Private AI" not in page.locator("body").inner_text()  # not even the sales example
    shot(page, "setup-form")

    # A bad time zone comes back at its field, with the values kept.
    form.locator("input[name=timezone]").fill("Europe/Atlantis")
    form.get_by_test_id("setup-create").click()
    error = page.locator("[data-error-for=timezone]")
    expect(error).to_contain_text("is not a time zone", timeout=15_000)
    assert orch.api("GET", f"/admin/whatsapp/instances/{BOT}").status_code == 404
    form = page.locator("#setup-form")
    expect(form.locator("input[name=name]")).to_have_value(SHOP)
    form.locator("input[name=timezone]").fill("Europe/Dublin")
    form.locator("input[name=documents]").set_input_files(str(doc))
    form.get_by_test_id("setup-create").click()

    # Done: what was made, then "Try it".
    page.wait_for_url(re.compile(r"/setup/done\?"), timeout=120_000)
    done = page.get_by_test_id("setup-done")
    expect(done).to_contain_text(f"{SHOP} is ready")
    expect(done).to_contain_text("fernhill-plants.md")
    shot(page, "setup-done")
    page.get_by_test_id("try-it").click()
    page.wait_for_url(re.compile(rf"/bots/whatsapp/{BOT}/chat"))
    expect(page.get_by_test_id("state")).to_have_text("running", timeout=30_000)

    # A customer: the greeting names the shop; questions are answered from the document.
    msgs = page.get_by_test_id("sim-msgs")
    composer = page.locator(".composer")
    composer.locator("input[name=text]").fill("hi")
    composer.get_by_role("button", name="Send").click()
    expect(msgs).to_contain_text(f"assistant of {SHOP}", timeout=20_000)
    expect(msgs.get_by_role("button", name="Ask a question")).to_be_visible()
    # the menu offers the document's topics
    expect(msgs.get_by_role("button", name="Topics")).to_be_visible()
    replies = msgs.get_by_test_id("bot-reply")
    for question, fact in QUESTIONS:
        before = replies.count()
        composer.locator("input[name=text]").fill(question)
        composer.get_by_role("button", name="Send").click()
        expect(replies).to_have_count(before + 1, timeout=60_000)
        expect(replies.last).to_contain_text(fact)
    shot(page, "setup-test-chat")

    # No trace of the seed business: on the page, in the bot's funnel, in its profile.
    text = page.locator("body").inner_text()
    for trace in SEED_TRACES:
        assert trace not in text, trace
    bot = orch.api("GET", f"/admin/whatsapp/instances/{BOT}").json()
    stored = json.dumps(bot, ensure_ascii=False)
    for trace in SEED_TRACES:
        assert trace not in stored, trace
    assert bot["template"] == "documents"
    assert bot["business"]["timezone"] == "Europe/Dublin"
    assert len(bot["knowledge_base_ids"]) == 1
    topics = [i["title"] for i in bot["funnel"]["faq"]["sections"][0]["items"]]
    assert topics == ["Opening hours", "Delivery", "Repotting", "Address"]

    # The business profile stays editable: new hours, the texts made again from the template.
    page.get_by_test_id("business-profile").click()
    page.wait_for_url(f"**/setup/whatsapp/{BOT}")
    form = page.locator("#setup-form")
    expect(form.locator("input[name=name]")).to_have_value(SHOP)
    expect(form.locator("input[name=timezone]")).to_have_value("Europe/Dublin")
    form.locator("input[name=hours]").fill("Every day 8:00–20:00")
    form.locator("input[name=apply]").check()
    form.get_by_test_id("setup-save").click()
    expect(page.get_by_test_id("saved")).to_contain_text("made again", timeout=15_000)
    bot = orch.api("GET", f"/admin/whatsapp/instances/{BOT}").json()
    assert bot["business"]["hours"] == "Every day 8:00–20:00"
    assert "Every day 8:00–20:00" in bot["funnel"]["manager"]["text"]
    assert len(bot["knowledge_base_ids"]) == 1  # untouched
    assert bot["funnel"]["faq"]["sections"][0]["id"] == "topics"  # the topics menu stays
