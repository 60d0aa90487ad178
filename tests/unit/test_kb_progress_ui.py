"""The knowledge card's build-progress block (admin_ui/templates/_kb_progress.html), rendered
from the API's ``build`` object for each phase: the words, "312 / 1,040 passages", polling
only while a build runs, the warm-up notice and the failure reason."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from admin_ui.common import templates
from orchestrator.ai.rag.progress import BuildProgress

VOID = {"br", "hr", "img", "input", "meta", "link"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parts: list[str] = []

    def __getitem__(self, name: str) -> str | None:
        return self.attrs[name]

    def has_attr(self, name: str) -> bool:
        return name in self.attrs

    def get_text(self) -> str:
        return " ".join("".join(self.parts).split())


class Page(HTMLParser):
    """The rendered HTML as a flat list of elements, each with the text inside it."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        for element in self._open:
            element.parts.append(data)

    def get_text(self) -> str:
        return " ".join("".join(self._text).split())

    def select_one(self, selector: str) -> Element | None:
        """``tag`` or ``[data-testid=name]``: the first element that matches."""
        for element in self.elements:
            if selector.startswith("[data-testid="):
                if element.attrs.get("data-testid") == selector[13:-1]:
                    return element
            elif element.tag == selector:
                return element
        return None

    def one(self, selector: str) -> Element:
        element = self.select_one(selector)
        assert element is not None, f"no {selector} in the page"
        return element


def render(build: dict[str, Any] | None, **extra: Any) -> Page:
    base = {"id": "kb1", "name": "Menu", "build": build}
    html = templates.env.get_template("_kb_progress.html").render(base=base, **extra)
    return Page(html)


def embedding(done: int, total: int) -> dict[str, Any]:
    p = BuildProgress()
    p.start("menu.pdf")
    p.set_total(total)
    p.advance(done)
    return p.snapshot()


def test_building_shows_phase_bar_and_grouped_counts_and_polls() -> None:
    doc = render(embedding(312, 1040))
    block = doc.one("[data-testid=kb-progress]")
    assert block["data-phase"] == "embedding"
    assert block["hx-get"] == "/ui/knowledge/kb1/progress"
    assert block["hx-trigger"] == "every 1s"
    assert block["hx-swap"] == "outerHTML"
    assert doc.one("[data-testid=kb-progress-phase]").get_text() == "Indexing passages"
    count = doc.one("[data-testid=kb-progress-count]").get_text()
    assert count == "312 / 1,040 passages"
    bar = doc.one("progress")
    assert (bar["value"], bar["max"]) == ("312", "1040")
    assert "menu.pdf" in block.get_text()


def test_first_build_while_the_model_warms_says_so() -> None:
    p = BuildProgress()
    p.start("menu.pdf")
    p.set_phase("waiting_for_model")
    doc = render(p.snapshot())
    assert "Waiting for the search model to load (first start)" in doc.get_text()
    assert doc.select_one("[data-testid=kb-warming]") is not None
    bar = doc.select_one("progress")
    assert bar is not None
    assert not bar.has_attr("value")  # indeterminate: nothing to count yet
    assert doc.one("[data-testid=kb-progress]")["hx-trigger"] == "every 1s"


def test_ready_and_failed_stop_polling() -> None:
    p = BuildProgress()
    p.start("menu.pdf")
    p.set_total(1040)
    p.advance(1040)
    p.finish({"duration_s": 12.5, "passages": 1040, "finished_at": "2026-12-02T19:00:00+00:00"})
    doc = render(p.snapshot())
    block = doc.one("[data-testid=kb-progress]")
    assert not block.has_attr("hx-trigger")
    assert doc.select_one("progress") is None
    ready = doc.one("[data-testid=kb-ready]").get_text()
    assert ready == "Ready · last build: 1,040 passages in 12.5 s"
    slow = {**p.snapshot(), "last": {"duration_s": 147.84, "passages": 150}}
    assert render(slow).one("[data-testid=kb-ready]").get_text().endswith("in 2 m 27 s")
    # The poll that sees the end has the whole card reloaded, once.
    doc = render(p.snapshot(), refresh_card=True)
    block = doc.one("[data-testid=kb-progress]")
    assert (block["hx-get"], block["hx-trigger"]) == ("/ui/knowledge/kb1", "load")
    assert block["hx-target"] == "#kb-kb1"

    p.start("scan.pdf")
    p.fail("scan.pdf: no text found")
    doc = render(p.snapshot())
    assert not doc.one("[data-testid=kb-progress]").has_attr("hx-trigger")
    error = doc.one("[data-testid=kb-progress-error]").get_text()
    assert error == "Building the index failed: scan.pdf: no text found"


def test_nothing_for_a_base_never_built_or_an_old_api() -> None:
    assert render(BuildProgress().snapshot()).select_one("[data-testid=kb-progress]") is None
    assert render(None).select_one("[data-testid=kb-progress]") is None
    doc = render(None, progress_error="knowledge base 'kb1' not found")
    assert "Could not read the build's progress" in doc.get_text()
    assert not doc.one("[data-testid=kb-progress]").has_attr("hx-trigger")
