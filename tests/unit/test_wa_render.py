"""The WhatsApp renderer never produces a message Meta would reject."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.channels.base import (
    AudioReply,
    Button,
    ButtonsReply,
    ListReply,
    ListRow,
    ListSection,
    Reply,
    TextReply,
)
from shared.sandbox.graph_api import validate_message
from whatsapp_bot import render as r

TO = {"to": "16505551234"}
text_st = st.text(min_size=0, max_size=6000)
title_st = st.text(min_size=1, max_size=40)
button_st = st.builds(Button, id=st.text(min_size=1, max_size=300), title=title_st)
row_st = st.builds(
    ListRow,
    id=st.text(min_size=1, max_size=250),
    title=title_st,
    description=st.text(max_size=120),
)
section_st = st.builds(
    ListSection, title=st.text(max_size=40), rows=st.lists(row_st, min_size=1, max_size=8)
)


def assert_within_limits(payload: dict[str, Any]) -> None:
    validate_message(payload)  # the sandbox's Meta rules: raises GraphError on any breach
    if payload["type"] == "text":
        assert len(payload["text"]["body"]) <= r.TEXT_MAX
    if payload["type"] == "interactive":
        inter = payload["interactive"]
        assert 0 < len(inter["body"]["text"]) <= r.INTERACTIVE_BODY_MAX
        if inter["type"] == "button":
            buttons = inter["action"]["buttons"]
            assert 1 <= len(buttons) <= 3
            assert all(len(b["reply"]["title"]) <= 20 for b in buttons)
        else:
            sections = inter["action"]["sections"]
            rows = [row for s in sections for row in s["rows"]]
            assert 1 <= len(rows) <= 10
            assert len(inter["action"]["button"]) <= 20
            for row in rows:
                assert len(row["title"]) <= 24
                assert len(row.get("description", "")) <= 72
            for s in sections:
                assert len(s.get("title", "")) <= 24


@settings(max_examples=150, deadline=None)
@given(text_st)
def test_text_is_split_within_4096(text: str) -> None:
    payloads = r.render(TextReply(text), TO)
    assert bool(payloads) == bool(text.strip())
    for p in payloads:
        assert_within_limits(p)
    if text.strip():
        joined = "".join(p["text"]["body"] for p in payloads)
        assert "".join(joined.split()) == "".join(text.split())  # nothing lost but whitespace


@settings(max_examples=150, deadline=None)
@given(text_st, st.lists(button_st, min_size=0, max_size=12))
def test_buttons_always_valid(text: str, buttons: list[Button]) -> None:
    for p in r.render(ButtonsReply(text, buttons), TO):
        assert_within_limits(p)


@settings(max_examples=150, deadline=None)
@given(text_st, st.text(max_size=40), st.lists(section_st, min_size=0, max_size=12))
def test_lists_always_valid(text: str, button: str, sections: list[ListSection]) -> None:
    for p in r.render(ListReply(text, button, sections), TO):
        assert_within_limits(p)


def _pages(reply: Reply) -> list[Reply]:
    pages: list[Reply] = []
    current: Reply | None = reply
    n = 0
    while current is not None:
        first, current = r.paginate(current, f"t{n}")
        pages.append(first)
        n += 1
        assert n < 50
    return pages


@settings(max_examples=100, deadline=None)
@given(st.lists(button_st, min_size=1, max_size=15, unique_by=lambda b: b.id))
def test_paginated_buttons_keep_every_choice_and_link_pages(buttons: list[Button]) -> None:
    pages = _pages(ButtonsReply("Pick one", buttons))
    shown: list[str] = []
    for n, page in enumerate(pages):
        assert isinstance(page, ButtonsReply)
        assert len(page.buttons) <= 3
        more = [b for b in page.buttons if b.id.startswith("nav:more:")]
        if n < len(pages) - 1:
            assert [b.id for b in more] == [f"nav:more:t{n}"]
        else:
            assert more == []
        shown += [b.id for b in page.buttons if not b.id.startswith("nav:more:")]
        for p in r.render(page, TO):
            assert_within_limits(p)
    assert shown == [b.id for b in buttons]


def test_list_of_25_rows_paginates_with_more_row() -> None:
    rows = [ListRow(id=f"faq:q{i}", title=f"Question number {i}") for i in range(25)]
    pages = _pages(ListReply("FAQ", "Questions", [ListSection("Product", rows)]))
    assert len(pages) == 3
    ids = [row.id for page in pages for s in page.sections for row in s.rows]  # type: ignore[union-attr]
    assert [i for i in ids if not i.startswith("nav:more:")] == [row.id for row in rows]
    assert ids.count("nav:more:t0") == 1
    assert ids.count("nav:more:t1") == 1
    for page in pages:
        for p in r.render(page, TO):
            assert_within_limits(p)


def test_long_interactive_body_goes_first_as_text() -> None:
    body = "Intro paragraph. " * 100  # ~1700 characters
    payloads = r.render(ButtonsReply(body, [Button("a:b", "OK")]), TO)
    assert [p["type"] for p in payloads] == ["text", "interactive"]
    for p in payloads:
        assert_within_limits(p)


def test_bsuid_recipient_context_and_audio() -> None:
    (p,) = r.render(TextReply("*Hello*"), {"recipient": "BR.1502576394655843"}, reply_to="wamid.X")
    assert p["recipient"] == "BR.1502576394655843"
    assert "to" not in p
    assert p["context"] == {"message_id": "wamid.X"}
    assert p["text"]["body"] == "*Hello*"
    (audio,) = r.render(AudioReply(media_id="123"), TO)
    assert audio["audio"] == {"id": "123"}


def test_duplicate_titles_after_clipping_are_made_unique() -> None:
    buttons = [Button("x:1", "Installation options A"), Button("x:2", "Installation options B")]
    (p,) = r.render(ButtonsReply("?", buttons), TO)
    titles = [b["reply"]["title"] for b in p["interactive"]["action"]["buttons"]]
    assert len(set(titles)) == 2
    validate_message(p)


def test_template_payload_shape() -> None:
    p = r.template_payload(TO, "follow_up", "ru", ["Ivan"])
    validate_message(p)
    assert p["template"]["language"] == {"code": "ru"}
    assert p["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Ivan"}]
