"""Funnel documents: loading, validation errors that point at the bad node, config-driven logic."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from shared.funnel import (
    Funnel,
    FunnelValidationError,
    calculate_quote,
    default_funnel,
    determine_segment,
    load_funnel,
    make_callback,
    parse_callback,
)


def funnel_dict() -> dict[str, Any]:
    return copy.deepcopy(default_funnel().to_dict())


def errors_of(doc: Any) -> list[dict[str, Any]]:
    with pytest.raises(FunnelValidationError) as info:
        load_funnel(doc)
    return [dict(e) for e in info.value.errors]


def locs(doc: Any) -> list[list[str | int]]:
    return [e["loc"] for e in errors_of(doc)]


# --- loading ------------------------------------------------------------------------------------


def test_none_gives_the_default_funnel() -> None:
    funnel = load_funnel(None)
    assert funnel is default_funnel()
    assert isinstance(funnel, Funnel)


def test_default_funnel_round_trips_through_dict_and_json() -> None:
    doc = funnel_dict()
    assert load_funnel(doc) == default_funnel()
    assert load_funnel(json.dumps(doc, ensure_ascii=False)) == default_funnel()


def test_default_funnel_json_is_shipped_as_package_data() -> None:
    text = resources.files("shared.funnel").joinpath("default_funnel.json").read_text("utf-8")
    assert json.loads(text)["faq"]["sections"][0]["id"] == "product"


def test_default_funnel_faq_reproduces_the_seed() -> None:
    faq = default_funnel().faq
    assert faq is not None
    assert [[i.key for i in s.items] for s in faq.sections] == [
        ["what_is", "offline", "security", "vs_cloud", "cloud_models"],
        ["hardware", "install", "integrations"],
        ["price", "support", "free_trial"],
    ]


def test_default_funnel_discovery_steps_are_the_seed_funnel_states() -> None:
    discovery = default_funnel().discovery
    assert discovery is not None
    assert [s.id for s in discovery.steps] == [f"custom_step_{i}" for i in range(1, 6)]


def test_funnel_is_immutable() -> None:
    with pytest.raises(ValueError, match="frozen"):
        default_funnel().name = "changed"  # type: ignore[misc]


# --- validation errors point at the node ---------------------------------------------------------


def test_button_to_an_unknown_faq_key_points_at_the_button() -> None:
    doc = funnel_dict()
    doc["screens"]["basic"]["buttons"][2]["action"] = "faq:no_such_key"
    errors = errors_of(doc)
    assert errors == [
        {
            "loc": ["screens", "basic", "buttons", 2, "action"],
            "msg": "unknown faq key 'no_such_key'",
        }
    ]


def test_faq_item_button_to_unknown_screen() -> None:
    doc = funnel_dict()
    doc["faq"]["sections"][2]["items"][2]["buttons"][1]["action"] = "sales:show:nowhere"
    assert locs(doc) == [["faq", "sections", 2, "items", 2, "buttons", 1, "action"]]


def test_quiz_question_without_options_points_at_its_options() -> None:
    doc = funnel_dict()
    doc["quiz"]["questions"][2]["options"] = []
    errors = errors_of(doc)
    assert errors[0]["loc"] == ["quiz", "questions", 2, "options"]
    assert "at least 1" in errors[0]["msg"]


def test_missing_text_is_reported() -> None:
    doc = funnel_dict()
    del doc["texts"]["stale"]
    assert ["texts", "stale"] in locs(doc)


def test_wrong_type_is_reported() -> None:
    doc = funnel_dict()
    doc["products"]["basic"]["price"] = "cheap"
    assert locs(doc) == [["products", "basic", "price"]]


def test_unknown_field_is_reported() -> None:
    doc = funnel_dict()
    doc["quiz"]["questions"][0]["colour"] = "blue"
    assert locs(doc) == [["quiz", "questions", 0, "colour"]]


def test_weight_for_unknown_segment() -> None:
    doc = funnel_dict()
    doc["quiz"]["questions"][1]["options"][0]["weights"]["enterprise"] = 5
    assert locs(doc) == [["quiz", "questions", 1, "options", 0, "weights", "enterprise"]]


def test_segment_with_unknown_screen_and_unknown_default() -> None:
    doc = funnel_dict()
    doc["segments"]["diy"]["screen"] = "missing"
    doc["segmentation"]["default"] = "vip"
    assert locs(doc) == [["segments", "diy", "screen"], ["segmentation", "default"]]


def test_callback_id_over_64_bytes_points_at_the_id_that_makes_it() -> None:
    doc = funnel_dict()
    long_id = "very_long_identifier_" + "x" * 18  # 39 characters: a valid identifier
    doc["quiz"]["questions"][3]["id"] = long_id
    doc["quiz"]["questions"][3]["options"][1]["id"] = long_id
    errors = errors_of(doc)
    assert len(errors) == 1  # "sales:ans:{question}:{option}" of the other options still fits
    assert errors[0]["loc"] == ["quiz", "questions", 3, "options", 1, "id"]
    assert "64 bytes" in errors[0]["msg"]


def test_identifier_syntax_is_checked() -> None:
    doc = funnel_dict()
    doc["faq"]["sections"][0]["items"][0]["key"] = "What Is:"
    errors = errors_of(doc)
    assert [e["loc"] for e in errors] == [["faq", "sections", 0, "items", 0, "key"]]
    assert "pattern" in errors[0]["msg"]


def test_duplicate_faq_key_and_reserved_names() -> None:
    doc = funnel_dict()
    doc["faq"]["sections"][1]["items"][0]["key"] = "price"
    doc["faq"]["sections"][1]["items"][1]["key"] = "cat_install"
    errors = errors_of(doc)
    assert {
        "loc": ["faq", "sections", 2, "items", 0, "key"],
        "msg": "duplicate faq key 'price'",
    } in (errors)
    assert ["faq", "sections", 1, "items", 1, "key"] in [e["loc"] for e in errors]


def test_quote_component_must_name_a_discovery_step() -> None:
    doc = funnel_dict()
    doc["quote"]["components"][1]["step"] = "custom_step_9"
    assert locs(doc) == [["quote", "components", 1, "step"]]


def test_buttons_of_a_missing_feature_are_dangling() -> None:
    doc = funnel_dict()
    doc["tz"] = None
    assert locs(doc) == [["welcome", 2, "action"]]


def test_every_error_is_reported_at_once() -> None:
    doc = funnel_dict()
    doc["welcome"][0]["action"] = "sales:nope"
    doc["payment"]["buttons"][1]["action"] = "nav:up"
    doc["gpu_audit"]["buttons"][0]["action"] = "not a callback"
    assert locs(doc) == [
        ["welcome", 0, "action"],
        ["gpu_audit", "buttons", 0, "action"],
        ["payment", "buttons", 1, "action"],
    ]


@pytest.mark.parametrize("doc", ["[1, 2]", "{not json", 42])
def test_not_an_object(doc: Any) -> None:
    errors = errors_of(doc)
    assert errors[0]["loc"] == []


def test_error_message_names_the_path() -> None:
    doc = funnel_dict()
    doc["welcome"][1]["action"] = "faq:cat_nothing"
    with pytest.raises(FunnelValidationError, match=r"welcome\.1\.action: unknown faq section"):
        load_funnel(doc)


# --- callbacks -----------------------------------------------------------------------------------


def test_make_callback_refuses_more_than_64_bytes() -> None:
    assert make_callback("faq", "price") == "faq:price"
    with pytest.raises(ValueError, match="64 bytes"):
        make_callback("sales", "ans", "q" * 30, "ф" * 16)


def test_parse_callback() -> None:
    cb = parse_callback("sales:ans:q1:o2")
    assert cb is not None
    assert (cb.prefix, cb.action, cb.args) == ("sales", "ans", ("q1", "o2"))
    assert parse_callback("other:x") is None
    assert parse_callback("faq:") is None
    assert parse_callback(None) is None


# --- segmentation and quotes follow the config ---------------------------------------------------


def test_determine_segment_by_weights() -> None:
    assert determine_segment({"q_install": "self", "q_budget": "free"}) == "diy"
    assert determine_segment({"q_install": "team", "q_task": "integration"}) == "custom"
    assert determine_segment({"q_install": "turnkey"}) == "basic"


def test_determine_segment_defaults_and_tie_break() -> None:
    assert determine_segment({}) == "basic"  # below min_score -> default
    assert determine_segment({"q_bogus": "x"}) == "basic"
    # diy 3 (self) vs custom 3 (integration): tie_break prefers custom over diy
    assert determine_segment({"q_install": "self", "q_task": "integration"}) == "custom"


def test_determine_segment_reads_weights_from_the_funnel() -> None:
    doc = funnel_dict()
    for option in doc["quiz"]["questions"][0]["options"]:
        option["weights"] = {"custom": 10}
    funnel = load_funnel(doc)
    assert determine_segment({"q_install": "self"}, funnel) == "custom"
    assert determine_segment({"q_install": "self"}) == "diy"


def test_calculate_quote_from_discovery() -> None:
    quote = calculate_quote(
        {
            "custom_step_2": "около 30 сотрудников",
            "custom_step_3": "нет",
            "custom_step_4": "500",
            "custom_step_5": "сервер есть, не срочно",
        }
    )
    # base 150 000 + 20 users * 1 500; "нет" integrations; "не срочно" is not urgent
    assert [(line.label, line.amount) for line in quote.lines] == [
        ("Installation, setup and training", 150_000),
        ("Users above 10", 30_000),
    ]
    assert quote.total == 180_000
    assert quote.deposit == 54_000
    assert (quote.low, quote.high) == (162_000, 216_000)
    assert "*Total: 180 000 ₽*" in quote.text


def test_urgent_multiplier_applies_unless_negated() -> None:
    urgent = calculate_quote({"custom_step_5": "Срочно, сервера нет"})
    assert urgent.total == 195_000  # 150 000 * 1.3
    assert calculate_quote({"custom_step_5": "not urgent"}).total == 150_000


def test_calculate_quote_reads_prices_from_the_funnel() -> None:
    doc = funnel_dict()
    doc["quote"]["base"] = 10_000
    doc["quote"]["components"][1]["unit_price"] = 1_000
    doc["currency"] = "€"
    funnel = load_funnel(doc)
    quote = calculate_quote({"custom_step_3": "CRM; ERP; website"}, funnel)
    assert quote.total == 13_000
    assert "13 000 €" in quote.text


def test_quote_number_cap_and_thousands() -> None:
    quote = calculate_quote({"custom_step_2": "1 500 users"})
    users = next(line for line in quote.lines if line.label == "Users above 10")
    assert users.amount == (1500 - 10) * 1500
    capped = calculate_quote({"custom_step_2": "10000000 people"})
    users = next(line for line in capped.lines if line.label == "Users above 10")
    assert users.amount == (5000 - 10) * 1500
