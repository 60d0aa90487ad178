"""``faq:*``: FAQ sections and answers, and matching free text against the FAQ."""

from __future__ import annotations

import logging

from shared.channels.base import Button, ListRow, Reply
from shared.funnel.schema import FaqItem, FaqSection, Funnel
from shared.funnel.text import contains_stem, normalize, render
from shared.routing.context import (
    StaleCallback,
    Turn,
    list_reply,
    main_menu_button,
    plain,
    text_with_buttons,
    to_buttons,
)

logger = logging.getLogger(__name__)

MAX_ROW_DESCRIPTION = 72
"""WhatsApp's limit for a list row description; longer questions are cut with an ellipsis."""


def handle(turn: Turn, action: str, args: tuple[str, ...]) -> list[Reply]:
    """Dispatch ``faq:menu``, ``faq:cat_{section}``, ``faq:back_{section}``, ``faq:{key}``."""
    faq = turn.funnel.faq
    if faq is None or args:
        raise StaleCallback
    if action == "menu":
        turn.handler = "show_faq_menu"
        return [show_faq_menu(turn)]
    for prefix in ("cat_", "back_"):
        if action.startswith(prefix):
            section = turn.funnel.faq_section(action.removeprefix(prefix))
            if section is None:
                raise StaleCallback
            turn.handler = "show_faq_section"
            return [show_faq_section(turn, section)]
    found = turn.funnel.faq_item(action)
    if found is None:
        raise StaleCallback
    turn.handler = "show_faq_item"
    return [show_faq_item(turn, *found)]


def show_faq_menu(turn: Turn) -> Reply:
    """The list of FAQ sections."""
    faq = turn.funnel.faq
    if faq is None:
        raise StaleCallback
    rows = [
        ListRow(id=f"faq:cat_{s.id}", title=s.title, description=_cut(s.description))
        for s in faq.sections
    ]
    nav = [ListRow(id=main_menu_button(turn.funnel).id, title=turn.funnel.texts.main_menu)]
    turn.push_view("faq:menu")
    title = plain(faq.menu_text.splitlines()[0])
    return list_reply(turn, faq.menu_text, title, rows, nav)


def show_faq_section(turn: Turn, section: FaqSection) -> Reply:
    """The questions of one FAQ section."""
    faq = turn.funnel.faq
    if faq is None:
        raise StaleCallback
    texts = turn.funnel.texts
    rows = [
        ListRow(id=f"faq:{item.key}", title=item.title, description=_cut(item.question))
        for item in section.items
    ]
    nav = [
        ListRow(id="faq:menu", title=texts.back),
        ListRow(id=main_menu_button(turn.funnel).id, title=texts.main_menu),
    ]
    turn.push_view(f"faq:cat_{section.id}")
    text = render(faq.section_text, {"section": section.title})
    return list_reply(turn, text, section.title, rows, nav)


def show_faq_item(turn: Turn, section: FaqSection, item: FaqItem) -> Reply:
    """One answer, with the item's own buttons, "back to the section" and "main menu"."""
    turn.event("faq_view", key=item.key, section=section.id)
    turn.push_view(f"faq:{item.key}")
    buttons = [
        *to_buttons(item.buttons),
        Button(id=f"faq:back_{section.id}", title=turn.funnel.texts.back),
        main_menu_button(turn.funnel),
    ]
    return text_with_buttons(f"*{item.question}*\n\n{item.answer}", buttons)


def match_faq(normalized_text: str, funnel: Funnel) -> tuple[FaqSection, FaqItem] | None:
    """Find the FAQ entry a free-text message asks about.

    The text matches an entry when it is the entry's question or title, or contains at least
    ``faq.min_keyword_hits`` of its keyword stems; multi-word keywords weigh more. The best
    scoring entry wins, the earliest on a tie.

    Args:
        normalized_text: the message after :func:`shared.funnel.text.normalize`.
        funnel: the funnel.

    Returns:
        ``(section, item)`` or ``None``.
    """
    faq = funnel.faq
    if faq is None or not normalized_text:
        return None
    best: tuple[FaqSection, FaqItem] | None = None
    best_score = 0
    for section in faq.sections:
        for item in section.items:
            if normalized_text in (normalize(item.question), normalize(item.title)):
                return section, item
            hits = [k for k in item.keywords if contains_stem(normalized_text, k)]
            if len(hits) < faq.min_keyword_hits:
                continue
            score = sum(len(normalize(k).split()) for k in hits)
            if score > best_score:
                best, best_score = (section, item), score
    return best


#: Words a question may add around an FAQ entry's own words and still mean just that entry
#: ("what is the price?", "сколько стоит?"): question words, articles, pronouns, politeness.
_FILLER = """a an the is are was be do does did can could would will shall i me my we our you your
    it its this that these those there what whats how much many when where which who why
    please tell about of for to in on at and or with any some s ok okay hi hello
    что как сколько где когда какой какая какие это у вас мне нам а и ли ну подскажите
    скажите пожалуйста есть можно ваш ваша ваши в на о об по за с"""
FILLER_WORDS = frozenset(_FILLER.split())


def is_confident_match(normalized_text: str, item: FaqItem) -> bool:
    """Tell whether a message asks about ``item`` and nothing else (a high-confidence match).

    Confident when the message is the entry's question or title, or when every word of it is
    one of the entry's own words: a word of its question or title, a word one of its keyword
    stems matches, or a filler word (:data:`FILLER_WORDS`). "How much does it cost?" and
    "price?" are confident for the price entry; "How much is a croissant?" is not (a keyword
    matched, but "croissant" is about something the entry does not cover).

    Args:
        normalized_text: the message after :func:`shared.funnel.text.normalize`.
        item: the matched entry.
    """
    if not normalized_text:
        return False
    question, title = normalize(item.question), normalize(item.title)
    if normalized_text in (question, title):
        return True
    own = set(question.split()) | set(title.split())
    stems = [normalize(k) for k in item.keywords]
    phrases = [s for s in stems if " " in s and contains_stem(normalized_text, s)]
    phrase_words = {w for s in phrases for w in s.split()}
    single = [s for s in stems if s and " " not in s]
    for word in normalized_text.split():
        if word in FILLER_WORDS or word in own:
            continue
        if any(word.startswith(stem) for stem in (*single, *phrase_words)):
            continue  # stems end mid-word: "price" → "prices", "облачн модел" → "модели"
        return False
    return True


def match_faq_confident(
    normalized_text: str, funnel: Funnel
) -> tuple[FaqSection, FaqItem] | None:
    """:func:`match_faq`, but only a high-confidence match (:func:`is_confident_match`)."""
    found = match_faq(normalized_text, funnel)
    if found is None or not is_confident_match(normalized_text, found[1]):
        return None
    return found


def _cut(text: str) -> str:
    if len(text) <= MAX_ROW_DESCRIPTION:
        return text
    return text[: MAX_ROW_DESCRIPTION - 1].rstrip() + "…"
