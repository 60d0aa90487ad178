"""The Funnel tab's form editor in a real browser against a real orchestrator: add a main-menu
button, see it in the phone preview and press it there, save, reload (checked through the API
too); an invalid edit is explained next to its field and not saved; "Advanced: JSON"
round-trips; guests see the funnel read-only but can still preview it."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from shared.funnel import default_funnel
from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _bot(orch: OrchestratorProcess, name: str, funnel: dict[str, Any] | None) -> str:
    res = orch.api("POST", "/admin/whatsapp/instances", json={"name": name, "enabled": False})
    assert res.status_code == 201, res.text
    bot_id = str(res.json()["id"])
    res = orch.api("PUT", f"/admin/whatsapp/instances/{bot_id}", json={"funnel": funnel})
    assert res.status_code == 200, res.text
    return bot_id


def _stored_funnel(orch: OrchestratorProcess, bot_id: str) -> Any:
    res = orch.api("GET", f"/admin/whatsapp/instances/{bot_id}")
    assert res.status_code == 200, res.text
    return res.json()["funnel"]


def test_add_a_menu_button_preview_it_save_and_reload(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    doc = copy.deepcopy(default_funnel().to_dict())
    bot_id = _bot(orch, "Funnel Form Shop", doc)
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot_id}/funnel")
    sim = page.get_by_test_id("fe-sim")
    # the preview opens with the greeting and the welcome buttons of the stored funnel
    expect(sim.get_by_test_id("fe-customer-msg").first).to_have_text("привет")
    welcome = sim.get_by_test_id("fe-bot-reply").first
    expect(welcome.locator(".wa-btn")).to_have_text([b["title"] for b in doc["welcome"]])
    expect(page.get_by_test_id("fe-status")).to_have_text("Valid")

    # add a fourth button that opens the pricing FAQ topic
    page.get_by_test_id("fe-add-button").click()
    expect(page.get_by_test_id("fe-menu-button")).to_have_count(4)
    page.get_by_label("Button 4 title", exact=True).fill("Prices")
    page.get_by_label("Button 4 action", exact=True).select_option(
        label="FAQ topic: Pricing & support"
    )
    expect(welcome.locator(".wa-btn", has_text="Prices")).to_be_visible()
    shot(page, "funnel-editor-new-button")
    # press it in the phone: the real router answers with the topic's questions
    welcome.locator(".wa-btn", has_text="Prices").click()
    expect(sim.get_by_test_id("fe-customer-msg").nth(1)).to_have_text("Prices")
    expect(sim.locator(".wa-row", has_text="How much?")).to_be_visible()
    assert _stored_funnel(orch, bot_id) == doc  # nothing saved by editing or previewing

    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    stored = _stored_funnel(orch, bot_id)
    assert stored["welcome"][3] == {"title": "Prices", "action": "faq:cat_pricing"}
    assert stored["welcome"][:3] == doc["welcome"]

    page.reload()
    expect(page.get_by_label("Button 4 title", exact=True)).to_have_value("Prices")
    expect(page.get_by_label("Button 4 action", exact=True)).to_have_value("faq:cat_pricing")
    expect(
        page.get_by_test_id("fe-sim").get_by_test_id("fe-bot-reply").first.locator(".wa-btn")
    ).to_have_text([*(b["title"] for b in doc["welcome"]), "Prices"])

    # remove and reorder: move "Prices" to the top
    for _ in range(3):
        page.get_by_test_id("fe-menu-button").nth(3 - _).get_by_role(
            "button", name="Move up"
        ).click()
    expect(page.get_by_label("Button 1 title", exact=True)).to_have_value("Prices")
    expect(
        page.get_by_test_id("fe-sim").get_by_test_id("fe-bot-reply").first.locator(".wa-btn").first
    ).to_have_text("Prices")


def test_an_invalid_edit_is_explained_and_not_saved(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    doc = copy.deepcopy(default_funnel().to_dict())
    bot_id = _bot(orch, "Funnel Check Shop", doc)
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot_id}/funnel")
    expect(page.get_by_test_id("fe-status")).to_have_text("Valid")

    page.get_by_label("Welcome message").fill("")
    error = page.locator('[data-error-for="texts.welcome"]')
    expect(error).to_have_text("must not be empty")
    expect(page.get_by_test_id("fe-problems")).to_contain_text("1 problem to fix before saving")
    expect(page.get_by_test_id("fe-sim-stale")).to_be_visible()
    page.get_by_label("Button 2 title", exact=True).fill("")
    expect(page.locator('[data-error-for="welcome.1.title"]')).to_have_text("must not be empty")
    shot(page, "funnel-editor-invalid")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-refused")).to_contain_text("Not saved")
    expect(page.get_by_test_id("saved")).to_have_count(0)
    assert _stored_funnel(orch, bot_id) == doc

    # an FAQ id that buttons can no longer reach is named at the button that points to it
    page.get_by_label("Welcome message").fill("Hello, {name}!")
    page.get_by_label("Button 2 title", exact=True).fill("FAQ")
    expect(page.get_by_test_id("fe-status")).to_have_text("Valid")
    expect(page.get_by_test_id("fe-sim-stale")).to_have_count(0)
    expect(page.get_by_test_id("fe-sim").get_by_test_id("fe-bot-reply").first).to_have_text(
        re.compile(r"^Hello, there!")
    )
    page.get_by_test_id("fe-add-button").click()
    page.get_by_label("Button 4 action", exact=True).select_option("faq:price")
    expect(page.get_by_test_id("fe-status")).to_have_text("Valid")
    page.locator('[data-path=\'["faq","sections",2,"items",0,"key"]\']').fill("cost")
    expect(page.locator('[data-error-for="welcome.3.action"]')).to_have_text(
        "points to the FAQ answer 'price', which does not exist"
    )
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-refused")).to_be_visible()
    assert _stored_funnel(orch, bot_id) == doc


def test_advanced_json_round_trips(new_page: Any, orch: OrchestratorProcess) -> None:
    bot_id = _bot(orch, "Funnel Json Shop", None)
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot_id}/funnel")
    # a bot without its own funnel starts from the built-in one
    expect(page.get_by_label("Button 1 title", exact=True)).to_have_value(
        default_funnel().welcome[0].title
    )
    page.get_by_label("Button 1 title", exact=True).fill("Find my AI")
    page.get_by_test_id("fe-mode-json").click()
    area = page.get_by_test_id("fe-json")
    text = area.input_value()
    assert '"title": "Find my AI"' in text
    area.fill(text.replace('"title": "Find my AI"', '"title": "Pick for me"'))
    expect(page.get_by_test_id("fe-json-state")).to_have_text("valid JSON")
    expect(
        page.get_by_test_id("fe-sim").get_by_test_id("fe-bot-reply").first.locator(".wa-btn").first
    ).to_have_text("Pick for me")
    area.fill("{ not json")
    expect(page.get_by_test_id("fe-json-state")).to_contain_text("Not valid JSON")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-refused")).to_be_visible()
    area.fill(text.replace('"title": "Find my AI"', '"title": "Pick for me"'))
    page.get_by_test_id("fe-mode-form").click()
    expect(page.get_by_label("Button 1 title", exact=True)).to_have_value("Pick for me")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    stored = _stored_funnel(orch, bot_id)
    assert stored["welcome"][0]["title"] == "Pick for me"
    assert stored["faq"] == default_funnel().to_dict()["faq"]  # untouched parts kept


def test_guest_sees_the_funnel_read_only_and_can_preview(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    doc = copy.deepcopy(default_funnel().to_dict())
    bot_id = _bot(orch, "Funnel Guest Shop", doc)
    password = "guest-funnel-password-1"
    res = orch.api(
        "POST", "/admin/users", json={"username": "fguest", "password": password, "role": "guest"}
    )
    assert res.status_code == 201, res.text
    page = new_page()
    login(page, "fguest", password)
    page.goto(f"/bots/whatsapp/{bot_id}/funnel")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.get_by_test_id("save")).to_have_count(0)
    expect(page.get_by_test_id("fe-add-button")).to_have_count(0)
    expect(page.get_by_label("Welcome message")).to_be_disabled()
    expect(page.get_by_label("Button 1 action", exact=True)).to_be_disabled()
    sim = page.get_by_test_id("fe-sim")
    sim.get_by_test_id("fe-bot-reply").first.locator(".wa-btn", has_text="FAQ").click()
    expect(sim.locator(".wa-row", has_text="Pricing & support")).to_be_visible()
    shot(page, "funnel-editor-guest")
    # the API refuses the guest's save whatever the page shows (with the page's CSRF token)
    csrf = {"X-CSRF-Token": page.locator("meta[name=csrf-token]").get_attribute("content")}
    res = page.request.put(
        f"/admin/whatsapp/instances/{bot_id}", headers=csrf, data={"funnel": None}
    )
    assert res.status == 403
    assert _stored_funnel(orch, bot_id) == doc


def test_a_new_bot_edits_its_template_screens(new_page: Any, orch: OrchestratorProcess) -> None:
    res = orch.api("POST", "/admin/whatsapp/instances", json={"name": "Corner Bakery"})
    assert res.status_code == 201, res.text
    bot_id = str(res.json()["id"])
    made = _stored_funnel(orch, bot_id)  # a new bot gets its funnel from a template
    screen = next(iter(made["screens"]))
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot_id}/funnel")
    sim = page.get_by_test_id("fe-sim")
    expect(sim.get_by_test_id("fe-bot-reply").first).to_contain_text("Corner Bakery")
    page.get_by_label(f"Screen {screen} text").fill("Ask about bread, cakes or *opening hours*.")
    button = next(b for b in made["welcome"] if b["action"] == f"sales:show:{screen}")
    sim.get_by_test_id("fe-bot-reply").first.locator(".wa-btn", has_text=button["title"]).click()
    expect(sim.get_by_test_id("fe-bot-reply").last).to_contain_text(
        "Ask about bread, cakes or opening hours."
    )
    expect(sim.get_by_test_id("fe-bot-reply").last.locator("b")).to_have_text("opening hours")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    stored = _stored_funnel(orch, bot_id)
    assert stored["screens"][screen]["text"] == "Ask about bread, cakes or *opening hours*."

    # start again from another template, filled with the bot's business values (not saved)
    page.get_by_test_id("fe-template").select_option("sales")
    page.get_by_test_id("fe-load-template").click()
    expect(page.get_by_test_id("fe-loaded")).to_be_visible()
    expect(page.get_by_label("Button 1 title", exact=True)).to_have_value(
        default_funnel().welcome[0].title
    )
    page.get_by_test_id("fe-template").select_option("documents")
    page.get_by_test_id("fe-load-template").click()
    expect(page.get_by_label("Welcome message")).to_have_value(re.compile("Corner Bakery"))
    expect(page.get_by_label(f"Screen {screen} text")).not_to_have_value(
        "Ask about bread, cakes or *opening hours*."
    )
    assert _stored_funnel(orch, bot_id) == stored


def test_add_an_faq_and_ask_it_in_the_preview_on_a_phone_screen(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    res = orch.api("POST", "/admin/whatsapp/instances", json={"name": "Harbour Florist"})
    assert res.status_code == 201, res.text
    bot_id = str(res.json()["id"])
    assert _stored_funnel(orch, bot_id)["faq"] is None  # the documents template has none
    page = new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    login(page)
    page.goto(f"/bots/whatsapp/{bot_id}/funnel")
    page.get_by_role("button", name="+ Add an FAQ").click()
    page.locator('[data-path=\'["faq","sections",0,"items",0,"answer"]\']').fill(
        "We are open 8:00–19:00, Sunday closed."
    )
    page.get_by_role("button", name="+ Add a question").click()
    new_item = page.locator('[data-loc="faq.sections.0.items.1"]')
    expect(new_item).to_be_visible()
    new_item.locator("[data-path$='\"title\"]']").fill("Delivery")
    new_item.locator("[data-path$='\"question\"]']").fill("Do you deliver?")
    new_item.locator("[data-path$='\"answer\"]']").fill("Yes, within the city the same day.")
    new_item.locator("[data-path$='\"keywords\"]']").fill("deliver, delivery, courier")
    expect(page.get_by_test_id("fe-status")).to_have_text("Valid")
    page.locator("[data-fe-sim-input]").fill("do you deliver")
    page.locator("[data-fe-sim-send]").click()
    sim = page.get_by_test_id("fe-sim")
    expect(sim.get_by_test_id("fe-customer-msg").last).to_have_text("do you deliver")
    expect(sim.get_by_test_id("fe-bot-reply").last).to_contain_text("Yes, within the city")
    # the page fits a phone screen: nothing wider than the viewport
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    shot(page, "funnel-editor-phone")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    items = _stored_funnel(orch, bot_id)["faq"]["sections"][0]["items"]
    assert items[1]["keywords"] == ["deliver", "delivery", "courier"]
    assert items[0]["answer"] == "We are open 8:00–19:00, Sunday closed."
