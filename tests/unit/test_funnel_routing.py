"""Routing through the default funnel (seed 004), as a customer would walk it."""

from __future__ import annotations

import copy
from collections import deque

import pytest

from shared.channels.base import (
    ButtonsReply,
    CustomerRef,
    InboundMessage,
    ListReply,
    Reply,
    TextReply,
)
from shared.funnel import MAX_CALLBACK_BYTES, default_funnel, load_funnel
from shared.funnel.schema import Funnel
from shared.routing import ConversationState, RouteResult, reply_options, route


class Chat:
    """One customer talking to a bot: keeps the state between messages like the runtime does."""

    def __init__(self, funnel: Funnel | None = None, name: str | None = None) -> None:
        self.funnel = funnel or default_funnel()
        self.state = ConversationState(profile_name=name)
        self.customer = CustomerRef(phone="+15550100001")
        self.count = 0
        self.last: RouteResult | None = None

    def _send(self, message: InboundMessage) -> RouteResult:
        result = route(message, self.state, self.funnel)
        self.state = result.state
        self.last = result
        return result

    def say(self, text: str) -> RouteResult:
        self.count += 1
        return self._send(InboundMessage(f"wamid.{self.count}", self.customer, "text", text))

    def press(self, payload: str, title: str = "") -> RouteResult:
        self.count += 1
        msg = InboundMessage(f"wamid.{self.count}", self.customer, "button", title, payload)
        return self._send(msg)

    def press_title(self, title: str) -> RouteResult:
        """Press the option with this title among those the bot just offered."""
        assert self.last is not None
        for reply in reversed(self.last.replies):
            for cb, shown in reply_options(reply):
                if shown == title:
                    return self.press(cb, shown)
        raise AssertionError(f"no option {title!r} in {options(self.last)}")


def options(result: RouteResult) -> list[tuple[str, str]]:
    return [opt for reply in result.replies for opt in reply_options(reply)]


def titles(result: RouteResult) -> list[str]:
    return [title for _, title in options(result)]


def text_of(result: RouteResult) -> str:
    return "\n".join(getattr(r, "text", "") for r in result.replies)


WELCOME_TITLES = ["Find my solution", "FAQ", "Write a spec"]

DIY_ANSWERS = [
    "I'll do it myself",
    "PC/server with a GPU",
    "Just me",
    "Experiments",
    "Free / minimal",
]
BASIC_ANSWERS = [
    "I need it done for me",
    "Ordinary PC or laptop",
    "2–20 people",
    "Chat with documents",
    "Up to 100 000 ₽",
]
CUSTOM_ANSWERS = [
    "Our IT team, with help",
    "Data-centre servers",
    "More than 20",
    "CRM/ERP automation",
    "Over 100 000 ₽",
]


def take_quiz(chat: Chat, answers: list[str]) -> RouteResult:
    result = chat.press_title("Find my solution")
    assert isinstance(result.replies[-1], ListReply), "quiz questions are list messages"
    assert "Question 1 of 5" in text_of(result)
    for answer in answers:
        result = chat.press_title(answer)
    return result


# --- greetings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["hi", "Hello!", "HELLO there", "/start", "Привет", "привет!!!", "Добрый день", "МЕНЮ"]
)
def test_greeting_shows_welcome_buttons(text: str) -> None:
    chat = Chat(name="Anna")
    result = chat.say(text)
    assert result.handler == "show_welcome"
    assert not result.needs_llm
    assert isinstance(result.replies[0], ButtonsReply)
    assert titles(result) == WELCOME_TITLES
    assert "Anna" in text_of(result)
    assert [e.type for e in result.events] == ["greeting"]


def test_greeting_without_name_uses_the_anonymous_name() -> None:
    result = Chat().say("hi")
    assert "Hello, there!" in text_of(result)


def test_long_message_starting_with_hi_is_not_a_greeting() -> None:
    result = Chat().say("hi, could you tell me what the weather is like in Paris today")
    assert result.handler != "show_welcome"


def test_the_default_funnel_has_nine_greeting_words_in_russian_and_english() -> None:
    words = default_funnel().greetings.words
    assert len(words) == 9
    assert any(any("а" <= ch <= "я" for ch in w) for w in words)
    assert any(w.isascii() for w in words)


