"""Funnel templates (shared/funnel/templates): each renders to a valid funnel, placeholders are
filled, the neutral ones carry nothing of the seed-004 business, user values are inert."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.funnel import default_funnel, load_funnel
from shared.funnel.templates import (
    MAX_LENGTHS,
    BusinessProfile,
    TemplateError,
    list_templates,
    render_template,
)

SEED_TRACES = ("Private AI", "₽", "YooMoney", "yoomoney", "your-org", "Moscow", "49 000")
SHOP = {
    "name": "Maple Leaf Books",
    "about": "A second-hand bookshop on Harbour Street.",
    "hours": "Tue–Sun 10:00–18:00",
    "timezone": "America/Halifax",
    "contact": "hello@mapleleaf.example",
}
NEUTRAL = ("documents", "leads")


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    if isinstance(node, dict):
        return [s for item in node.values() for s in _strings(item)]
    return []


def test_the_list_has_the_three_templates_in_order() -> None:
    infos = list_templates()
    assert [t.id for t in infos][:3] == ["documents", "leads", "sales"]
    documents = infos[0]
    assert documents.title == "Answer questions from my documents"
    assert {"business_name", "hours", "timezone", "contact"} <= set(documents.placeholders)
    assert documents.languages == ["en", "ru"]
    assert list_templates("ru")[0].title.startswith("Отвечать")


@pytest.mark.parametrize("template_id", ["documents", "leads", "sales"])
@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_template_renders_a_valid_funnel(template_id: str, language: str) -> None:
    funnel = render_template(template_id, {**SHOP, "language": language})
    load_funnel(funnel)  # raises on an invalid funnel
    json.dumps(funnel)


def test_sales_is_exactly_the_seed_funnel() -> None:
    assert render_template("sales", SHOP) == default_funnel().to_dict()


@pytest.mark.parametrize("template_id", NEUTRAL)
@pytest.mark.parametrize("language", ["en", "ru"])
def test_neutral_templates_fill_placeholders_and_carry_no_seed_business(
    template_id: str, language: str
) -> None:
    funnel = render_template(template_id, {**SHOP, "language": language})
    text = json.dumps(funnel, ensure_ascii=False)
    for trace in SEED_TRACES:
        assert trace not in text, trace
    for placeholder in ("business_name", "about", "hours", "timezone", "currency", "contact"):
        assert "{" + placeholder + "}" not in text
    assert "Maple Leaf Books" in funnel["texts"]["welcome"]
    assert "{name}" in funnel["texts"]["welcome"]  # the customer's name, filled per message
    assert "Tue–Sun 10:00–18:00" in funnel["manager"]["text"]
    assert "America/Halifax" in funnel["manager"]["text"]
    assert "hello@mapleleaf.example" in funnel["manager"]["text"]
    actions = [b["action"] for b in funnel["welcome"]]
    assert "sales:manager" in actions
    assert funnel["payment"] is None
    assert funnel["quote"] is None
    assert funnel["products"] == {}


def test_documents_offers_a_question_and_a_person_in_english_and_russian() -> None:
    en = render_template("documents", SHOP)
    assert [b["title"] for b in en["welcome"]] == ["Ask a question", "Talk to a person"]
    ru = render_template("documents", {**SHOP, "language": "ru"})
    assert "Здравствуйте" in ru["texts"]["welcome"]
    assert [b["title"] for b in ru["welcome"]] == ["Задать вопрос", "Позвать человека"]


def test_leads_asks_need_budget_timeline_then_hands_over() -> None:
    funnel = render_template("leads", {**SHOP, "currency": "CAD"})
    steps = funnel["discovery"]["steps"]
    assert [s["id"] for s in steps] == ["lead_need", "lead_budget", "lead_timeline"]
    assert "CAD" in steps[1]["text"]
    assert "person" in funnel["discovery"]["done"]
    assert funnel["welcome"][0]["action"] == "sales:discovery"


def test_lines_without_a_value_are_left_out() -> None:
    funnel = render_template("documents", {"name": "Corner Café"})
    manager = funnel["manager"]["text"]
    assert "Opening hours" not in manager
    assert "reach us" not in manager
    assert "Corner Café" in manager
    assert "{" not in manager


def test_hostile_values_are_inert() -> None:
    funnel = render_template(
        "documents",
        {
            "name": "{name}{about} Evil\x00Corp\n{__class__}",
            "about": "{0.__class__.__mro__} *promo* {contact}",
            "contact": "\u2028call {hours}",
        },
    )
    welcome = funnel["texts"]["welcome"]
    # the customer's {name} placeholder appears once: the template's own, not the value's
    assert welcome.count("{") == 1
    assert "{name}" in welcome
    assert "nameabout Evil Corp __class__" in welcome
    assert "__mro__" in welcome
    assert "{0" not in welcome
    for s in _strings(funnel):
        assert "\x00" not in s
        assert "\u2028" not in s


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "x" * (MAX_LENGTHS["business_name"] + 1)),
        ("about", "x" * (MAX_LENGTHS["about"] + 1)),
        ("hours", "x" * (MAX_LENGTHS["hours"] + 1)),
        ("contact", "x" * (MAX_LENGTHS["contact"] + 1)),
        ("currency", "x" * (MAX_LENGTHS["currency"] + 1)),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../../etc/passwd"),
        ("language", "de"),
        ("colour", "red"),
    ],
)
def test_bad_values_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        BusinessProfile.model_validate({field: value})


def test_unknown_template_is_refused() -> None:
    for bad in ("nope", "../sales", "", "SALES", "x" * 500):
        with pytest.raises(TemplateError):
            render_template(bad, SHOP)


def test_a_business_without_a_currency_never_gets_roubles() -> None:
    for language in ("en", "ru"):
        funnel = render_template("leads", {"name": "Shop", "language": language})
        assert funnel["currency"] != "₽"
        assert "₽" not in json.dumps(funnel, ensure_ascii=False)


def test_a_bots_own_faq_is_kept_and_offered_in_the_menu() -> None:
    faq = {
        "menu_text": "*Questions*",
        "section_text": "*{section}*",
        "sections": [
            {
                "id": "shop",
                "title": "The shop",
                "items": [
                    {
                        "key": "parking",
                        "title": "Parking?",
                        "question": "Is there parking?",
                        "answer": "Behind the shop.",
                    }
                ],
            }
        ],
    }
    funnel = render_template("documents", SHOP, faq=faq)
    assert funnel["faq"]["sections"][0]["items"][0]["answer"] == "Behind the shop."
    assert [b["action"] for b in funnel["welcome"]] == [
        "sales:show:ask",
        "faq:menu",
        "sales:manager",
    ]
    # an FAQ whose buttons point at screens the template has not is left out
    broken = {
        **faq,
        "sections": [
            {
                **faq["sections"][0],
                "items": [
                    {
                        **faq["sections"][0]["items"][0],
                        "buttons": [{"title": "Go", "action": "sales:gpu"}],
                    }
                ],
            }
        ],
    }
    funnel = render_template("documents", SHOP, faq=broken)
    assert funnel["faq"] is None
    assert "faq:menu" not in [b["action"] for b in funnel["welcome"]]


# --- the rendered templates walked through the real router, as a customer would -----------


def _chat(template_id: str, language: str = "en") -> Any:
    from tests.unit.test_funnel_routing import Chat

    return Chat(load_funnel(render_template(template_id, {**SHOP, "language": language})), "Ann")


def test_documents_greets_by_both_names_offers_questions_and_a_person() -> None:
    from tests.unit.test_funnel_routing import text_of, titles

    chat = _chat("documents")
    hello = chat.say("hi")
    assert "Hello, Ann!" in text_of(hello)  # the customer's profile name, as before
    assert "assistant of *Maple Leaf Books*" in text_of(hello)
    assert titles(hello) == ["Ask a question", "Talk to a person"]
    ask = chat.press_title("Ask a question")
    assert "Just type your question" in text_of(ask)
    person = chat.press_title("Talk to a person")
    assert "Tue–Sun 10:00–18:00" in text_of(person)
    assert any(e.type == "manager_requested" for e in person.events)
    ru = _chat("documents", "ru").say("привет")
    assert "Здравствуйте, Ann!" in text_of(ru)


def test_leads_asks_three_questions_then_hands_over() -> None:
    from tests.unit.test_funnel_routing import text_of

    chat = _chat("leads")
    chat.say("hi")
    first = chat.press_title("Tell us your request")
    assert "What do you need?" in text_of(first)
    assert "budget" in text_of(chat.say("A gift for my mother"))
    assert "When do you need it?" in text_of(chat.say("About 40 CAD"))
    done = chat.say("This week")
    assert "a person will contact you" in text_of(done)
    finished = [e for e in done.events if e.type == "discovery_done"]
    assert finished
    assert finished[0].data["discovery"]["lead_budget"] == "About 40 CAD"


# -- a menu of topics built from the documents (with_topics) ---------------------------------


def _topics() -> list[dict[str, str]]:
    return [
        {"title": "Opening hours", "text": "We are open daily from 8:00 to 18:00."},
        {"title": "Delivery", "text": "We deliver within 5 km. " + "Delivery is quick. " * 80},
        {"title": "opening HOURS", "text": "a duplicate title is dropped"},
        {"title": "{name} trick", "text": "Braces {name} in documents stay inert."},
        {"title": "", "text": "no title"},
    ]


def test_with_topics_adds_a_topics_menu_before_the_person_button() -> None:
    from shared.funnel.templates import MAX_TOPIC_ANSWER, with_topics

    funnel = render_template("documents", {"name": "Corner Café"})
    out = with_topics(funnel, _topics(), "en")
    load_funnel(out)
    actions = [b["action"] for b in out["welcome"]]
    assert actions.index("faq:menu") == actions.index("sales:manager") - 1
    (section,) = out["faq"]["sections"]
    titles = [i["title"] for i in section["items"]]
    assert titles == ["Opening hours", "Delivery", "name trick"]
    assert all(i["keywords"] == [] for i in section["items"])  # never hijack free text
    delivery = section["items"][1]["answer"]
    assert len(delivery) <= MAX_TOPIC_ANSWER
    assert delivery.endswith(".")
    assert not any("{" in i["title"] + i["answer"] for i in section["items"])
    # applied again: one topics section, one button, the bot's own FAQ sections kept
    own = {
        "id": "own",
        "title": "Ours",
        "items": [{"key": "a", "title": "A", "question": "A?", "answer": "A."}],
    }
    out["faq"]["sections"].append(own)
    again = with_topics(out, _topics()[:1], "en")
    assert [s["id"] for s in again["faq"]["sections"]] == ["topics", "own"]
    assert [b["action"] for b in again["welcome"]].count("faq:menu") == 1


def test_with_topics_without_topics_changes_nothing_and_speaks_russian() -> None:
    from shared.funnel.templates import with_topics

    funnel = render_template("documents", {"name": "Кофейня", "language": "ru"})
    assert with_topics(funnel, [], "ru") == json.loads(json.dumps(funnel))
    out = with_topics(funnel, _topics()[:1], "ru")
    assert any(b["title"] == "Темы" for b in out["welcome"])
