"""``route()``: decide what to answer to one inbound message. Pure: no I/O, input not mutated.

Order:

1. a callback from a button or list reply (``message.payload``: ``sales:*``, ``faq:*``,
   ``tz:*``, ``nav:*``); typing the exact title of an option the bot just offered counts as
   pressing it;
2. the active free-text step (``state.funnel_state``: discovery steps, ``diy_gpu_custom``,
   ``tz_{step}``); a cancel word leaves it, and so does a bare greeting word (then 4.);
3. a number ``N`` typed while options are on offer picks the N-th (SMS shows them numbered);
4. a greeting word -> the welcome message with the main-menu buttons;
5. an FAQ entry matched by its question or keywords;
6. otherwise ``needs_llm=True`` and no replies.

Unknown or stale callbacks never raise: the customer gets a polite "no longer available" and
the main menu.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

from shared.channels.base import InboundMessage, Reply, TextReply
from shared.funnel.callbacks import parse_callback
from shared.funnel.schema import Funnel, Greetings
from shared.funnel.text import normalize
from shared.funnel.validation import GPU_CUSTOM_STATE, default_funnel
from shared.routing import faq, sales, tz
from shared.routing.context import (
    HISTORY_KEY,
    MAX_HISTORY,
    MENU_KEY,
    VIEW_KEY,
    StaleCallback,
    Turn,
    main_menu_reply,
    reply_options,
    welcome_reply,
)
from shared.routing.types import ConversationState, RouteResult

logger = logging.getLogger(__name__)

Handler = Callable[[Turn, str, tuple[str, ...]], list[Reply]]

STEP_CALLBACKS = frozenset({"sales:skip", "tz:skip"})
"""Callbacks that act on the active free-text step instead of leaving it."""


def route(
    message: InboundMessage, state: ConversationState, funnel: Funnel | None = None
) -> RouteResult:
    """Route one inbound message through a funnel.

    Args:
        message: the customer's message (text, or a button/list reply with ``payload``).
        state: the customer's conversation state; not modified.
        funnel: the bot's funnel; the default funnel when ``None``.

    Returns:
        The replies to send, the new state, events to record, and whether the LLM should answer.
    """
    funnel = funnel or default_funnel()
    turn = Turn(funnel=funnel, state=copy.deepcopy(state), customer_ref=_customer_ref(message))
    replies = _route(turn, message)
    needs_llm = turn.handler == "llm_fallback"
    if replies and turn.handler != "expect_text":
        # After "expect_text" the step's own options are still the ones on offer.
        _remember_options(turn.state, replies)
        _remember_view(turn)
    logger.debug("routed %s via %s", message.provider_message_id, turn.handler)
    return RouteResult(
        replies=replies,
        state=turn.state,
        events=turn.events,
        needs_llm=needs_llm,
        handler=turn.handler,
    )


def _customer_ref(message: InboundMessage) -> str | None:
    try:
        return message.customer.address()
    except ValueError:
        return None


def chosen_option(text: str, state: ConversationState) -> str | None:
    """The callback a typed option title or number picks among the options last offered.

    A typed number counts only when no free-text step is waiting for an answer (then the
    number is the answer). Returns ``None`` when the text picks nothing.
    """
    typed = normalize(text or "")
    if not typed:
        return None
    options = _offered_options(state)
    by_title = next((cb for cb, title in options if normalize(title) == typed), None)
    if by_title:
        return by_title
    if not state.funnel_state and typed.isdigit() and 1 <= int(typed) <= len(options):
        return options[int(typed) - 1][0]
    return None


def _route(turn: Turn, message: InboundMessage) -> list[Reply]:
    if message.payload:
        return handle_callback(turn, message.payload)
    text = message.text or ""
    typed = normalize(text)
    options = _offered_options(turn.state)
    if typed:
        by_title = next((cb for cb, title in options if normalize(title) == typed), None)
        if by_title:
            return handle_callback(turn, by_title)
    if turn.state.funnel_state:
        replies = _free_text_step(turn, message, text, typed)
        if replies is not None:
            return replies
    if typed.isdigit() and 1 <= int(typed) <= len(options):
        return handle_callback(turn, options[int(typed) - 1][0])
    if typed and is_greeting(typed, turn.funnel.greetings):
        turn.handler = "show_welcome"
        turn.state.funnel_state = None
        turn.event("greeting", text=text[:100])
        return [welcome_reply(turn)]
    found = faq.match_faq(typed, turn.funnel)
    if found is not None:
        turn.handler = "answer_faq_match"
        return [faq.show_faq_item(turn, *found)]
    turn.handler = "llm_fallback"
    return []


def is_greeting(normalized_text: str, greetings: Greetings) -> bool:
    """Tell whether a normalized message is a greeting ("hi", "Привет!", "hello there").

    The message must start with a trigger word (or phrase) and have at most
    ``greetings.max_extra_words`` words after it, so "hello, how much does it cost?" is not
    a greeting but a question.
    """
    words = normalized_text.split()
    for trigger in greetings.words:
        trigger_words = normalize(trigger).split()
        if not trigger_words or words[: len(trigger_words)] != trigger_words:
            continue
        if len(words) - len(trigger_words) <= greetings.max_extra_words:
            return True
    return False


_HANDLERS: dict[str, Handler] = {
    "sales": sales.handle,
    "faq": faq.handle,
    "tz": tz.handle,
}


def handle_callback(turn: Turn, payload: str) -> list[Reply]:
    """Run the handler of a callback id; stale or unknown ones get the "no longer available" reply.

    Args:
        turn: the routing call.
        payload: the callback id (``prefix:action[:arg]``).

    Returns:
        The replies.
    """
    callback = parse_callback(payload)
    if payload.strip() not in STEP_CALLBACKS:
        # Pressing any other button leaves a free-text step the customer abandoned.
        turn.state.funnel_state = None
    try:
        if callback is None:
            raise StaleCallback
        if callback.prefix == "nav":
            return _handle_nav(turn, callback.action, callback.args)
        return _HANDLERS[callback.prefix](turn, callback.action, callback.args)
    except StaleCallback:
        return stale_reply(turn, payload)


def stale_reply(turn: Turn, payload: str) -> list[Reply]:
    """Politely say the option is gone and show the main menu."""
    logger.info("stale callback %r", payload[:80])
    turn.handler = "stale_callback"
    turn.state.funnel_state = None
    turn.event("stale_callback", payload=payload[:200])
    return [main_menu_reply(turn, turn.funnel.texts.stale)]


def _handle_nav(turn: Turn, action: str, args: tuple[str, ...]) -> list[Reply]:
    if args:
        raise StaleCallback
    if action == "menu":
        turn.handler = "show_main_menu"
        return [main_menu_reply(turn)]
    if action == "back":
        turn.handler = "go_back"
        return _go_back(turn)
    raise StaleCallback


def _go_back(turn: Turn) -> list[Reply]:
    history = [h for h in turn.state.data.get(HISTORY_KEY) or [] if isinstance(h, str)]
    turn.going_back = True
    target = parse_callback(history.pop()) if history else None
    turn.state.data[HISTORY_KEY] = history
    if target is None or target.prefix == "nav":
        return [main_menu_reply(turn)]
    try:
        return _HANDLERS[target.prefix](turn, target.action, target.args)
    finally:
        turn.handler = "go_back"


def _free_text_step(
    turn: Turn, message: InboundMessage, text: str, typed: str
) -> list[Reply] | None:
    """Give the message to the active free-text step; ``None`` when no step takes it."""
    step_state = turn.state.funnel_state or ""
    funnel = turn.funnel
    if typed and typed in {normalize(w) for w in funnel.cancel_words}:
        turn.handler = "cancel_step"
        turn.state.funnel_state = None
        turn.event("step_cancelled", step=step_state)
        return [main_menu_reply(turn)]
    if typed in {normalize(w) for w in funnel.greetings.words}:
        # A bare "hi" is never an answer to a step; the customer came back: greet them (as the
        # seed did, greetings before funnel_state). Longer texts stay with the step.
        turn.state.funnel_state = None
        turn.event("step_cancelled", step=step_state)
        return None
    step_taker = _step_taker(turn, step_state)
    if step_taker is None:
        logger.warning("unknown funnel_state %r (funnel edited?); clearing it", step_state)
        turn.state.funnel_state = None
        return None
    if not text.strip():
        # A photo or a sticker while we wait for words: ask again, stay on the step.
        turn.handler = "expect_text"
        return [TextReply(text=funnel.texts.text_expected)]
    return step_taker(text)


def _step_taker(turn: Turn, step_state: str) -> Callable[[str], list[Reply]] | None:
    if step_state == GPU_CUSTOM_STATE and turn.funnel.gpu_audit is not None:

        def take_gpu(text: str) -> list[Reply]:
            turn.handler = "answer_gpu_text"
            return sales.answer_gpu_text(turn, text)

        return take_gpu
    if turn.funnel.discovery_step(step_state) is not None:

        def take_discovery(text: str) -> list[Reply]:
            turn.handler = "answer_discovery"
            return sales.answer_discovery(turn, step_state, text)

        return take_discovery
    tz_step = tz.text_step_for_state(turn, step_state)
    if tz_step is not None:

        def take_tz(text: str) -> list[Reply]:
            turn.handler = "answer_tz_text"
            return tz.answer_text(turn, tz_step, text)

        return take_tz
    return None


def _offered_options(state: ConversationState) -> list[tuple[str, str]]:
    raw = state.data.get(MENU_KEY) or []
    options: list[tuple[str, str]] = []
    for item in raw:
        if isinstance(item, list | tuple) and len(item) == 2:
            options.append((str(item[0]), str(item[1])))
    return options


def _remember_view(turn: Turn) -> None:
    """Keep the back stack: the screen being left is pushed when it can be shown again."""
    data = turn.state.data
    history = [h for h in data.get(HISTORY_KEY) or [] if isinstance(h, str)]
    current = data.get(VIEW_KEY)
    if turn.reset_history:
        history = []
    elif not turn.going_back and isinstance(current, str) and current != turn.view:
        history.append(current)
    data[HISTORY_KEY] = history[-MAX_HISTORY:]
    data[VIEW_KEY] = turn.view


def _remember_options(state: ConversationState, replies: list[Reply]) -> None:
    """Keep the options of the last interactive reply, for digits and typed titles."""
    for reply in reversed(replies):
        options = reply_options(reply)
        if options:
            state.data[MENU_KEY] = [[cb, title] for cb, title in options]
            return
    state.data.pop(MENU_KEY, None)