# --- the three segment paths --------------------------------------------------------------------


def test_diy_path_quiz_segment_gpu_audit_and_github_link() -> None:
    chat = Chat()
    chat.say("hello")
    result = take_quiz(chat, DIY_ANSWERS)
    assert result.state.segment == "diy"
    assert result.handler == "answer_quiz"
    assert "best fit for you is *DIY*" in text_of(result)
    assert "https://github.com/" in text_of(result)
    segment_events = [e for e in result.events if e.type == "segment"]
    assert segment_events[0].data["segment"] == "diy"

    result = chat.press_title("GPU audit")
    assert isinstance(result.replies[0], ListReply)
    result = chat.press_title("RTX 3060 12 GB")
    assert "12 GB" in text_of(result)
    assert "14B" in text_of(result)  # the 12 GB tier of the default funnel
    assert [e.type for e in result.events] == ["gpu_audit"]

    # A GPU that is not listed is typed as free text (diy_gpu_custom).
    chat.press_title("Check another GPU")
    result = chat.press_title("Other GPU (type it)")
    assert result.state.funnel_state == "diy_gpu_custom"
    result = chat.say("GTX 1660 Super 6GB")
    assert result.state.funnel_state is None
    assert "6 GB" in text_of(result)
    assert "7–8B" in text_of(result)


def test_diy_gpu_audit_unrecognised_text_offers_the_list_again_and_leaves_the_step() -> None:
    chat = Chat()
    chat.press("sales:gpu:other")
    result = chat.say("a potato")
    assert result.state.funnel_state is None
    assert isinstance(result.replies[0], ListReply)
    assert "couldn't recognise" in text_of(result)


def test_basic_path_value_demo_and_order_with_payment_link() -> None:
    chat = Chat()
    chat.say("hi")
    result = take_quiz(chat, BASIC_ANSWERS)
    assert result.state.segment == "basic"
    assert "49 000 ₽" in text_of(result)
    assert titles(result) == ["Watch demo", "Order", "Questions"]

    result = chat.press_title("Watch demo")
    assert "Demo" in text_of(result)
    result = chat.press_title("Order")
    text = text_of(result)
    assert "https://yoomoney.ru/quickpay/confirm?" in text
    assert "sum=49000.00" in text
    assert "receiver=4100000000000000" in text
    assert "15550100001" not in text  # the payment label is a hash, not the phone
    order = [e for e in result.events if e.type == "order"][0]
    assert order.data["product"] == "basic"
    assert order.data["amount"] == 49000


def test_custom_path_discovery_quote_alternatives_and_advance_payment() -> None:
    chat = Chat()
    chat.say("привет")
    result = take_quiz(chat, CUSTOM_ANSWERS)
    assert result.state.segment == "custom"
    result = chat.press_title("Get an estimate")
    assert result.state.funnel_state == "custom_step_1"

    answers = [
        "Support bot answering from our contracts",
        "about 50 people",
        "Bitrix24, 1C and the website",
        "2 000 pages",
        "no server, urgent",
    ]
    for i, answer in enumerate(answers, 1):
        assert chat.state.funnel_state == f"custom_step_{i}"
        result = chat.say(answer)
        assert result.handler == "answer_discovery"
        assert not result.needs_llm

    assert result.state.funnel_state is None
    assert result.state.discovery["custom_step_3"] == "Bitrix24, 1C and the website"
    quote_text = result.replies[0]
    assert isinstance(quote_text, TextReply)
    # base 150 000 + 40 users * 1 500 + 3 integrations * 40 000 + 1 000 pages * 20
    # + server setup 30 000 = 380 000; urgent x1.3 = 494 000
    assert "*Total: 494 000 ₽*" in quote_text.text
    assert "Integrations: 120 000 ₽" in quote_text.text
    assert "Advance payment to start: *148 000 ₽*" in quote_text.text
    alternatives = result.replies[1]
    assert isinstance(alternatives, ButtonsReply)
    assert "Alternatives" in alternatives.text
    assert [b.title for b in alternatives.buttons] == [
        "Pay advance",
        "Basic package",
        "Talk to a manager",
    ]
    assert [e.type for e in result.events][-2:] == ["discovery_done", "quote"]

    result = chat.press_title("Pay advance")
    assert "sum=148000.00" in text_of(result)


