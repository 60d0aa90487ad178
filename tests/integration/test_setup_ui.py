"""The setup flow's server side (admin_ui/pages/setup.py) through the real app: it creates a bot
from a template with its business profile, shows bad input at its field, and respects roles,
owners and CSRF (SQLite and PostgreSQL)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.csrf import session_csrf_token
from orchestrator.api.deps import SESSION_COOKIE
from tests.conftest import Actors

GOOD = {
    "name": "Corner Café",
    "about": "Coffee and cakes by the station.",
    "hours": "Daily 8:00–18:00",
    "timezone": "Europe/Dublin",
    "language": "en",
    "contact": "hi@corner.example",
    "currency": "EUR",
    "kind": "sms",
    "template": "leads",
}


@pytest.fixture
def browser(client: TestClient) -> Iterator[TestClient]:
    """The client with no bearer header of its own: the UI's cookie carries the session."""
    yield client
    client.cookies.clear()


def _signed_in(client: TestClient, actors: Actors, who: str) -> dict[str, str]:
    token = actors.headers[who]["Authorization"].split()[1]
    client.cookies.set(SESSION_COOKIE, token)
    settings = client.app.state.settings  # type: ignore[attr-defined]
    return {
        "X-CSRF-Token": session_csrf_token(settings, {SESSION_COOKIE: token}),
        "HX-Request": "true",
    }


def _error_for(page: str, field: str) -> str:
    match = re.search(rf'data-error-for="{field}"[^>]*>([^<]*)<', page)
    return html.unescape(match.group(1)) if match else ""


def test_setup_creates_a_bot_from_a_template_with_its_profile(
    browser: TestClient, actors: Actors
) -> None:
    headers = _signed_in(browser, actors, "alice")
    page = browser.get("/setup")
    assert page.status_code == 200
    assert "Answer questions from my documents" in page.text
    assert 'value="Europe/Dublin"' in page.text  # the time zone picker
    res = browser.post("/ui/setup", data=GOOD, headers=headers)
    assert res.status_code == 200, res.text
    target = res.headers["HX-Redirect"]
    query = parse_qs(urlsplit(target).query)
    assert urlsplit(target).path == "/setup/done"
    bot = browser.get(
        f"/admin/sms/instances/{query['bot'][0]}", headers=actors.headers["alice"]
    ).json()
    assert bot["name"] == "Corner Café"
    assert bot["template"] == "leads"
    assert bot["business"]["timezone"] == "Europe/Dublin"
    assert "Corner Café" in bot["funnel"]["texts"]["welcome"]
    assert bot["knowledge_base_ids"] == []  # no documents uploaded
    done = browser.get(target)
    assert "Corner Café is ready" in done.text
    assert f'href="/bots/sms/{bot["id"]}/chat"' in done.text  # "Try it"
    # the profile page shows the stored values
    profile = browser.get(f"/setup/sms/{bot['id']}")
    assert 'value="Daily 8:00–18:00"' in profile.text


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "name of your business"),
        ({"name": "x" * 500}, "name", "at most 80"),
        ({"about": "y" * 5000}, "about", "at most 400"),
        ({"timezone": "Europe/Atlantis"}, "timezone", "is not a time zone"),
        ({"language": "tlh"}, "language", "'en' or 'ru'"),
        ({"kind": "fax"}, "kind", "Pick where"),
        ({"template": "nope"}, "template", "unknown template"),
    ],
)
def test_bad_input_is_shown_at_its_field_and_creates_nothing(
    browser: TestClient, actors: Actors, change: dict[str, str], field: str, message: str
) -> None:
    headers = _signed_in(browser, actors, "alice")
    res = browser.post("/ui/setup", data={**GOOD, **change}, headers=headers)
    assert res.status_code == 200
    assert "HX-Redirect" not in res.headers
    assert message in _error_for(res.text, field), res.text[:3000]
    assert "Traceback" not in res.text
    assert browser.get("/admin/sms/instances", headers=actors.headers["alice"]).json() == []


def test_too_many_documents_are_refused(browser: TestClient, actors: Actors) -> None:
    headers = _signed_in(browser, actors, "alice")
    files = [("documents", (f"doc{n}.md", b"# Doc\n\nText.", "text/markdown")) for n in range(11)]
    res = browser.post("/ui/setup", data=GOOD, files=files, headers=headers)
    assert "at most 10 documents" in _error_for(res.text, "documents")
    assert browser.get("/admin/sms/instances", headers=actors.headers["alice"]).json() == []


def test_guests_other_owners_and_forged_posts_change_nothing(
    browser: TestClient, actors: Actors
) -> None:
    headers = _signed_in(browser, actors, "alice")
    res = browser.post("/ui/setup", data=GOOD, headers=headers)
    bot_id = parse_qs(urlsplit(res.headers["HX-Redirect"]).query)["bot"][0]
    # no CSRF token: refused before the page runs
    bare = {"HX-Request": "true"}
    assert (
        browser.post("/ui/setup", data={**GOOD, "name": "Forged"}, headers=bare).status_code == 403
    )
    # a guest: the API's 403, shown; nothing created
    guest = _signed_in(browser, actors, "gary")
    res = browser.post("/ui/setup", data={**GOOD, "name": "Guest Café"}, headers=guest)
    assert "HX-Redirect" not in res.headers
    assert "read-only" in res.text
    # another user: alice's bot is not found, and a post changes nothing
    bob = _signed_in(browser, actors, "bob")
    assert "not found" in browser.get(f"/setup/sms/{bot_id}").text
    res = browser.post(
        f"/ui/setup/sms/{bot_id}", data={**GOOD, "hours": "Never", "apply": "1"}, headers=bob
    )
    assert "not found" in res.text.lower()
    stored = browser.get(f"/admin/sms/instances/{bot_id}", headers=actors.headers["admin"]).json()
    assert stored["business"]["hours"] == "Daily 8:00–18:00"
    names = [
        b["name"]
        for b in browser.get("/admin/sms/instances", headers=actors.headers["admin"]).json()
    ]
    assert names == ["Corner Café"]


def test_the_setup_form_takes_documents_past_the_json_limit_only_from_writers(
    browser: TestClient, actors: Actors
) -> None:
    from orchestrator.api.limits import body_rule

    settings = browser.app.state.settings  # type: ignore[attr-defined]
    rule = body_rule(settings, "POST", "/ui/setup")
    assert rule.limit > settings.ai.max_upload_bytes > settings.max_body_bytes
    assert rule.needs_writer
    big = [("documents", ("big.md", b"x" * (settings.max_body_bytes + 10), "text/markdown"))]
    guest = _signed_in(browser, actors, "gary")
    res = browser.post("/ui/setup", data=GOOD, files=big, headers=guest)
    assert res.status_code == 403  # refused before the body is read
    browser.cookies.clear()
    res = browser.post("/ui/setup", data=GOOD, files=big, headers={"HX-Request": "true"})
    assert res.status_code == 401
