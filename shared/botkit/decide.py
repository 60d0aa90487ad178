"""The decision step: what to do with one inbound message, as a pure function (no I/O).

:func:`decide` takes the message and the customer's state (:class:`Inbound`) and the bot's
settings (:class:`Rules`) and runs an ordered list of small policies (in the manner of aiogram 3's
filters). Each policy looks at the inputs and either passes (``None``), decides (a
:class:`Decision`: reply parts, state changes, events, whether the LLM is needed, or nothing and
why) or asks for an input only I/O can give (a :class:`Need`: a voice note's transcript, the
customer's message count in the rate-limit window, the rest of a paginated reply). The inbox
worker fetches what is needed (``shared.botkit.inbox.FETCHERS``, one entry per kind of input) and
calls :func:`decide` again with it; it never branches on
policies itself, so a new rule is one policy function and one :func:`register` line::

    def auto_reply_off(inbound: Inbound, rules: Rules) -> Decision | Need | None:
        if rules.config.get("auto_reply") is False:
            return Decision.silent(inbound, handler="auto_reply_off", note="auto_reply_off")
        return None

    register(auto_reply_off, before="rate_limit")

The shipped order: ``access`` → ``opt_out`` → ``voice_transcript`` → ``ownership`` →
``handoff_triggers`` → ``rate_limit`` →
``nav_more`` → ``voice_fallback`` → ``knowledge_first`` → ``funnel`` (which always decides).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.botkit import access, handoff
from shared.botkit.followups import OPT_OUT_TEXT, is_opt_out
from shared.channels.base import CustomerRef, InboundMessage, Reply, TextReply, reply_from_dict
from shared.funnel.schema import Funnel
from shared.funnel.text import normalize
from shared.funnel.validation import default_funnel
from shared.routing import chosen_option, is_greeting, route
from shared.routing.faq import is_confident_match, match_faq
from shared.routing.types import ConversationState, RouteEvent

NAV_MORE_PREFIX = "nav:more:"
VOICE_MARK = "[voice]"

#: :attr:`Need.kind` values the inbox worker knows how to fetch.
NEED_TRANSCRIPT = "transcript"
NEED_INBOUND_SINCE = "inbound_since"
NEED_CONTINUATION = "continuation"


@dataclass(frozen=True, slots=True)
class Need:
    """An input a policy needs before it can decide (the worker fetches it; see module doc).

    Attributes:
        kind: what (:data:`NEED_TRANSCRIPT`, :data:`NEED_INBOUND_SINCE`,
            :data:`NEED_CONTINUATION`).
        arg: what it depends on (the media id, the window start, the continuation token).
    """

    kind: str
    arg: Any = None


@dataclass(slots=True)
class CustomerState:
    """What the bot knows about the sender before handling this message.

    Attributes:
        user_id: the customer's row, ``None`` for a first message.
        identities: the message's identities together with those already stored for the
            customer (access lists match any of them).
        state: the conversation state (empty for a first message).
        rate_notice_at: when the customer was last told about the rate limit.
        ownership: who answers the customer (``bot``, ``pending``, ``human``; see
            :mod:`shared.store.handovers`).
        handover_id: the customer's open handover, if any.
        handover_acked: whether the customer was told a person will answer.
        recent: the customer's latest message texts, newest first (the frustration check).
    """

    user_id: int | None = None
    identities: dict[str, str] = field(default_factory=dict)
    state: ConversationState = field(default_factory=ConversationState)
    rate_notice_at: datetime | None = None
    ownership: str = "bot"
    handover_id: int | None = None
    handover_acked: bool = True
    recent: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Inbound:
    """Everything a policy may read about one message.

    Attributes:
        message: the message as parsed from the provider.
        customer: the sender's state.
        now: the handling time.
        inputs: the inputs fetched so far for :class:`Need` requests.
    """

    message: InboundMessage
    customer: CustomerState
    now: datetime
    inputs: dict[Need, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The text to record and route: a voice note's is ``[voice] transcript``."""
        if self.message.kind != "audio":
            return self.message.text
        transcript = self.inputs.get(Need(NEED_TRANSCRIPT, self.message.media_id))
        return f"{VOICE_MARK} {transcript}" if transcript else VOICE_MARK

    @property
    def counted(self) -> bool:
        """Whether the message counts toward the rate limit. Pressing the bot's own buttons
        and answering its free-text funnel steps is the funnel working, not a flood (with the
        strict preset, 5 per 5 h, a quiz alone would otherwise hit the limit)."""
        message, state = self.message, self.customer.state
        return not (
            message.payload
            or (message.kind == "text" and state.funnel_state)
            or (message.kind == "text" and chosen_option(message.text, state))
        )