def test_skipping_discovery_steps_still_gives_a_base_quote() -> None:
    chat = Chat()
    chat.press("sales:discovery")
    for _ in range(5):
        result = chat.press_title("Skip")
    assert result.state.funnel_state is None
    assert "*Total: 150 000 ₽*" in text_of(result)


def test_ordering_the_advance_before_any_quote_starts_the_discovery() -> None:
    chat = Chat()
    result = chat.press("sales:order:custom")
    assert "first need an estimate" in text_of(result)
    assert result.state.funnel_state == "custom_step_1"


def test_cancel_word_leaves_a_free_text_step() -> None:
    chat = Chat()
    chat.press("sales:discovery")
    result = chat.say("Cancel")
    assert result.state.funnel_state is None
    assert titles(result) == WELCOME_TITLES


def test_bare_greeting_leaves_a_step_but_a_sentence_is_an_answer() -> None:
    chat = Chat()
    chat.press("sales:discovery")
    result = chat.say("hello, we need a bot for support")
    assert result.state.discovery["custom_step_1"] == "hello, we need a bot for support"
    result = chat.say("Привет!")
    assert result.handler == "show_welcome"
    assert result.state.funnel_state is None
    assert "custom_step_2" not in result.state.discovery


def test_voice_note_transcript_is_routed_as_text() -> None:
    msg = InboundMessage("w", CustomerRef(phone="+15550100001"), "audio", "[voice] Привет")
    assert route(msg, ConversationState(), None).handler == "show_welcome"


def test_pressing_another_button_leaves_an_abandoned_step() -> None:
    chat = Chat()
    chat.press("sales:discovery")
    result = chat.press("faq:menu")
    assert result.state.funnel_state is None
    assert result.handler == "show_faq_menu"


def test_free_text_step_asks_again_for_a_photo() -> None:
    chat = Chat()
    chat.press("sales:discovery")
    msg = InboundMessage("wamid.photo", chat.customer, "image", "", media_id="m1")
    result = route(msg, chat.state, chat.funnel)
    assert result.handler == "expect_text"
    assert result.state.funnel_state == "custom_step_1"


def test_stale_funnel_state_is_cleared_and_the_message_routed_normally() -> None:
    state = ConversationState(funnel_state="custom_step_99")
    msg = InboundMessage("wamid.1", CustomerRef(phone="+15550100001"), "text", "hello")
    result = route(msg, state, default_funnel())
    assert result.state.funnel_state is None
    assert result.handler == "show_welcome"


# --- digits and typed titles (SMS) --------------------------------------------------------------


def test_digits_answer_the_quiz_like_sms_customers_do() -> None:
    chat = Chat()
    chat.say("hi")
    result = chat.say("1")  # "Find my solution"
    assert result.handler == "start_quiz"
    for digit in ["3", "4", "3", "3", "3"]:
        result = chat.say(digit)
    assert result.state.answers == {
        "q_install": "team",
        "q_hardware": "cluster",
        "q_users": "large",
        "q_task": "integration",
        "q_budget": "over_100k",
    }
    assert result.state.segment == "custom"


def test_exact_option_title_typed_as_text_selects_it() -> None:
    chat = Chat()
    chat.press("sales:quiz")
    result = chat.say("just me")
    assert result.state.answers == {}  # "Just me" belongs to question 3, not the pending one
    chat.press("sales:quiz")
    result = chat.say("i need it done for me!")
    assert result.state.answers == {"q_install": "turnkey"}
    assert "Question 2 of 5" in text_of(result)


def test_out_of_range_digit_goes_to_the_llm() -> None:
    chat = Chat()
    chat.press("sales:quiz")
    result = chat.say("7")
    assert result.needs_llm
    assert result.replies == []


def test_digit_in_a_free_text_step_is_the_answer_not_an_option() -> None:
    chat = Chat()
    chat.press("sales:discovery")
    chat.say("a bot")
    result = chat.say("2")  # how many users: 2 (the offered options are Skip / Cancel)
    assert result.state.discovery["custom_step_2"] == "2"
    assert result.state.funnel_state == "custom_step_3"


# --- FAQ ----------------------------------------------------------------------------------------


