"""The admin UI in a real browser against a real orchestrator, its bots and the sandbox.

Tests in this module share one orchestrator and run in file order: the first one creates and
runs the bot that later ones look at.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BOT = "e2e-shop"
CUSTOMER = "+15550100777"


def _token(orch: OrchestratorProcess, username: str, password: str) -> dict[str, str]:
    res = orch.http.post("/auth/token", data={"username": username, "password": password})
    assert res.status_code == 200, res.text
    return {"Authorization": f"Bearer {res.json()['access_token']}"}


def _user(orch: OrchestratorProcess, username: str, role: str) -> str:
    password = f"{username}-password-1"
    res = orch.api(
        "POST", "/admin/users", json={"username": username, "password": password, "role": role}
    )
    assert res.status_code in (201, 422), res.text  # 422: made by an earlier test
    return password


def test_signed_out_visitors_land_on_the_login_page(new_page: Any) -> None:
    page = new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("incorrect username or password")
    shot(page, "login")
    page.goto("/fleet")
    expect(page).to_have_url(re.compile(r"/login$"))


def test_session_cookie_is_httponly_strict_and_logout_ends_it(new_page: Any) -> None:
    page = new_page()
    login(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "flotilla_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # not readable by scripts
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/bots")
    expect(page).to_have_url(re.compile(r"/login$"))


def test_admin_creates_starts_chats_reads_logs_and_stops_a_bot(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    page = new_page()
    login(page)
    expect(page.get_by_test_id("whoami")).to_have_text("admin")

    # Add bot: kind + name, the slug is shown before creating.
    page.get_by_test_id("add-bot").click()
    form = page.locator("#add-bot-form")
    form.locator("select[name=kind]").select_option("whatsapp")
    form.locator("input[name=name]").fill("E2E Shop")
    expect(page.get_by_test_id("slug")).to_have_text(BOT)
    # New bots start from "Answer questions from my documents"; this one takes the sales
    # funnel, whose quiz (WhatsApp list rows) the test chat plays below.
    form.locator("select[name=template]").select_option("sales")
    form.locator("input[name=sandbox]").uncheck()  # wire it to the sandbox by hand below
    form.get_by_role("button", name="Create bot").click()
    page.wait_for_url(f"**/bots/whatsapp/{BOT}/settings")

    # Settings: channel credentials pointing at the sandbox Graph API.
    page.fill("#f-phone_number_id", "100000000000777")
    page.fill("#f-access_token", "sandbox-access-token-e2e-9876")
    page.fill("#f-app_secret", "app-secret-e2e-5555")
    page.fill("#f-graph_api_base_url", f"{orch.sandbox_url}/graph")  # type: ignore[attr-defined]
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.locator("#f-access_token")).to_have_value("****9876")
    # Saving again with the masked secrets untouched keeps them.
    page.fill("#f-wa_template_language", "pl_PL")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    expect(page.locator("#f-access_token")).to_have_value("****9876")
    stored = orch.api("GET", f"/admin/whatsapp/instances/{BOT}").json()
    assert stored["access_token"] == "****9876"
    assert stored["wa_template_language"] == "pl_PL"
    shot(page, "bot-settings")

    # Start: the indicator turns green without a reload.
    item = page.locator(f"li.bot[data-bot={BOT}]")
    expect(item.get_by_test_id("indicator")).to_have_class(re.compile(r"\bgrey\b"))
    page.evaluate("window.__same_document = true")
    item.get_by_role("button", name=re.compile("Start")).click()
    expect(item).to_have_attribute("data-state", "running", timeout=30_000)
    expect(item.get_by_test_id("indicator")).to_have_class(re.compile(r"\bgreen\b"))
    expect(page.get_by_test_id("state")).to_have_text("running")
    assert page.evaluate("window.__same_document") is True  # no page reload happened
    shot(page, "bots")

    # Test chat: "hi" → the greeting with reply buttons; a tap sends the button id.
    page.locator("[data-tab=chat]").click()
    page.wait_for_url(re.compile(r"/chat"))
    page.fill("input[aria-label='Customer number']", CUSTOMER)
    page.get_by_role("button", name="Use").click()
    page.wait_for_url(re.compile(r"to=%2B15550100777"))
    page.fill(".composer input[name=text]", "hi")
    page.locator(".composer").get_by_role("button", name="Send").click()
    msgs = page.get_by_test_id("sim-msgs")
    expect(msgs.get_by_test_id("customer-msg").first).to_have_text(re.compile("hi"))
    button = msgs.get_by_role("button", name="Find my solution")
    expect(button).to_be_visible(timeout=15_000)
    assert button.get_attribute("data-payload") == "sales:quiz"
    button.click()
    expect(msgs).to_contain_text("Question 1 of 5", timeout=15_000)
    expect(msgs).to_contain_text("Who will install and maintain the assistant?")
    # The quiz step's answers are WhatsApp list rows; pick one as the customer would.
    msgs.locator("details.wa-list summary").last.click()
    msgs.get_by_role("button", name=re.compile("I'll do it myself")).click()
    expect(msgs).to_contain_text("Question 2 of 5", timeout=15_000)
    shot(page, "test-chat")

    # Conversations: the customer with the bot's replies and their delivery status.
    page.locator("[data-tab=conversations]").click()
    page.locator(".customer", has_text=CUSTOMER).click()
    chat = page.locator("#chat-messages")
    expect(chat.get_by_test_id("bubble-in").first).to_contain_text("hi")
    expect(chat.get_by_test_id("bubble-out").first).to_contain_text("What would you like to do?")
    expect(chat.locator(".ticks").first).to_have_attribute("title", re.compile("sent|delivered"))
    page.fill("textarea[name=text]", "A person here: how can I help?")
    page.locator("#send-box").get_by_role("button", name="Send").click()
    expect(chat).to_contain_text("A person here: how can I help?", timeout=10_000)
    shot(page, "conversations")
    sent = httpx.get(
        f"{orch.sandbox_url}/_sandbox/messages",  # type: ignore[attr-defined]
        params={"provider": "graph", "to": CUSTOMER.lstrip("+")},
    ).json()["messages"]
    assert any((m.get("text") or "") == "A person here: how can I help?" for m in sent)

    # Logs: the last lines, with what the bot just did.
    page.locator("[data-tab=logs]").click()
    lines = page.get_by_test_id("log-line")
    expect(lines.first).to_be_visible()
    expect(page.locator("#log-view")).to_contain_text("message handled")
    download = page.get_by_role("link", name=re.compile("Download"))
    assert "format=text" in (download.get_attribute("href") or "")
    shot(page, "logs")

    # Fleet overview counts today's messages.
    page.get_by_role("link", name="Fleet").click()
    row = page.locator(f"tr[data-bot={BOT}]")
    expect(row).to_have_attribute("data-state", "running")
    assert int(row.get_by_test_id("messages-today").inner_text()) >= 6
    shot(page, "fleet")

    # Stop: grey again.
    page.get_by_role("link", name="Bots").click()
    item = page.locator(f"li.bot[data-bot={BOT}]")
    item.get_by_role("button", name=re.compile("Stop")).click()
    expect(item).to_have_attribute("data-state", "stopped", timeout=30_000)
    expect(item.get_by_test_id("indicator")).to_have_class(re.compile(r"\bgrey\b"))


def test_errors_are_shown_at_their_field(new_page: Any, orch: OrchestratorProcess) -> None:
    page = new_page()
    login(page)
    base = f"/bots/whatsapp/{BOT}"

    page.goto(f"{base}/ai")
    page.fill("#f-llm_params", '{"temperature": 0.5,')
    expect(page.locator("#f-llm_params-state")).to_contain_text("not valid JSON")
    page.get_by_test_id("save").click()
    expect(page.locator("[data-error-for=llm_params]")).to_contain_text("not valid JSON")
    page.fill("#f-llm_params", '{"temperature": 7}')
    page.get_by_test_id("save").click()
    expect(page.locator("[data-error-for=llm_params]")).to_contain_text("temperature")
    page.fill("#f-llm_params", '{"temperature": 0.2, "max_tokens": 256, "top_p": 0.9}')
    page.fill("#f-persona", "Friendly and brief.")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_be_visible()
    shot(page, "bot-ai")
    stored = orch.api("GET", f"/admin/whatsapp/instances/{BOT}").json()
    assert stored["llm_params"]["temperature"] == 0.2
    assert stored["persona"] == "Friendly and brief."

    page.goto(f"{base}/funnel")  # the form editor; its own tests: tests/e2e/test_funnel_editor.py
    page.get_by_test_id("fe-mode-json").click()
    expect(page.get_by_test_id("fe-json")).to_have_value(re.compile(r'"greetings"'))
    page.get_by_test_id("fe-json").fill('{"version": 1, "greetings": 5}')
    expect(page.get_by_test_id("fe-problems")).to_contain_text("greetings")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-refused")).to_be_visible()
    assert "Traceback" not in page.content()
    shot(page, "bot-funnel")

    page.goto(f"{base}/limits")
    page.fill("#f-rate_limit_count", "-3")
    page.get_by_test_id("save").click()
    expect(page.locator("[data-error-for=rate_limit_count]")).to_contain_text(
        "greater than or equal to 0"
    )
    expect(page.locator("#f-rate_limit_count")).to_have_value("-3")  # what was typed stays

    page.goto(f"{base}/access")
    page.fill("#f-allowed_phones", "+48600100200\nhello")
    page.get_by_test_id("save").click()
    expect(page.locator("[data-error-for=allowed_phones]")).to_contain_text("hello")
    shot(page, "bot-access")
    assert orch.api("GET", f"/admin/whatsapp/instances/{BOT}").json()["allowed_phones"] == []

    for tab in ("tts", "knowledge"):
        page.goto(f"{base}/{tab}")
        expect(page.locator("#tab-form")).to_be_visible()
        shot(page, f"bot-{tab}")


def test_guest_sees_no_controls_and_the_server_refuses_anyway(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    password = _user(orch, "gina", "guest")
    page = new_page()
    login(page, "gina", password)
    item = page.locator(f"li.bot[data-bot={BOT}]")
    expect(item).to_be_visible()
    expect(item.get_by_role("button")).to_have_count(0)
    expect(page.get_by_test_id("add-bot")).to_have_count(0)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    page.goto(f"/bots/whatsapp/{BOT}/settings")
    expect(page.get_by_test_id("save")).to_have_count(0)
    expect(page.locator("#f-name")).to_be_disabled()
    shot(page, "guest-bots")
    # The API refuses a guest whatever the page shows, with the same session cookie (and the
    # page's CSRF token, so it is the role that is refused, not a missing token).
    csrf = {"X-CSRF-Token": page.locator("meta[name=csrf-token]").get_attribute("content")}
    res = page.request.post(f"/admin/whatsapp/instances/{BOT}/start", headers=csrf)
    assert res.status == 403
    assert "CSRF" not in res.text()
    res = page.request.post(f"/ui/bots/whatsapp/{BOT}/control/start", headers=csrf)
    assert "read-only" in res.text()
    assert orch.status("whatsapp", BOT)["state"] == "stopped"
    assert page.request.get("/users").status == 403


def test_a_user_sees_only_their_own_bots(new_page: Any, orch: OrchestratorProcess) -> None:
    alice_pw = _user(orch, "alice", "user")
    bob_pw = _user(orch, "bob", "user")
    res = orch.http.post(
        "/admin/whatsapp/instances",
        json={"name": "Alice Flowers"},
        headers=_token(orch, "alice", alice_pw),
    )
    assert res.status_code == 201, res.text

    page = new_page()
    login(page, "bob", bob_pw)
    expect(page.locator("li.bot[data-bot=alice-flowers]")).to_have_count(0)
    expect(page.locator(f"li.bot[data-bot={BOT}]")).to_have_count(0)
    page.goto("/bots/whatsapp/alice-flowers/settings")
    expect(page.locator(".alert.error")).to_contain_text("not found")
    page.goto("/fleet")
    expect(page.locator("tr[data-bot=alice-flowers]")).to_have_count(0)

    page = new_page()
    login(page, "alice", alice_pw)
    expect(page.locator("li.bot[data-bot=alice-flowers]")).to_be_visible()
    expect(page.locator(f"li.bot[data-bot={BOT}]")).to_have_count(0)


def test_admin_manages_users(new_page: Any, orch: OrchestratorProcess) -> None:
    page = new_page()
    login(page)
    page.get_by_role("link", name="Users").click()
    page.fill("#nu-username", "carol")
    page.fill("#nu-password", "short")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("[data-error-for=password]")).to_be_visible()
    page.fill("#nu-password", "carol-password-1")
    page.get_by_role("button", name="Create user").click()
    row = page.locator("tr[data-user=carol]")
    expect(row).to_be_visible()
    row.get_by_label("Role of carol").select_option("guest")
    expect(page.get_by_role("status")).to_have_text("carol: role guest.")
    page.locator("tr[data-user=carol]").get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_have_text("carol: disabled.")
    expect(page.locator("tr[data-user=carol] select")).to_have_value("guest")
    expect(page.locator("tr[data-user=carol]")).to_contain_text("disabled")
    shot(page, "users")
    users = {u["username"]: u for u in orch.api("GET", "/admin/users").json()}
    assert users["carol"]["role"] == "guest"
    assert users["carol"]["active"] is False
    res = orch.http.post("/auth/token", data={"username": "carol", "password": "carol-password-1"})
    assert res.status_code == 401


def test_knowledge_page_works_or_says_it_is_not_available(new_page: Any) -> None:
    page = new_page()
    login(page)
    page.get_by_role("link", name="Knowledge").click()
    page.wait_for_url("**/knowledge")
    unavailable = page.get_by_test_id("kb-unavailable")
    create = page.get_by_role("button", name="Create")
    expect(unavailable.or_(create)).to_be_visible()
    assert "Traceback" not in page.content()
    shot(page, "knowledge")