@dataclass(frozen=True, slots=True)
class Rules:
    """The bot's settings as the decision reads them (build with :meth:`from_config`)."""

    allowed: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()
    rate_limit: tuple[int, timedelta] | None = None
    fallback_text: str = ""
    rate_limit_text: str = ""
    funnel: Funnel | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        funnel: Funnel | None,
        fallback_text: str,
        rate_limit_text: str,
    ) -> Rules:
        """Read the access lists and the rate limit from an instance config."""
        cfg = dict(config)
        return cls(
            allowed=tuple(access.parse_entries(cfg.get("allowed_phones"))),
            blocked=tuple(access.parse_entries(cfg.get("blocked_phones"))),
            rate_limit=access.rate_limit(cfg),
            fallback_text=fallback_text,
            rate_limit_text=rate_limit_text,
            funnel=funnel,
            config=cfg,
        )


@dataclass(frozen=True, slots=True)
class HandoffChange:
    """A change of the conversation's ownership the decision asks for (the inbox worker applies
    it through :mod:`shared.store.handovers` in the decision's transaction).

    Attributes:
        op: ``open`` (ask for a person; the customer is told in :attr:`Decision.replies`) or
            ``ack`` (the open handover's acknowledgement is in :attr:`Decision.replies`).
        reason: the trigger (``ask_for_person``, ``frustration``, ``manager_button``...).
        question: the message that triggered it.
        handover_id: the handover an ``ack`` belongs to.
    """

    op: str
    reason: str = ""
    question: str = ""
    handover_id: int | None = None


@dataclass(slots=True)
class Decision:
    """What to do with one message.

    Attributes:
        handler: the policy (or funnel handler) that decided, for logs and tests.
        record: record the message and the customer; ``False`` drops it without a trace
            (only the inbox row keeps it, with :attr:`note`).
        text: the text to record (a voice note's transcript).
        counted: whether the recorded message counts toward the rate limit.
        replies: reply parts to queue, in order.
        reply_origin: the outbox ``origin`` of :attr:`replies` (``bot`` or ``system``).
        needs_llm: the orchestrator's LLM answers too (after :attr:`replies`).
        state: the conversation state to save, or ``None`` to leave it as it is.
        user_fields: customer columns to set (``rate_notice_at``).
        events: events to record.
        note: why, on the inbox row (``blocked``, ``rate_limited:notice``...).
        needs: inputs to fetch before deciding again; when set, nothing else counts.
        handoff: a change of ownership to apply with the rest (see :class:`HandoffChange`).
    """

    handler: str
    record: bool = True
    text: str = ""
    counted: bool = True
    replies: list[Reply] = field(default_factory=list)
    reply_origin: str = "bot"
    needs_llm: bool = False
    state: ConversationState | None = None
    user_fields: dict[str, Any] = field(default_factory=dict)
    events: list[RouteEvent] = field(default_factory=list)
    note: str | None = None
    needs: tuple[Need, ...] = ()
    handoff: HandoffChange | None = None

    @classmethod
    def drop(cls, *, handler: str, note: str) -> Decision:
        """Nothing is recorded or sent (the inbox row is closed with ``note``)."""
        return cls(handler=handler, record=False, note=note)

    @classmethod
    def silent(cls, inbound: Inbound, *, handler: str, note: str) -> Decision:
        """The message is recorded, nothing is sent."""
        return cls(
            handler=handler, text=inbound.text, counted=inbound.counted, note=note
        )

    @classmethod
    def asking(cls, need: Need) -> Decision:
        """Not decided yet: fetch ``need`` and decide again."""
        return cls(handler="pending", record=False, needs=(need,))


Policy = Callable[[Inbound, Rules], "Decision | Need | None"]


# ------------------------------------------------------------------------------ the policies


