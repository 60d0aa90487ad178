"""Browser: issue 12's admin-UI fixes on a real orchestrator with the sandbox.

One preview panel however often the AI tab is saved; long names and a phone-sized screen keep
the layout (no sideways scrolling of the page); deleting a knowledge base (saying which bots
use it) and a single document; changing your own password (other sessions end) and an admin
resetting someone else's; plain-language labels and messages on every tab of every kind; the
test chat keeping its customer across tabs, following the bot's state without a reload and
playing a voice note; a readable Logs view with the raw JSON one click away.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import login, shot
from tests.support.orchestrator_proc import OrchestratorProcess

PHONE = {"width": 390, "height": 844}
#: Words a business owner should not have to read (technical terms may stay in tooltips).
JARGON = ("BSUID", "bsuid", "extractive", "Parameters (JSON)", "seed 004", "seed-004",
          "E.164", "FLOTILLA_", "LLM backend")  # fmt: skip
#: Pieces of regular expressions: ``^[``, ``\d``, ``]{``, ``+$``, ``(?``.
REGEX_RE = re.compile(r"\^\[|\\d|\\w|\]\{|\]\+|\+\$|\(\?")
TABS = ("settings", "ai", "tts", "access", "limits", "funnel", "knowledge", "logs",
        "conversations", "chat")  # fmt: skip


def no_sideways_scroll(page: Any) -> None:
    """The page is no wider than the window, and the window no wider than the screen (a phone
    browser widens its layout viewport, zoomed out, to hold content that does not fit)."""
    width = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: page is {width[0]} px wide in {width[1]} px"
    screen = page.viewport_size["width"]
    assert width[1] <= screen, f"{page.url}: laid out {width[1]} px wide on a {screen} px screen"


def sandbox_bot(page: Any, kind: str, name: str) -> str:
    """Add a bot wired to the sandbox through the add-bot form; its id."""
    page.goto("/bots")
    page.get_by_test_id("add-bot").click()
    form = page.locator("#add-bot-form")
    form.locator("select[name=kind]").select_option(kind)
    form.locator("input[name=name]").fill(name)
    form.get_by_role("button", name="Create bot").click()
    page.wait_for_url(re.compile(rf"/bots/{kind}/[^/]+/settings$"))
    return str(page.url.rsplit("/", 2)[-2])


def phone_page(browser: Any, orch: OrchestratorProcess) -> Any:
    ctx = browser.new_context(base_url=orch.url, viewport=PHONE, is_mobile=True)
    ctx.set_default_timeout(10_000)
    return ctx.new_page()


def test_saving_the_ai_tab_keeps_one_preview_panel(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    bot = orch.create_bot("whatsapp", name="Preview Panel Bot")["id"]
    page = new_page()
    login(page)
    page.goto(f"/bots/whatsapp/{bot}/ai")
    for n in range(3):
        page.fill("#f-persona", f"calm {n}")
        with page.expect_response(lambda r: r.request.method == "POST" and "/ai" in r.url):
            page.get_by_test_id("save").click()
        expect(page.get_by_test_id("saved")).to_be_visible()
        expect(page.locator("#f-persona")).to_have_value(f"calm {n}")
    expect(page.get_by_test_id("ai-preview")).to_have_count(1)
    expect(page.locator("#ai-test-result")).to_have_count(1)
    expect(page.locator("#tab-form")).to_have_count(1)
    assert orch.api("GET", f"/admin/whatsapp/instances/{bot}").json()["persona"] == "calm 2"


def test_long_names_keep_the_layout_on_a_desktop_and_a_phone(
    new_page: Any, browser: Any, orch: OrchestratorProcess
) -> None:
    name = ("Rosie'sBakeryAndCoffeeRoastery" * 7)[:200]
    assert len(name) == 200
    bot = orch.create_bot("whatsapp", name=name)["id"]
    user = "u" * 60
    res = orch.api("POST", "/admin/users", json={
        "username": user, "password": "kettle-pigeon-marble-58", "role": "user"})  # fmt: skip
    assert res.status_code == 201, res.text
    orch.api("PUT", f"/admin/whatsapp/instances/{bot}", json={"owner_id": res.json()["id"]})
    desktop = new_page()
    phone = phone_page(browser, orch)
    try:
        for page in (desktop, phone):
            login(page, user, "kettle-pigeon-marble-58")
            for path in (f"/bots/whatsapp/{bot}/settings", f"/bots/whatsapp/{bot}/chat",
                         "/fleet", "/account"):  # fmt: skip
                page.goto(path)
                no_sideways_scroll(page)
            page.goto(f"/bots/whatsapp/{bot}/settings")
            head = page.locator(".bot-head h1")
            expect(head).to_have_text(name)
            box = head.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= page.viewport_size["width"]
        shot(phone, "phone-long-name")
        shot(desktop, "desktop-long-name")
    finally:
        phone.context.close()


def test_every_page_fits_a_phone_screen(browser: Any, orch: OrchestratorProcess) -> None:
    bot = orch.create_bot("whatsapp", name="Phone Fit Bot")["id"]
    orch.api("POST", "/admin/knowledge", json={"name": "Phone fit documents"})
    page = phone_page(browser, orch)
    try:
        login(page)
        for path in ("/fleet", "/bots", "/knowledge", "/users", "/account",
                     *(f"/bots/whatsapp/{bot}/{tab}" for tab in TABS)):  # fmt: skip
            page.goto(path)
            assert "Traceback" not in page.content()
            no_sideways_scroll(page)
            # the navigation is reachable without scrolling the page sideways
            for link in ("Bots", "Fleet", "Knowledge", "Users"):
                box = (
                    page.locator("header.topbar nav").get_by_role("link", name=link).bounding_box()
                )
                assert box is not None, (path, link)
                assert box["x"] >= 0, (path, link)
        page.goto(f"/bots/whatsapp/{bot}/settings")
        shot(page, "phone-settings")
        page.goto("/fleet")
        shot(page, "phone-fleet")
    finally:
        page.context.close()


def _upload(orch: OrchestratorProcess, kb: str, name: str, text: str) -> dict[str, Any]:
    res = orch.api(
        "POST",
        f"/admin/knowledge/{kb}/documents",
        files={"file": (name, text.encode(), "text/plain")},
    )
    assert res.status_code == 201, res.text
    return res.json()  # type: ignore[no-any-return]


def test_deleting_a_document_and_a_knowledge_base_that_a_bot_uses(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    res = orch.api("POST", "/admin/knowledge", json={"name": "Bakery facts"})
    assert res.status_code == 201, res.text
    kb = res.json()["id"]
    _upload(orch, kb, "hours.txt", "We are open from 8 to 18 on weekdays.")
    _upload(orch, kb, "delivery.txt", "We deliver within 5 km for free.")
    bot = orch.create_bot("whatsapp", name="Bakery Answers", knowledge_base_ids=[kb])["id"]

    page = new_page()
    login(page)
    page.get_by_role("link", name="Knowledge").click()
    card = page.locator(f"#kb-{kb}")
    docs = card.get_by_test_id("kb-docs")
    expect(docs.locator("li")).to_have_count(2)

    # Remove one document: asked first; "Cancel" keeps it.
    dialogs: list[str] = []

    def answer(accept: bool) -> Any:
        def handle(dialog: Any) -> None:
            dialogs.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        return handle

    page.once("dialog", answer(False))
    docs.locator("li[data-doc='hours.txt']").get_by_role("button", name="Remove").click()
    expect(docs.locator("li")).to_have_count(2)
    assert dialogs
    assert "hours.txt" in dialogs[-1]
    page.once("dialog", answer(True))
    docs.locator("li[data-doc='hours.txt']").get_by_role("button", name="Remove").click()
    expect(card.get_by_role("status").or_(card.locator(".alert.ok"))).to_contain_text(
        "Removed hours.txt"
    )
    expect(card.get_by_test_id("kb-docs").locator("li")).to_have_count(1)
    expect(card.get_by_test_id("kb-docs")).to_contain_text("delivery.txt")
    left = orch.api("GET", f"/admin/knowledge/{kb}").json()["documents"]
    assert [d["filename"] for d in left] == ["delivery.txt"]

    # Delete the base: the confirmation names the bot that uses it.
    page.once("dialog", answer(True))
    card.get_by_test_id("kb-delete").click()
    expect(page.locator(f"#kb-{kb}")).to_have_count(0)
    assert "Bakery Answers" in dialogs[-1]
    assert "cannot be undone" in dialogs[-1]
    notice = page.locator("#kb-list .alert.ok")
    expect(notice).to_contain_text("Deleted the knowledge base “Bakery facts”")
    expect(notice).to_contain_text("Bakery Answers")
    shot(page, "kb-deleted")
    assert orch.api("GET", f"/admin/knowledge/{kb}").status_code == 404
    assert orch.api("GET", f"/admin/whatsapp/instances/{bot}").json()["knowledge_base_ids"] == []


def test_changing_your_own_password_ends_other_sessions(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    old, new = "saffron-kayak-ember-33", "copper-meadow-violin-71"
    res = orch.api("POST", "/admin/users", json={"username": "paula", "password": old,
                                                  "role": "guest"})  # fmt: skip
    assert res.status_code == 201, res.text
    here, elsewhere = new_page(), new_page()
    login(here, "paula", old)
    login(elsewhere, "paula", old)

    here.get_by_test_id("whoami").click()
    here.wait_for_url("**/account")
    form = here.get_by_test_id("password-form")
    form.get_by_label("Current password").fill("not-it-at-all")
    form.get_by_label("New password", exact=True).fill(new)
    form.get_by_label("New password again").fill(new)
    form.get_by_role("button", name="Change password").click()
    expect(here.locator("[data-error-for=current_password]")).to_have_text(
        "Your current password is not right."
    )
    form = here.get_by_test_id("password-form")
    form.get_by_label("Current password").fill(old)
    form.get_by_label("New password", exact=True).fill("password123")
    form.get_by_label("New password again").fill("password123")
    form.get_by_role("button", name="Change password").click()
    expect(here.locator("[data-error-for=new_password]")).to_contain_text("too easy to guess")
    form = here.get_by_test_id("password-form")
    form.get_by_label("Current password").fill(old)
    form.get_by_label("New password", exact=True).fill(new)
    form.get_by_label("New password again").fill(new + "x")
    form.get_by_role("button", name="Change password").click()
    expect(here.locator("[data-error-for=repeat_password]")).to_be_visible()
    form = here.get_by_test_id("password-form")
    form.get_by_label("Current password").fill(old)
    form.get_by_label("New password", exact=True).fill(new)
    form.get_by_label("New password again").fill(new)
    form.get_by_role("button", name="Change password").click()
    expect(here.get_by_test_id("password-changed")).to_be_visible()
    shot(here, "password-changed")
    # This browser stays signed in (and can still write: a fresh CSRF token came with it)...
    here.get_by_role("link", name="Bots").click()
    here.wait_for_url("**/bots")
    expect(here.get_by_test_id("whoami")).to_have_text("paula")
    # ...the other one is signed out.
    # (its live bot list is refused at the next poll and takes it to the sign-in page)
    expect(elsewhere).to_have_url(re.compile(r"/login$"), timeout=15_000)
    login(elsewhere, "paula", new)
    assert (
        orch.http.post("/auth/token", data={"username": "paula", "password": old}).status_code
        == 401
    )


def test_an_admin_resets_another_users_password(new_page: Any, orch: OrchestratorProcess) -> None:
    body = {"username": "rita", "password": "velvet-canyon-frost-12", "role": "user"}
    res = orch.api("POST", "/admin/users", json=body)
    assert res.status_code == 201, res.text
    rita = new_page()
    login(rita, "rita", "velvet-canyon-frost-12")
    page = new_page()
    login(page)
    page.get_by_role("link", name="Users").click()
    row = page.locator("tr[data-user=rita]")
    row.get_by_label("New password for rita").fill("abc12345")
    row.get_by_role("button", name="Set password").click()
    expect(page.locator("tr[data-user=rita] .field-error")).to_contain_text("Password")
    row = page.locator("tr[data-user=rita]")
    row.get_by_label("New password for rita").fill("harbor-tulip-gravel-86")
    row.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_have_text(
        "rita: new password set; they are signed out everywhere."
    )
    expect(rita).to_have_url(re.compile(r"/login$"), timeout=15_000)
    login(rita, "rita", "harbor-tulip-gravel-86")
    # the admin's own row links to the account page instead (a reset would sign them out)
    expect(
        page.locator("tr[data-user=admin]").get_by_role("link", name="Change my password")
    ).to_be_visible()


def test_labels_and_messages_are_plain_language_on_every_tab(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    page = new_page()
    login(page)
    for kind in ("whatsapp", "sms", "telegram"):
        bot = orch.create_bot(kind, name=f"Plain {kind}")["id"]
        for tab in TABS:
            page.goto(f"/bots/{kind}/{bot}/{tab}")
            text = page.locator("body").inner_text()
            for word in JARGON:
                assert word not in text, f"{kind}/{tab} shows {word!r}"
            assert not REGEX_RE.search(text), f"{kind}/{tab}: {REGEX_RE.search(text)}"
    # "Answer from documents (offline)" names the offline backend; the term is a tooltip.
    page.goto(f"/bots/whatsapp/{bot_id(orch, 'Plain whatsapp')}/ai")
    option = page.locator("#f-llm_backend option[value=extractive]")
    expect(option).to_have_text("Answer from documents (offline)")
    expect(option).to_have_attribute("title", "extractive")
    # Validation messages too: a wrong access-list entry, a wrongly written version.
    wa = bot_id(orch, "Plain whatsapp")
    page.goto(f"/bots/whatsapp/{wa}/access")
    page.fill("#f-allowed_phones", "hello")
    page.get_by_test_id("save").click()
    err = page.locator("[data-error-for=allowed_phones]")
    expect(err).to_contain_text("WhatsApp user ids")
    assert "BSUID" not in err.inner_text()
    page.goto(f"/bots/whatsapp/{wa}/settings")
    page.fill("#f-graph_api_version", "21")
    page.get_by_test_id("save").click()
    err = page.locator("[data-error-for=graph_api_version]")
    expect(err).to_contain_text("not written the expected way")
    assert not REGEX_RE.search(err.inner_text())
    assert "pattern" not in err.inner_text()


def bot_id(orch: OrchestratorProcess, name: str) -> str:
    return next(b["id"] for b in orch.api("GET", "/admin/fleet").json() if b["name"] == name)


def test_the_test_chat_keeps_its_customer_and_follows_the_bots_state(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    page = new_page()
    login(page)
    bot = sandbox_bot(page, "whatsapp", "Chat Memory Bot")
    page.locator("[data-tab=chat]").click()
    page.wait_for_url(re.compile(r"/chat"))
    state = page.get_by_test_id("sim-state")
    expect(state).to_have_attribute("data-state", "stopped")
    expect(state).to_contain_text("Start it to chat")
    customer = page.locator("input[aria-label='Customer number']").input_value()

    # Another tab and back (and a chat opened without a customer): the same customer.
    page.locator("[data-tab=settings]").click()
    page.wait_for_url(re.compile(r"/settings$"))
    page.locator("[data-tab=chat]").click()
    page.wait_for_url(re.compile(r"/chat"))
    expect(page.locator("input[aria-label='Customer number']")).to_have_value(customer)
    page.goto(f"/bots/whatsapp/{bot}/chat")
    page.wait_for_url(re.compile(r"\?to="))
    expect(page.locator("input[aria-label='Customer number']")).to_have_value(customer)

    # Started elsewhere (the API): the notice goes without a reload; stopped: it comes back.
    orch.api("POST", f"/admin/whatsapp/instances/{bot}/start")
    expect(page.get_by_test_id("sim-state")).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    expect(page.get_by_test_id("sim-state")).not_to_contain_text("Start it")
    page.fill(".composer input[name=text]", "hi")
    page.locator(".composer").get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("bot-reply").first).to_be_visible(timeout=15_000)

    # A voice note the bot sends is a player, not "[audio]".
    digits = customer.lstrip("+")
    wa = orch.api("GET", f"/admin/whatsapp/instances/{bot}").json()
    graph = f"{orch.sandbox_url}/graph/v21.0/{wa['phone_number_id']}"  # type: ignore[attr-defined]
    auth = {"Authorization": "Bearer sandbox"}
    up = httpx.post(
        f"{graph}/media",
        headers=auth,
        data={"messaging_product": "whatsapp", "type": "audio/ogg"},
        files={"file": ("v.ogg", b"OggS" + b"\0" * 200, "audio/ogg")},
    )
    assert up.status_code == 200, up.text
    audio = {"id": up.json()["id"]}
    body = {"messaging_product": "whatsapp", "to": digits, "type": "audio", "audio": audio}
    sent = httpx.post(f"{graph}/messages", headers=auth, json=body)
    assert sent.status_code == 200, sent.text
    player = page.get_by_test_id("voice-note")
    expect(player).to_have_count(1, timeout=10_000)
    expect(player).to_have_attribute("controls", "")
    assert "[audio]" not in page.get_by_test_id("sim-msgs").inner_text()
    src = player.get_attribute("src")
    got = page.request.get(src)
    assert got.status == 200
    assert got.headers["content-type"] == "audio/ogg"
    assert got.body().startswith(b"OggS")
    shot(page, "test-chat-voice-note")

    orch.api("POST", f"/admin/whatsapp/instances/{bot}/stop")
    expect(page.get_by_test_id("sim-state")).to_contain_text("Start it to chat", timeout=20_000)

    # "New customer" starts over, and that one is kept from then on.
    page.get_by_test_id("new-customer").click()
    page.wait_for_url(re.compile(r"\?new=1"))
    fresh = page.locator("input[aria-label='Customer number']").input_value()
    assert fresh != customer
    page.locator("[data-tab=logs]").click()
    page.wait_for_url(re.compile(r"/logs$"))
    page.locator("[data-tab=chat]").click()
    page.wait_for_url(re.compile(r"/chat"))
    expect(page.locator("input[aria-label='Customer number']")).to_have_value(fresh)


def test_the_logs_view_is_readable_with_the_raw_json_one_click_away(
    new_page: Any, orch: OrchestratorProcess
) -> None:
    page = new_page()
    login(page)
    bot = sandbox_bot(page, "whatsapp", "Log Reader Bot")
    orch.api("POST", f"/admin/whatsapp/instances/{bot}/start")
    orch.wait_state("whatsapp", bot, "running")
    page.goto(f"/bots/whatsapp/{bot}/logs")
    line = page.get_by_test_id("log-line").first
    expect(line).to_be_visible(timeout=15_000)
    expect(line.locator(".ts")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d"))
    expect(line.locator(".lv")).to_have_text(re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$"))
    assert line.locator(".msg").inner_text().strip()
    raw = line.locator("details[data-testid=log-raw]")
    expect(raw.locator("pre")).to_be_hidden()
    raw.locator("summary").click()
    expect(raw.locator("pre")).to_be_visible()
    expect(raw.locator("pre")).to_contain_text('"level"')
    page.wait_for_timeout(2500)  # a live-tail refresh does not close what the reader opened
    expect(page.locator("#log-view details[open]")).to_have_count(1)
    shot(page, "logs-readable")
    # The bot's secrets never reach the page, not even in the raw JSON.
    secret = (
        orch.api("GET", f"/admin/whatsapp/instances/{bot}?reveal=true")
        .json()
        .get("access_token", "")
    )
    html = page.content()
    if secret and not secret.startswith("*"):
        assert secret not in html
    orch.api("POST", f"/admin/whatsapp/instances/{bot}/stop")