def test_faq_there_and_back() -> None:
    chat = Chat()
    chat.say("hi")
    result = chat.press_title("FAQ")
    assert isinstance(result.replies[0], ListReply)
    assert titles(result)[:3] == ["Product", "Installation", "Pricing & support"]
    result = chat.press("faq:cat_product")
    assert [cb for cb, _ in options(result)][:5] == [
        "faq:what_is",
        "faq:offline",
        "faq:security",
        "faq:vs_cloud",
        "faq:cloud_models",
    ]
    result = chat.press("faq:offline")
    assert result.handler == "show_faq_item"
    assert "without the internet" in text_of(result)
    assert ("faq:back_product", "⬅ Back") in options(result)
    assert [e.type for e in result.events] == ["faq_view"]
    result = chat.press("faq:back_product")
    assert result.handler == "show_faq_section"
    assert "faq:offline" in [cb for cb, _ in options(result)]
    result = chat.press_title("⬅ Back")
    assert result.handler == "show_faq_menu"
    result = chat.press_title("Main menu")
    assert titles(result) == WELCOME_TITLES


@pytest.mark.parametrize(
    ("section", "keys"),
    [
        ("install", ["hardware", "install", "integrations"]),
        ("pricing", ["price", "support", "free_trial"]),
    ],
)
def test_faq_sections_hold_the_seed_keys(section: str, keys: list[str]) -> None:
    result = Chat().press(f"faq:cat_{section}")
    assert [cb for cb, _ in options(result) if cb.startswith("faq:") and cb != "faq:menu"] == [
        f"faq:{k}" for k in keys
    ]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("How much does it cost?", "price"),
        ("сколько стоит установка", "price"),
        ("does it work offline", "offline"),
        ("Is my data safe?", "security"),
        ("Can it connect to Bitrix24?", "integrations"),
    ],
)
def test_free_text_matching_an_faq_gets_its_answer(text: str, key: str) -> None:
    result = Chat().say(text)
    assert result.handler == "answer_faq_match"
    assert result.events[0].data["key"] == key


def test_nav_back_returns_to_the_previous_screen() -> None:
    chat = Chat()
    chat.say("hi")
    chat.press("faq:menu")
    chat.press("faq:cat_install")
    chat.press("faq:hardware")
    result = chat.press("nav:back")
    assert result.handler == "go_back"
    assert "faq:hardware" in [cb for cb, _ in options(result)]  # the Installation section
    result = chat.press("nav:back")
    assert "faq:cat_install" in [cb for cb, _ in options(result)]  # the FAQ menu
    result = chat.press("nav:back")
    assert titles(result) == WELCOME_TITLES


# --- fallbacks and stale callbacks ---------------------------------------------------------------


def test_free_text_nothing_takes_goes_to_the_llm_without_replies() -> None:
    chat = Chat()
    chat.say("hi")
    result = chat.say("My cat knocked over the router again, any advice?")
    assert result.needs_llm
    assert result.replies == []
    assert result.handler == "llm_fallback"
    # The options on offer survive an LLM answer, so "1" still picks the first one.
    assert chat.say("1").handler == "start_quiz"


@pytest.mark.parametrize(
    "payload",
    [
        "faq:no_such_key",
        "faq:cat_nope",
        "sales:ans:q_install:bogus",
        "sales:ans:gone:self",
        "sales:seg:enterprise",
        "sales:order:gold",
        "tz:a:goal:nope",
        "nav:sideways",
        "weird:payload",
        "not-a-callback",
        "sales",
        "x" * 300,
        "sales:skip",
        "tz:skip",
    ],
)
def test_stale_callbacks_get_a_polite_reply_and_the_main_menu(payload: str) -> None:
    result = Chat().press(payload)
    assert result.handler == "stale_callback"
    assert "no longer available" in text_of(result)
    assert titles(result) == WELCOME_TITLES
    assert not result.needs_llm
    assert result.events[0].type == "stale_callback"


def test_old_quiz_button_after_the_funnel_was_edited_is_stale() -> None:
    chat = Chat()
    chat.press("sales:quiz")
    edited = default_funnel().to_dict()
    edited["quiz"]["questions"][0]["options"] = edited["quiz"]["questions"][0]["options"][1:]
    chat.funnel = load_funnel(edited)
    result = chat.press("sales:ans:q_install:self")
    assert result.handler == "stale_callback"


