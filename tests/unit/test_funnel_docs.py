"""docs/funnels.md stays true: its complete example is a valid funnel that behaves as the guide
says, every key of the format is described, and the editor's plain-language messages and preview
(shared/funnel/editor.py) work on it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.channels.base import CustomerRef, InboundMessage
from shared.funnel import load_funnel
from shared.funnel.editor import PreviewStep, check_document, plain_message, preview
from shared.funnel.schema import Faq, FaqItem, FaqSection, Funnel, Greetings, Texts
from shared.routing import ConversationState, route

DOC = Path(__file__).resolve().parents[2] / "docs" / "funnels.md"


@pytest.fixture(scope="module")
def guide() -> str:
    return DOC.read_text("utf-8")


@pytest.fixture(scope="module")
def example(guide: str) -> dict[str, Any]:
    block = re.search(r"```json\n(\{.*?\n\})\n```", guide, re.S)
    assert block, "the guide's complete example is missing"
    return dict(json.loads(block.group(1)))


def _say(funnel: Funnel, text: str, payload: str | None = None) -> Any:
    message = InboundMessage(
        provider_message_id="m1", customer=CustomerRef(phone="+15550001234"), text=text,
        kind="button" if payload else "text", payload=payload,
    )  # fmt: skip
    return route(message, ConversationState(), funnel)


def test_the_guides_example_is_a_valid_funnel_that_does_what_the_guide_says(
    example: dict[str, Any],
) -> None:
    funnel = load_funnel(example)
    hello = _say(funnel, "Hi")
    assert [b.title for b in hello.replies[0].buttons] == [
        "Opening hours", "Questions", "Talk to a person"
    ]  # fmt: skip
    hours = _say(funnel, "Opening hours", "faq:hours")
    assert hours.replies[0].text.endswith("Every day from 7:00 to 18:00.")
    typed = _say(funnel, "when are you open?")
    assert typed.replies[0].text.endswith("Every day from 7:00 to 18:00.")
    assert _say(funnel, "do you have gluten-free bread?").needs_llm


@pytest.mark.parametrize("model", [Funnel, Texts, Greetings, Faq, FaqSection, FaqItem])
def test_every_key_of_the_format_is_described(guide: str, model: type[Any]) -> None:
    missing = [n for n in model.model_fields if not re.search(rf"`{n}(`|\[\]`)", guide)]
    assert not missing, f"docs/funnels.md does not describe {model.__name__}: {missing}"


def test_every_editor_action_prefix_is_in_the_guide(guide: str) -> None:
    js = (DOC.parents[1] / "admin_ui" / "static" / "funnel_editor.js").read_text("utf-8")
    offered = set(re.findall(r'\["((?:nav|faq|sales|tz):[a-z_]+)', js))
    offered |= {a.rstrip(":") for a in re.findall(r'"((?:faq|sales):[a-z_]+:?)" \+', js)}
    assert offered, "the editor's action list was not found"
    for action in offered:
        assert f"`{action}" in guide, action


def test_plain_messages_for_the_example_with_mistakes(example: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(example))
    broken["faq"]["sections"][0]["items"][0]["key"] = "opening_hours"
    funnel, errors = check_document(broken)
    assert funnel is None
    assert errors == [
        {"loc": ["welcome", 0, "action"],
         "msg": "points to the FAQ answer 'hours', which does not exist"},
    ]  # fmt: skip
    assert plain_message("String should have at least 1 character") == "must not be empty"


def test_preview_replays_steps_from_a_fresh_conversation(example: dict[str, Any]) -> None:
    funnel = load_funnel(example)
    turns = preview(
        funnel, [PreviewStep("hello"), PreviewStep("Questions", "faq:menu")], name="Mia"
    )
    assert turns[0]["replies"][0]["text"].startswith("Hello, Mia! This is *Corner Bakery*")
    assert turns[1]["handler"] == "show_faq_menu"
    rows = [r["id"] for s in turns[1]["replies"][0]["sections"] for r in s["rows"]]
    assert "faq:cat_shop" in rows
