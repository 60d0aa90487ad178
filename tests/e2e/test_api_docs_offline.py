"""Browser: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) render with no network beyond the
orchestrator itself — every request to another host is aborted — and under the pages' own
Content-Security-Policy: any script error or CSP violation fails the test, except one: ReDoc's
bundle always renders a "powered by" logo from ``cdn.redoc.ly``; the policy blocks it (so the
browser sends nothing) and ReDoc hides the image when it does not load."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import shot
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_page(browser: Any, orch: OrchestratorProcess) -> Iterator[Any]:
    """A page whose requests to any host but 127.0.0.1 are aborted; after the test, asserts
    that none was attempted and that no script error or CSP violation happened."""
    ctx = browser.new_context(base_url=orch.url, viewport={"width": 1400, "height": 860})
    ctx.set_default_timeout(15_000)
    blocked: list[str] = []
    errors: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(url)
            route.abort("internetdisconnected")

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        if "Content Security Policy" in msg.text and REDOC_LOGO in msg.text:
            return  # the one expected block (see the module's docstring)
        errors.append(msg.text)

    ctx.route("**/*", only_local)
    page = ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", on_console)
    try:
        yield page
    finally:
        ctx.close()
    assert blocked == [], f"the page asked other hosts: {blocked}"
    assert errors == [], f"script errors or CSP violations: {errors}"


def test_swagger_ui_renders_offline(offline_page: Any) -> None:
    page = offline_page
    page.goto("/docs")
    # The operations list: one block per operation, grouped by tag.
    page.locator(".opblock-tag-section").first.wait_for()
    page.locator(".opblock", has_text="/health").first.wait_for()
    assert page.locator(".opblock").count() > 20
    assert "Flotilla orchestrator" in page.locator(".info .title").inner_text()
    shot(page, "docs-offline")


def test_redoc_renders_offline(offline_page: Any) -> None:
    page = offline_page
    page.goto("/redoc")
    # ReDoc's side menu and an operation's section.
    page.locator("[data-section-id^='operation/']").first.wait_for()
    assert page.locator("[data-section-id^='operation/']").count() > 20
    assert page.get_by_role("heading", name="Flotilla orchestrator").first.is_visible()
    shot(page, "redoc-offline")
