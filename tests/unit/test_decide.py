"""The decision step: each policy alone, their order, and the registry (no I/O anywhere)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.botkit import decide as d
from shared.botkit.decide import (
    NEED_CONTINUATION,
    NEED_INBOUND_SINCE,
    NEED_TRANSCRIPT,
    CustomerState,
    Decision,
    Inbound,
    Need,
    Rules,
    decide,
)
from shared.channels.base import CustomerRef, InboundMessage, TextReply
from shared.funnel import default_funnel
from shared.routing.types import ConversationState

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PHONE = "+15550100001"
BSUID = "BR.1502576394655843"


def inbound(
    text: str = "zxqv when do you open?",
    *,
    kind: Any = "text",
    payload: str | None = None,
    media_id: str | None = None,
    identities: dict[str, str] | None = None,
    state: ConversationState | None = None,
    user_id: int | None = 7,
    rate_notice_at: datetime | None = None,
    inputs: dict[Need, Any] | None = None,
) -> Inbound:
    ids = identities or {"phone": PHONE}
    message = InboundMessage(
        "wamid.1", CustomerRef(ids), kind=kind, text=text, payload=payload, media_id=media_id
    )
    return Inbound(
        message=message,
        customer=CustomerState(
            user_id=user_id,
            identities=dict(ids),
            state=state or ConversationState(),
            rate_notice_at=rate_notice_at,
        ),
        now=NOW,
        inputs=dict(inputs or {}),
    )


def rules(**config: Any) -> Rules:
    return Rules.from_config(
        config, funnel=default_funnel(), fallback_text="FALLBACK", rate_limit_text="SLOW DOWN"
    )


# ------------------------------------------------------------------------------ access


def test_access_passes_without_lists() -> None:
    assert d.access_lists(inbound(), rules()) is None


def test_access_drops_a_blocked_customer_without_recording() -> None:
    out = d.access_lists(inbound(), rules(blocked_phones=["+1 (555) 010-0001"]))
    assert isinstance(out, Decision)
    assert (out.record, out.note, out.replies) == (False, "blocked", [])


def test_access_matches_any_known_identity_not_only_the_message() -> None:
    # The message has only the phone; the customer's stored BSUID is blocked.
    item = inbound(identities={"phone": PHONE})
    item.customer.identities["bsuid"] = BSUID
    out = d.access_lists(item, rules(blocked_phones=[BSUID]))
    assert isinstance(out, Decision)
    assert out.note == "blocked"


def test_access_allowed_list_admits_only_listed() -> None:
    allowed = rules(allowed_phones="15550100002, BR.1502576394655843")
    assert isinstance(d.access_lists(inbound(), allowed), Decision)
    assert d.access_lists(inbound(identities={"bsuid": BSUID}), allowed) is None


def test_access_matches_any_scheme_generically() -> None:
    assert d.access_lists(inbound(identities={"telegram_user": "42"}), rules()) is None
    out = d.access_lists(
        inbound(identities={"telegram_user": "42", "username": "anna"}),
        rules(blocked_phones=["@Anna"]),
    )
    assert isinstance(out, Decision)
    webchat = inbound(identities={"webchat": "session-1"})
    assert isinstance(d.access_lists(webchat, rules(blocked_phones=["session-1"])), Decision)


# ------------------------------------------------------------------------------ voice


def test_voice_transcript_asks_for_the_transcript_once() -> None:
    item = inbound("", kind="audio", media_id="m1")
    assert d.voice_transcript(item, rules()) == Need(NEED_TRANSCRIPT, "m1")
    item.inputs[Need(NEED_TRANSCRIPT, "m1")] = "where is my order"
    assert d.voice_transcript(item, rules()) is None
    assert item.text == "[voice] where is my order"
    assert d.voice_transcript(inbound(), rules()) is None


def test_voice_fallback_answers_a_note_without_transcript() -> None:
    item = inbound("", kind="audio", media_id="m1", inputs={Need(NEED_TRANSCRIPT, "m1"): None})
    out = d.voice_fallback(item, rules())
    assert isinstance(out, Decision)
    assert out.text == "[voice]"
    assert out.replies == [TextReply("FALLBACK")]
    assert out.record
    transcribed = inbound(
        "", kind="audio", media_id="m1", inputs={Need(NEED_TRANSCRIPT, "m1"): "hi"}
    )
    assert d.voice_fallback(transcribed, rules()) is None


# ------------------------------------------------------------------------------ rate limit

LIMITED = {"rate_limit_count": 2, "rate_limit_hours": 1}
WINDOW = Need(NEED_INBOUND_SINCE, NOW - timedelta(hours=1))


def test_rate_limit_off_or_not_counted_passes_without_asking() -> None:
    assert d.rate_limit(inbound(), rules()) is None
    assert d.rate_limit(inbound(payload="sales:start", kind="button"), rules(**LIMITED)) is None
    in_step = inbound(state=ConversationState(funnel_state="custom_step_1"))
    assert d.rate_limit(in_step, rules(**LIMITED)) is None


def test_rate_limit_asks_for_the_count_in_its_window() -> None:
    assert d.rate_limit(inbound(), rules(**LIMITED)) == WINDOW
    assert d.rate_limit(inbound(inputs={WINDOW: 1}), rules(**LIMITED)) is None


def test_rate_limit_over_sends_one_notice_then_silence() -> None:
    out = d.rate_limit(inbound(inputs={WINDOW: 2}), rules(**LIMITED))
    assert isinstance(out, Decision)
    assert out.record
    assert out.counted
    assert out.note == "rate_limited:notice"
    assert out.replies == [TextReply("SLOW DOWN")]
    assert out.reply_origin == "system"
    assert out.user_fields == {"rate_notice_at": NOW}
    assert [(e.type, e.data) for e in out.events] == [("rate_limited", {"decision": "notice"})]
    assert out.state is None  # the conversation state is left alone

    told = inbound(inputs={WINDOW: 5}, rate_notice_at=NOW - timedelta(minutes=5))
    out = d.rate_limit(told, rules(**LIMITED))
    assert isinstance(out, Decision)
    assert (out.note, out.replies, out.user_fields) == ("rate_limited:silent", [], {})


# ------------------------------------------------------------------------------ nav:more


def test_nav_more_asks_for_the_kept_page_and_sends_it() -> None:
    item = inbound("More", kind="button", payload="nav:more:abcd")
    need = Need(NEED_CONTINUATION, "abcd")
    assert d.nav_more(item, rules()) == need
    item.inputs[need] = {"type": "text", "text": "page 2"}
    out = d.nav_more(item, rules())
    assert isinstance(out, Decision)
    assert out.handler == "nav_more"
    assert out.replies == [TextReply("page 2")]
    assert not out.needs_llm
    # A page no longer kept: the funnel handles the press.
    item.inputs[need] = None
    assert d.nav_more(item, rules()) is None
    assert d.nav_more(inbound(), rules()) is None


# ------------------------------------------------------------------------------ funnel


def test_funnel_always_decides_greeting_with_buttons() -> None:
    out = d.funnel(inbound("hi", user_id=None), rules())
    assert isinstance(out, Decision)
    assert out.replies
    assert out.state is not None
    assert not out.needs_llm


def test_funnel_free_text_asks_the_llm() -> None:
    out = d.funnel(inbound("zxqv what are your hours?"), rules())
    assert isinstance(out, Decision)
    assert out.needs_llm
    assert out.text == "zxqv what are your hours?"


def test_funnel_routes_a_transcript_as_text() -> None:
    item = inbound("", kind="audio", media_id="m", inputs={Need(NEED_TRANSCRIPT, "m"): "hi"})
    out = d.funnel(item, rules())
    assert isinstance(out, Decision)
    assert out.text == "[voice] hi"


# ------------------------------------------------------------------------------ decide


def test_decide_runs_policies_in_order_first_decision_wins() -> None:
    blocked = rules(blocked_phones=[PHONE], **LIMITED)
    # Blocked comes before the rate limit asks for anything.
    out = decide(inbound(), blocked)
    assert (out.record, out.note, out.needs) == (False, "blocked", ())
    # Not blocked: the rate limit's question comes back as a pending decision.
    pending = decide(inbound(), rules(**LIMITED))
    assert pending.needs == (WINDOW,)
    assert not pending.record
    final = decide(inbound(inputs={WINDOW: 0}), rules(**LIMITED))
    assert final.needs == ()
    assert final.needs_llm


def test_a_voice_note_over_the_limit_is_transcribed_first() -> None:
    item = inbound("", kind="audio", media_id="m1")
    assert decide(item, rules(**LIMITED)).needs == (Need(NEED_TRANSCRIPT, "m1"),)
    item.inputs[Need(NEED_TRANSCRIPT, "m1")] = "hello"
    assert decide(item, rules(**LIMITED)).needs == (WINDOW,)
    item.inputs[WINDOW] = 9
    out = decide(item, rules(**LIMITED))
    assert out.note == "rate_limited:notice"
    assert out.text == "[voice] hello"


def test_registering_a_policy_is_one_line_and_runs_in_place() -> None:
    table = list(d.POLICIES)

    def auto_reply_off(item: Inbound, settings: Rules) -> Decision | Need | None:
        if settings.config.get("auto_reply") is False:
            return Decision.silent(item, handler="auto_reply_off", note="auto_reply_off")
        return None

    d.register(auto_reply_off, before="rate_limit", policies=table)
    names = [n for n, _ in table]
    assert names.index("auto_reply_off") == names.index("rate_limit") - 1
    out = decide(inbound(), rules(auto_reply=False, **LIMITED), policies=table)
    assert (out.handler, out.record, out.replies, out.note) == (
        "auto_reply_off",
        True,
        [],
        "auto_reply_off",
    )
    # Blocked still wins (access runs first); without the setting nothing changes.
    assert (
        decide(inbound(), rules(auto_reply=False, blocked_phones=[PHONE]), policies=table).note
        == "blocked"
    )
    assert decide(inbound(), rules(), policies=table).needs_llm
    # The shipped table is untouched; the default place is just before the funnel.
    assert "auto_reply_off" not in [n for n, _ in d.POLICIES]
    other = list(d.POLICIES)
    d.register(auto_reply_off, policies=other)
    assert [n for n, _ in other][-2:] == ["auto_reply_off", "funnel"]
    with pytest.raises(KeyError):
        d.register(auto_reply_off, name="x", before="nope", policies=other)


def test_decide_without_a_catch_all_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        decide(inbound(), rules(), policies=[("access", d.access_lists)])


# ------------------------------------------------------------------------------ knowledge first

KB = {"knowledge_base_ids": ["kb-bakery"]}


def test_with_a_knowledge_base_a_question_goes_to_the_llm_not_the_faq_price_list() -> None:
    # The default funnel's price entry matches "how much" by keyword; the bot's knowledge base
    # knows about croissants: the question goes to the knowledge/LLM path.
    out = decide(inbound("How much is a croissant?"), rules(**KB))
    assert (out.handler, out.needs_llm, out.replies) == ("knowledge_first", True, [])
    assert [e.type for e in out.events] == ["faq_deferred"]
    assert out.text == "How much is a croissant?"
    # Without a knowledge base the funnel's keyword FAQ still answers it (unchanged).
    plain = decide(inbound("How much is a croissant?"), rules())
    assert plain.handler == "answer_faq_match"
    assert not plain.needs_llm


@pytest.mark.parametrize(
    "text", ["How much does it cost?", "price?", "Сколько стоит?", "Is my data safe?"]
)
def test_with_a_knowledge_base_a_confident_faq_match_still_answers(text: str) -> None:
    out = decide(inbound(text), rules(**KB))
    assert out.handler == "answer_faq_match"
    assert not out.needs_llm
    assert out.replies


def test_knowledge_first_leaves_buttons_greetings_and_steps_to_the_funnel() -> None:
    assert d.knowledge_first(inbound("hello"), rules(**KB)) is None
    assert d.knowledge_first(inbound("", payload="faq:price"), rules(**KB)) is None
    step = ConversationState(funnel_state="discovery_industry")
    assert d.knowledge_first(inbound("how much for a bakery", state=step), rules(**KB)) is None
    assert d.knowledge_first(inbound("How much is a croissant?"), rules()) is None
    # A voice note's transcript is a question like any other.
    voice = inbound("", kind="audio", media_id="m1")
    voice.inputs[Need(NEED_TRANSCRIPT, "m1")] = "how much is a croissant"
    out = d.knowledge_first(voice, rules(**KB))
    assert isinstance(out, Decision)
    assert out.needs_llm
    assert out.text == "[voice] how much is a croissant"
