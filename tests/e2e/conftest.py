"""Browser tests: a real orchestrator subprocess with the sandbox, and Debian's chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.orchestrator_proc import ADMIN_PASSWORD, OrchestratorProcess, free_port

CHROMIUM = os.environ.get("FLOTILLA_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


def running_orchestrator(
    tmp_path_factory: pytest.TempPathFactory, **env: str
) -> Iterator[OrchestratorProcess]:
    """A real orchestrator with the sandbox providers in-process on a free port (``env``: more
    settings, e.g. ``FLOTILLA_CHANNEL_PLUGINS`` for one test module's ``orch``)."""
    root = tmp_path_factory.mktemp("orch")
    sandbox_port = free_port()
    proc = OrchestratorProcess(
        root,
        FLOTILLA_SANDBOX="true",
        FLOTILLA_SANDBOX_PORT=str(sandbox_port),
        FLOTILLA_DEMO_BOT="false",
        FLOTILLA_GRACEFUL_TIMEOUT="3",
        **env,
    )
    proc.sandbox_url = f"http://127.0.0.1:{sandbox_port}"  # type: ignore[attr-defined]
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    """A real orchestrator with the sandbox providers in-process on a free port."""
    yield from running_orchestrator(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium driven by Playwright."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(browser: Any, orch: OrchestratorProcess) -> Iterator[Any]:
    """Pages in fresh browser contexts (separate cookies) that fail the test on a JS error."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make() -> Any:
        ctx = browser.new_context(base_url=orch.url, viewport={"width": 1400, "height": 860})
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Anything the Content-Security-Policy blocks (inline script, eval, foreign hosts) too.
        page.on(
            "console",
            lambda msg: errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None,
        )
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def login(page: Any, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """Sign in through the login form and land on the bots page."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/bots")


def shot(page: Any, name: str) -> None:
    """Save a screenshot of the page (not committed; see .gitignore)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