def access_lists(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """``allowed_phones`` (empty = everyone), then ``blocked_phones``, matched against every
    identity of the customer (the message's and the stored ones)."""
    who = CustomerRef(inbound.customer.identities)
    if rules.allowed and not access.matches_any(who, list(rules.allowed)):
        return Decision.drop(handler="access", note="blocked")
    if rules.blocked and access.matches_any(who, list(rules.blocked)):
        return Decision.drop(handler="access", note="blocked")
    return None


def opt_out(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """``STOP`` / ``unsubscribe`` / ``стоп`` (the whole message): confirmed once, recorded (the
    inbox's follow-up hook stores the opt-out and stops any sequence); the customer gets no
    proactive message again. Only a typed message counts, not a button."""
    message = inbound.message
    if message.kind != "text" or message.payload or not is_opt_out(message.text):
        return None
    return Decision(
        handler="opt_out",
        text=inbound.text,
        counted=inbound.counted,
        replies=[TextReply(str(rules.config.get("opt_out_text") or OPT_OUT_TEXT))],
        reply_origin="system",
        state=inbound.customer.state,
        events=[RouteEvent("opted_out", {})],
        note="opted_out",
    )


def voice_transcript(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """A voice note is transcribed before anything reads its text."""
    message = inbound.message
    need = Need(NEED_TRANSCRIPT, message.media_id)
    if message.kind == "audio" and need not in inbound.inputs:
        return need
    return None


def ownership(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """While a person has the conversation (ownership ``pending`` or ``human``) the funnel, the
    FAQ and the LLM stay silent: the message is recorded for the person. The customer is told
    once per handover that a manager will answer (if that was not said when it opened)."""
    customer = inbound.customer
    if customer.ownership == "bot":
        return None
    decision = Decision.silent(inbound, handler="ownership", note=f"handoff:{customer.ownership}")
    if customer.handover_id is not None and not customer.handover_acked:
        settings = handoff.settings_of(rules.config)
        decision.replies.append(TextReply(handoff.ack_text(settings, inbound.now)))
        decision.reply_origin = "system"
        decision.handoff = HandoffChange("ack", handover_id=customer.handover_id)
    return decision


def open_handover(inbound: Inbound, rules: Rules, reason: str, base: Decision) -> Decision:
    """``base`` with a new handover for ``reason`` and the customer's acknowledgement."""
    settings = handoff.settings_of(rules.config)
    base.replies.append(TextReply(handoff.ack_text(settings, inbound.now)))
    base.handoff = HandoffChange("open", reason=reason, question=inbound.text)
    base.events.append(RouteEvent("handover_requested", {"reason": reason}))
    return base


def handoff_triggers(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """The customer asks for a person ("I want to talk to a person", "позовите оператора") or
    is frustrated (repeated "not helpful", the same question a third time): a handover opens
    and the customer is told a manager will answer. Each trigger is switchable in the bot's
    ``handoff`` settings; typed free text only (not buttons or funnel steps)."""
    message = inbound.message
    if message.payload or message.kind not in ("text", "audio") or not inbound.counted:
        return None
    settings = handoff.settings_of(rules.config)
    if not settings.enabled:
        return None
    text = inbound.text

    def opened(reason: str) -> Decision:
        base = Decision(
            handler="handoff",
            text=text,
            counted=inbound.counted,
            reply_origin="system",
            state=inbound.customer.state,
            note=f"handoff:{reason}",
        )
        return open_handover(inbound, rules, reason, base)

    if settings.on("ask_for_person") and handoff.asks_for_person(text):
        return opened("ask_for_person")
    if settings.on("frustration") and handoff.is_frustrated(text, inbound.customer.recent):
        return opened("frustration")
    return None


def rate_limit(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """Over ``rate_limit_count`` per ``rate_limit_hours``: one polite notice per window, then
    silence (the message is still recorded)."""
    if rules.rate_limit is None or not inbound.counted:
        return None
    count, window = rules.rate_limit
    window_start = inbound.now - window
    need = Need(NEED_INBOUND_SINCE, window_start)
    if need not in inbound.inputs:
        return need
    verdict = access.rate_decision(
        sent_in_window=int(inbound.inputs[need]) + 1,
        limit=count,
        window_start=window_start,
        last_notice_at=inbound.customer.rate_notice_at,
    )
    if verdict == "ok":
        return None
    decision = Decision.silent(inbound, handler="rate_limit", note=f"rate_limited:{verdict}")
    decision.events.append(RouteEvent("rate_limited", {"decision": verdict}))
    if verdict == "notice":
        decision.replies.append(TextReply(rules.rate_limit_text))
        decision.reply_origin = "system"
        decision.user_fields["rate_notice_at"] = inbound.now
    return decision


def nav_more(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """``nav:more:<token>``: the next page of a paginated reply, while it is kept."""
    payload = inbound.message.payload
    if not payload or not payload.startswith(NAV_MORE_PREFIX):
        return None
    need = Need(NEED_CONTINUATION, payload[len(NAV_MORE_PREFIX) :])
    if need not in inbound.inputs:
        return need
    rest = inbound.inputs[need]
    if rest is None:
        return None  # forgotten: the funnel handles the press
    return Decision(
        handler="nav_more",
        text=inbound.text,
        counted=inbound.counted,
        replies=[reply_from_dict(rest)],
        state=inbound.customer.state,
    )


def voice_fallback(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """A voice note without a transcript is kept on record and answered with the fallback."""
    if inbound.message.kind == "audio" and inbound.text == VOICE_MARK:
        return Decision(
            handler="voice",
            text=inbound.text,
            counted=inbound.counted,
            replies=[TextReply(rules.fallback_text)],
            state=inbound.customer.state,
        )
    return None


def knowledge_first(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """A bot with knowledge bases (``knowledge_base_ids``) answers free-text questions from
    them (the LLM path) before the funnel's keyword FAQ: the FAQ answers only when it matches
    with high confidence (:func:`shared.routing.faq.is_confident_match`: the entry's question
    itself, or nothing in the message beyond the entry's own words). "How much is a
    croissant?" goes to the knowledge base, not to the funnel's price list; "How much does it
    cost?" still gets the FAQ entry. Buttons, typed options, free-text steps and greetings stay
    with the funnel."""
    if not rules.config.get("knowledge_base_ids"):
        return None
    message, state = inbound.message, inbound.customer.state
    if message.payload or state.funnel_state or message.kind not in ("text", "audio"):
        return None
    text = inbound.text
    typed = normalize(text)
    bot_funnel = rules.funnel or default_funnel()
    if not typed or chosen_option(text, state) or is_greeting(typed, bot_funnel.greetings):
        return None
    found = match_faq(typed, bot_funnel)
    if found is None or is_confident_match(typed, found[1]):
        return None  # the funnel answers: nothing matched (LLM anyway) or a confident FAQ match
    section, item = found
    return Decision(
        handler="knowledge_first",
        text=text,
        counted=inbound.counted,
        needs_llm=True,
        state=state,
        events=[RouteEvent("faq_deferred", {"key": item.key, "section": section.id})],
    )


def funnel(inbound: Inbound, rules: Rules) -> Decision | Need | None:
    """The bot's funnel (``shared.routing.route``); it always decides."""
    message = inbound.message
    text = inbound.text
    if text != message.text:
        fields = {name: getattr(message, name) for name in message.__slots__}  # type: ignore[attr-defined]
        message = InboundMessage(**{**fields, "text": text, "kind": "text"})
    result = route(message, inbound.customer.state, rules.funnel)
    decision = Decision(
        handler=result.handler,
        text=text,
        counted=inbound.counted,
        replies=list(result.replies),
        needs_llm=result.needs_llm,
        state=result.state,
        events=list(result.events),
    )
    if any(e.type == "manager_requested" for e in result.events) and handoff.settings_of(
        rules.config
    ).on("manager_button"):
        # The funnel's "talk to a manager" button: a person is asked for, not only shown.
        return open_handover(inbound, rules, "manager_button", decision)
    return decision


# ------------------------------------------------------------------------------ the registry

#: The policies in the order they run (``(name, policy)``); change it with :func:`register`.
POLICIES: list[tuple[str, Policy]] = [
    ("access", access_lists),
    ("opt_out", opt_out),
    ("voice_transcript", voice_transcript),
    ("ownership", ownership),
    ("handoff_triggers", handoff_triggers),
    ("rate_limit", rate_limit),
    ("nav_more", nav_more),
    ("voice_fallback", voice_fallback),
    ("knowledge_first", knowledge_first),
    ("funnel", funnel),
]


def register(
    policy: Policy,
    *,
    name: str | None = None,
    before: str | None = None,
    after: str | None = None,
    policies: list[tuple[str, Policy]] | None = None,
) -> Policy:
    """Add a policy (by default just before ``funnel``, the catch-all).

    Args:
        policy: the check.
        name: its name (default: the function's name); an existing name is replaced in place.
        before: run it just before this policy.
        after: run it just after this policy.
        policies: the list to change (default :data:`POLICIES`).

    Returns:
        ``policy``, so this also works as a decorator target.

    Raises:
        KeyError: ``before``/``after`` names no registered policy.
    """
    table = POLICIES if policies is None else policies
    key = name or str(getattr(policy, "__name__", repr(policy)))
    names = [n for n, _ in table]
    if key in names:
        table[names.index(key)] = (key, policy)
        return policy
    if before is not None:
        index = names.index(before) if before in names else -1
    elif after is not None:
        index = names.index(after) + 1 if after in names else -1
    else:
        index = names.index("funnel") if "funnel" in names else len(table)
    if index < 0:
        raise KeyError(f"no policy named {before or after!r}")
    table.insert(index, (key, policy))
    return policy


def unregister(name: str, *, policies: list[tuple[str, Policy]] | None = None) -> None:
    """Remove a policy by name (tests; no error when it is not there)."""
    table = POLICIES if policies is None else policies
    table[:] = [(n, p) for n, p in table if n != name]


def decide(
    inbound: Inbound, rules: Rules, *, policies: list[tuple[str, Policy]] | None = None
) -> Decision:
    """Run the policies in order; the first that decides (or asks for an input) wins.

    Returns:
        The decision; when :attr:`Decision.needs` is set, fetch those inputs into
        ``inbound.inputs`` and call again.

    Raises:
        RuntimeError: no policy decided (a table without a catch-all).
    """
    for _, policy in POLICIES if policies is None else policies:
        outcome = policy(inbound, rules)
        if outcome is None:
            continue
        if isinstance(outcome, Need):
            return Decision.asking(outcome)
        return outcome
    raise RuntimeError("no policy decided")
