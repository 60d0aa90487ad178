"""Browser test: uploading a document shows the knowledge base's build progress live, then
"ready" (issue 12 item 5).

The orchestrator embeds one passage per batch (``FLOTILLA_AI_EMBED_BATCH``), so a document
of a few hundred short paragraphs takes as many batches (seconds on an idle machine, longer
on a busy one) and the card's progress, polled every second, is seen moving before the index
is ready.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, running_orchestrator, shot
from tests.support.orchestrator_proc import OrchestratorProcess

PARAGRAPHS = 150
COUNT_RE = re.compile(r"^([\d,]+) / ([\d,]+) passages$")


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    yield from running_orchestrator(
        tmp_path_factory,
        FLOTILLA_AI_EMBED_BATCH="1",
        FLOTILLA_AI_CHUNK_SIZE="200",
        FLOTILLA_AI_CHUNK_OVERLAP="0",
        HF_HUB_OFFLINE="1",
    )


def bike_manual() -> bytes:
    """Short distinct paragraphs: one passage each at a chunk size of 200 characters."""
    return "\n\n".join(
        f"Repair note {i}: wheel size {20 + i % 9} inch, spoke tension {i % 7 + 3}, "
        f"brake pad type {i * 3}, chain length {100 + i % 17} links, stocked at shelf {i}."
        for i in range(PARAGRAPHS)
    ).encode()


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_upload_shows_build_progress_then_ready(new_page: Any, orch: OrchestratorProcess) -> None:
    page = new_page()
    progress_polls: list[float] = []
    page.on(
        "request",
        lambda req: (
            progress_polls.append(time.monotonic()) if req.url.endswith("/progress") else None
        ),
    )
    login(page)
    page.goto("/knowledge")
    page.fill("#kb-name", "Bike workshop")
    page.get_by_role("button", name="Create").click()
    card = page.locator("div.card[id^='kb-']").filter(
        has=page.get_by_role("heading", name="Bike workshop")
    )
    expect(card).to_be_visible()
    expect(card.get_by_test_id("kb-progress")).to_have_count(0)  # nothing built yet

    card.locator("input[type=file]").set_input_files(
        files=[{"name": "bikes.txt", "mimeType": "text/plain", "buffer": bike_manual()}]
    )
    card.get_by_role("button", name="Upload").click()
    expect(card.get_by_text("Uploaded; the index is being built.")).to_be_visible()

    # Follow the card until the build is ready: the phase in words, then "n / N passages".
    seen: list[tuple[int, int]] = []
    texts: list[str] = []
    phases: list[str] = []
    deadline = time.monotonic() + 300
    ready = card.get_by_test_id("kb-ready")
    while time.monotonic() < deadline and not ready.is_visible():
        phase = card.get_by_test_id("kb-progress-phase")
        count = card.get_by_test_id("kb-progress-count")
        if phase.is_visible():
            text = phase.text_content() or ""
            if not phases or phases[-1] != text:
                phases.append(text)
        if count.is_visible():
            text = (count.text_content() or "").strip()
            match = COUNT_RE.match(text)
            assert match, text
            texts.append(text)
            pair = (number(match.group(1)), number(match.group(2)))
            if not seen or seen[-1] != pair:
                seen.append(pair)
                if len(seen) == 2:
                    shot(page, "kb-progress")
        page.wait_for_timeout(150)
    expect(ready).to_be_visible()

    assert seen, f"no progress was shown (phases seen: {phases})"
    totals = {total for _, total in seen}
    assert totals == {PARAGRAPHS}, seen
    dones = [done for done, _ in seen]
    assert dones == sorted(dones), f"progress went backwards: {seen}"
    assert any(0 < done < PARAGRAPHS for done in dones), seen
    assert "Indexing passages" in phases
    assert all(t.endswith(f" / {PARAGRAPHS} passages") for t in texts)

    # Ready: the whole card is fresh (counts, documents), with the last build's numbers.
    expect(ready).to_contain_text(f"Ready · last build: {PARAGRAPHS:,} passages in")
    expect(card).to_contain_text("bikes.txt")
    expect(
        card.locator("dt", has_text="chunks").locator("xpath=following-sibling::dd[1]")
    ).to_have_text(str(PARAGRAPHS))
    expect(card.locator("progress")).to_have_count(0)
    expect(card.locator("[hx-trigger='every 1s']")).to_have_count(0)
    shot(page, "kb-progress-ready")

    # The polling stopped with the build.
    polls = len(progress_polls)
    assert polls >= 1
    page.wait_for_timeout(2500)
    assert len(progress_polls) == polls

    status = orch.api("GET", "/admin/knowledge").json()
    (base,) = [b for b in status if b["name"] == "Bike workshop"]
    assert base["chunks"] == PARAGRAPHS
    assert base["build"]["phase"] == "ready"
    assert base["build"]["last"]["passages"] == PARAGRAPHS
