"""Is a generated answer supported by the passages it was given? And what is the question?

Two small checks around every reply of a bot with knowledge bases:

- :func:`retrieval_query` builds the search query from the customer's own question — the
  earlier customer message is added only when the question refers back to it ("and on
  sunday?", "how much is it?"); the bot's own messages (its greeting, its answers) never are.
- :func:`check_grounding` decides whether a generative backend's answer is backed by the
  retrieved passages (and the owner's own prompt): every sentence that states something must
  share most of its content words with them, and every number in it must appear there. An
  answer that is not is not sent; the reply escalates instead (see ``AIService.reply``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.ai.llm.extractive import split_sentences
from orchestrator.ai.rag.lexical import content_terms, coverage, words
from orchestrator.ai.rag.types import SearchResult

#: A sentence is supported when at least this share of its content words is in the sources.
MIN_SENTENCE_SUPPORT = 0.6
#: Share of the answer's stating sentences that must be supported.
MIN_ANSWER_SUPPORT = 0.75

#: Words of politeness and chat that need no source ("Sure, happy to help!").
_PLEASANTRIES = frozenset(
    """
    sure happy help helping glad welcome sorry great good nice thank thanks course certainly
    assist question questions feel free anytime day today ask
    конечно рады рад помочь пожалуйста спасибо хорошо отлично добро пожаловать вопрос вопросы
    """.split()  # noqa: SIM905 - a word list reads best as text
)
_PLEASANTRY_TERMS = frozenset(t for w in _PLEASANTRIES for t in content_terms(w))
_HANDOVER = re.compile(
    r"\b(colleague|get back to you|a person will|human agent|коллег|оператор|администратор)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_REFERS_BACK_START = re.compile(
    r"^\s*(and|what about|how about|also|same|а|и|а если|а как|а что|ещё|еще|тоже)\b",
    re.IGNORECASE,
)
_PRONOUNS = frozenset(
    "it its that this these those them they there one same он она оно они его её ее их это "  # noqa: SIM905
    "этот эта эти там тот та те".split()
)


def retrieval_query(text: str, history: Sequence[Mapping[str, Any]] = ()) -> str:
    """The search query for ``text``: the question itself, or the customer's previous
    message plus the question when the question refers back to it.

    Args:
        text: the new customer message.
        history: the conversation, oldest first (``role`` ``user`` or ``assistant``); it may
            already end with ``text`` itself (bots record a message before answering).
    """
    text = text.strip()
    said = words(text)
    refers_back = bool(_REFERS_BACK_START.match(text)) or (
        len(content_terms(text)) <= 1 and any(w in _PRONOUNS for w in said)
    )
    if not refers_back:
        return text
    earlier = [
        str(h.get("text") or h.get("content") or "").strip()
        for h in history
        if h.get("role") not in ("assistant", "bot", "model")
    ]
    earlier = [e for e in earlier if e]
    if earlier and earlier[-1] == text:
        earlier.pop()
    return f"{earlier[-1]} {text}" if earlier else text


@dataclass
class Grounding:
    """The verdict on one answer.

    Attributes:
        supported: send it (``True``) or escalate instead.
        support: share of its stating sentences backed by the sources (0..1).
        reason: why it is not supported (empty when it is).
    """

    supported: bool
    support: float
    reason: str = ""


def check_grounding(
    answer: str, passages: Sequence[SearchResult], extra_sources: Sequence[str] = ()
) -> Grounding:
    """Whether ``answer`` is supported by ``passages`` (and ``extra_sources``, e.g. the
    bot's own persona and system prompt, which the owner wrote).

    An answer that hands over to a person ("a colleague will get back to you") is never
    "supported": the caller escalates it as such.
    """
    if _HANDOVER.search(answer):
        return Grounding(False, 0.0, "the answer hands over to a person")
    sources = "\n".join(
        [*(f"{p.context}\n{p.answer or p.text}" for p in passages), *extra_sources]
    )
    source_numbers = {n.replace(",", ".") for n in _NUMBER.findall(sources)}
    for number in _NUMBER.findall(answer):
        if number.replace(",", ".") not in source_numbers:
            return Grounding(False, 0.0, f"the number {number!r} is in no passage")
    stating = supported = 0
    for sentence in split_sentences(" ".join(answer.split())):
        terms = [t for t in content_terms(sentence) if t not in _PLEASANTRY_TERMS]
        if not terms:
            continue
        stating += 1
        if coverage(terms, sources) >= MIN_SENTENCE_SUPPORT:
            supported += 1
    if stating == 0:
        return Grounding(True, 1.0)
    share = supported / stating
    if share < MIN_ANSWER_SUPPORT:
        return Grounding(
            False, share, f"{stating - supported} of {stating} sentences are in no passage"
        )
    return Grounding(True, share)