def test_route_does_not_mutate_the_state_it_was_given() -> None:
    state = ConversationState(answers={"q_install": "self"}, data={"x": [1]})
    before = copy.deepcopy(state)
    msg = InboundMessage("w", CustomerRef(bsuid="BR.1"), "button", "", "sales:ans:q_hardware:gpu")
    result = route(msg, state, default_funnel())
    assert state == before
    assert result.state.answers == {"q_install": "self", "q_hardware": "gpu"}


def test_customer_without_phone_can_order() -> None:
    msg = InboundMessage(
        "w", CustomerRef(bsuid="BR.1502576394655843"), "button", "", "sales:order:basic"
    )
    result = route(msg, ConversationState(), None)
    assert "label=basic-" in text_of(result)


# --- spec generator (tz) -------------------------------------------------------------------------


def test_tz_collects_requirements_and_returns_a_spec() -> None:
    chat = Chat()
    chat.say("hi")
    result = chat.press_title("Write a spec")
    assert "Step 1 of 5" in text_of(result)
    chat.press_title("Customer support")
    result = chat.press_title("WhatsApp")
    assert titles(result) == ["Add more", "Done"]  # multi-select: one at a time
    result = chat.press_title("Add more")
    assert "WhatsApp" not in titles(result)
    chat.press_title("Telegram")
    result = chat.press_title("Done")
    assert "Step 3 of 5" in text_of(result)
    result = chat.press_title("50–500")
    assert result.state.funnel_state == "tz_sources"
    result = chat.say("price list and delivery terms")
    assert result.state.funnel_state == "tz_extra"
    result = chat.say("Russian and English, CRM later")
    spec = text_of(result)
    assert "Goal:* Customer support" in spec
    assert "Channels:* WhatsApp, Telegram" in spec
    assert "Expected load:* 50–500" in spec
    assert "price list and delivery terms" in spec
    assert "Russian and English" in spec
    assert result.events[-1].type == "tz_done"
    assert result.state.funnel_state is None


# --- every callback the default funnel can emit --------------------------------------------------


def _crawl(funnel: Funnel) -> dict[str, RouteResult]:
    """Press every option reachable from the greeting; return callback id -> its result."""
    seen: dict[str, RouteResult] = {}
    start = route(
        InboundMessage("w0", CustomerRef(phone="+15550100001"), "text", "hi"),
        ConversationState(),
        funnel,
    )
    queue: deque[tuple[RouteResult, str]] = deque((start, cb) for cb, _ in options(start))
    while queue:
        parent, cb = queue.popleft()
        if cb in seen:
            continue
        msg = InboundMessage("w", CustomerRef(phone="+15550100001"), "button", "", cb)
        result = route(msg, parent.state, funnel)
        seen[cb] = result
        queue.extend((result, child) for child, _ in options(result))
    return seen


def test_every_reachable_callback_is_short_and_handled() -> None:
    seen = _crawl(default_funnel())
    assert len(seen) > 60  # the whole funnel: quiz, FAQ, GPU audit, tz, orders
    for cb, result in seen.items():
        assert len(cb.encode()) <= MAX_CALLBACK_BYTES, cb
        assert result.handler != "stale_callback", cb
        assert result.replies, cb
    assert {"faq:cloud_models", "sales:gpu:a100", "tz:a:channels:web", "sales:order:basic"} <= set(
        seen
    )


def test_default_funnel_button_titles_fit_whatsapp() -> None:
    for result in _crawl(default_funnel()).values():
        for reply in result.replies:
            if isinstance(reply, ButtonsReply):
                assert all(len(b.title) <= 20 for b in reply.buttons), reply.buttons
            if isinstance(reply, ListReply):
                rows = [r for s in reply.sections for r in s.rows]
                assert all(len(r.title) <= 24 for r in rows), rows
                assert all(len(r.description) <= 72 for r in rows), rows


def _is_reply(value: object) -> bool:
    return isinstance(value, Reply.__args__)  # type: ignore[attr-defined]


def test_replies_are_channel_neutral_reply_objects() -> None:
    for result in _crawl(default_funnel()).values():
        assert all(_is_reply(r) for r in result.replies)
