"""Answers straight from the knowledge base — backend ``extractive``, the offline default."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchestrator.ai.llm.base import ChatMessage, LLMBackend, LLMParams, LLMResult
from orchestrator.ai.rag.chunking import CONTEXT_SEPARATOR
from orchestrator.ai.rag.lexical import content_terms, coverage, expand_day_ranges
from orchestrator.ai.rag.types import SearchResult

logger = logging.getLogger(__name__)

Retriever = Callable[[str], Awaitable[Sequence[SearchResult]]]
SentenceEncoder = Callable[[list[str]], npt.NDArray[np.float32]]

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\u00C0-\u024F\u0400-\u04FF])")
#: A piece ending like this is an abbreviation ("ул.", "д.", "St.", "e.g."), not a sentence.
_ABBREVIATION = re.compile(
    r"(?:^|[\s(])(?:[a-zа-яё]{1,2}|ул|пр|стр|корп|тел|etc|approx|tel|st|dr|mr|mrs|ms|no|vs|"
    r"e\.g|i\.e)\.$",
    re.IGNORECASE,
)
_MIN_SENTENCE_CHARS = 20
#: How many of the best passages the answer may come from.
_PASSAGES = 6
#: Weight of the embedding similarity in a unit's score (the rest is word coverage).
SEMANTIC_WEIGHT = 0.6
#: Added to a unit's score when it is the kind of answer the question asks for (a time for
#: "when", a price for "how much", an address for "where", a phone number for "call").
ANSWER_TYPE_BONUS = 0.1
#: A neighbouring unit of the same passage scoring within this of the best joins the answer.
NEIGHBOUR_MARGIN = 0.06
#: How many content words the kind of answer asked for weighs as (see :func:`unit_score`).
TYPED_WORDS = 1
#: Taken off a unit's score when it shares no content word with the question.
NO_WORDS_PENALTY = 0.15

_ANSWER_TYPES: list[tuple[re.Pattern[str], re.Pattern[str]]] = [
    (  # when / opening hours
        re.compile(
            r"\b(when|what time|hours?|open|opening|close|closing|shut|until|till)\b"
            r"|во сколько|до скольки|когда|часы|работаете|открыт|открыва|закрыт|закрыва",
            re.IGNORECASE,
        ),
        re.compile(r"\d{1,2}[:.]\d{2}|\bclosed\b|закрыт|выходн", re.IGNORECASE),
    ),
    (  # how much
        re.compile(
            r"how much|\bprice|\bcosts?\b|\bcharge|\bfees?\b"
            r"|сколько стои|почем|почём|цен|стоимост",
            re.IGNORECASE,
        ),
        re.compile(r"[£€$₽]|\d\s*(?:eur|euro|usd|rub|руб|р\.)", re.IGNORECASE),
    ),
    (  # where
        re.compile(
            r"\bwhere\b|\blocat|\baddress|find you|get to you|где\b|адрес|как добраться|"
            r"наход|располож|"
            r"как (?:к вам )?пройти",
            re.IGNORECASE,
        ),
        re.compile(
            r"\b\d+\s+[A-Z][a-z]+ (?:street|road|lane|avenue|square|way)\b|"
            r"\b(?:street|road|lane|avenue|str\.|straße|strasse)\b|[A-Za-zß]+(?:straße|strasse)"
            r"|\bул\.|улица|проспект|\bд\.\s*\d|\bat \d+ ",
            re.IGNORECASE,
        ),
    ),
    (  # phone
        re.compile(
            r"phone|\bcall\b|\bnumber|telephone|\bcontact|телефон|позвонить|номер|контакт",
            re.IGNORECASE,
        ),
        re.compile(r"\+?\d[\d ()-]{6,}\d"),
    ),
]


def split_sentences(text: str) -> list[str]:
    """Split a passage into sentences (good enough for picking an answer)."""
    pieces = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def answer_type(query: str, unit: str, context: str = "") -> tuple[bool, float]:
    """``(typed, match)``: whether ``query`` asks for a kind of answer (a time, a price, an
    address, a phone number) and how well ``unit`` is one: half for a unit that looks like it
    (a time, a currency amount, ...), half for a heading of that kind ("Opening hours")."""
    typed, best = False, 0.0
    for question, answer in _ANSWER_TYPES:
        if question.search(query):
            typed = True
            match = 0.5 * bool(answer.search(unit)) + 0.5 * bool(question.search(context))
            best = max(best, match)
    return typed, best


def question_terms(query: str) -> list[str]:
    """The content words of a question without the words that only say what kind of answer
    it wants ("how much", "open", "where", "address"): those are matched by kind."""
    spans = [m.span() for question, _ in _ANSWER_TYPES for m in question.finditer(query)]
    asked = {
        word.group(0)
        for word in _WORD.finditer(query)
        if any(a < word.end() and word.start() < b for a, b in spans)
    }
    return [t for t in content_terms(query) if not any(t in content_terms(w) for w in asked)]


_HINTS = (
    ("opening hours", "часы работы"),
    ("prices", "цены"),
    ("address location", "адрес"),
    ("phone contact", "телефон контакты"),
)


def search_hint(query: str) -> str:
    """Words to add to the search for a question that names only the kind of answer it
    wants ("where are you?" searches "address location" too), in the question's script."""
    cyrillic = bool(re.search(r"[\u0400-\u04FF]", query))
    hints = [
        _HINTS[i][1 if cyrillic else 0]
        for i, (question, _) in enumerate(_ANSWER_TYPES)
        if question.search(query)
    ]
    return " ".join(hints)


def answer_units(text: str) -> list[str]:
    """The answerable units of a passage: each line (a list item or table row is one unit),
    paragraphs split into sentences; a very short sentence keeps the next one with it."""
    units: list[str] = []
    for line in text.splitlines():
        sentences = split_sentences(line)
        i = 0
        while i < len(sentences):
            unit = sentences[i]
            if len(unit) < _MIN_SENTENCE_CHARS and i + 1 < len(sentences):
                unit = f"{unit} {sentences[i + 1]}"
                i += 1
            units.append(unit)
            i += 1
    return units


@dataclass
class Candidate:
    """One possible answer with the evidence for it.

    Attributes:
        text: what would be sent (never includes headings).
        source: the document it comes from.
        passage: index of the passage among the results; ``position`` of the unit in it.
        semantic: cosine similarity of the question to the unit under its nearest heading.
        lexical: share of the question's content words found in the unit itself.
        lexical_context: the same share counting the unit's headings too.
        has_terms: the question has content words besides the kind of answer it asks for.
        typed: the question asks for a kind of answer (a time, a price, an address, a phone
            number); ``type_match``: how well this unit and its heading are that kind (0..1).
        score: see :func:`unit_score`.
    """

    text: str
    source: str
    passage: int = 0
    position: int = 0
    semantic: float = 0.0
    lexical: float = 0.0
    lexical_context: float = 0.0
    has_terms: bool = True
    typed: bool = False
    type_match: float = 0.0
    score: float = 0.0


def unit_score(c: Candidate) -> float:
    """How surely a unit answers the question.

    ``SEMANTIC_WEIGHT`` of the embedding similarity plus the rest of the word evidence:
    the mean coverage of the question's content words with and without headings; a question
    that asks for a kind of answer counts that kind as :data:`TYPED_WORDS` more words, or as
    all of them when it has no other. Then :data:`ANSWER_TYPE_BONUS` for the right kind of
    answer, and :data:`NO_WORDS_PENALTY` off when the unit and its headings share not one
    content word with the question (only a very close meaning can carry it then: the
    embedding model alone cannot tell a related topic from the answer, least of all in
    languages other than English).
    """
    lexical = (c.lexical + c.lexical_context) / 2
    if c.typed and not c.has_terms:
        lexical = c.type_match  # "where are you?", "what's your number?"
    elif c.typed:
        lexical = (lexical * TYPED_WORDS + c.type_match) / (TYPED_WORDS + 1)
    score = SEMANTIC_WEIGHT * c.semantic + (1 - SEMANTIC_WEIGHT) * lexical
    if c.has_terms and c.lexical_context == 0:
        # A price is no answer to "how much is a crown?" when no crown is mentioned.
        score -= NO_WORDS_PENALTY
    else:
        score += ANSWER_TYPE_BONUS * c.type_match
    return score


class ExtractiveBackend(LLMBackend):
    """Reply with the sentence, list item or table row that answers, or hand over to a person.

    No model generates anything: the passages retrieved for the question are cut into units
    (sentences; list items and table rows whole) and each unit is scored by how close it is to
    the question in meaning (the embedding model, with the unit's heading as context: "Opening
    hours: Saturday: 8:00–16:00" for "u open saturday?") and by how many of the question's
    content words it and its headings contain. The best unit is the answer — without the
    heading — when its score reaches ``min_score``; for a Q/A entry the owner's answer is the
    unit. Otherwise the reply is ``escalation_text`` with ``escalate=True`` so the bot can
    open a handover.

    Args:
        retriever: async ``query -> results`` (best first); ``None`` means no knowledge.
        encoder: blocking ``texts -> unit vectors`` (the knowledge base's embedder); without
            one, units are scored by word coverage and passage similarity only.
        min_score: combined score a unit needs to be sent (see :class:`Candidate`).
        escalation_text: the reply when nothing scores high enough.
        query: the question to answer; the last user message when ``None``.
    """

    name = "extractive"

    def __init__(
        self,
        *,
        retriever: Retriever | None,
        encoder: SentenceEncoder | None = None,
        min_score: float = 0.42,
        escalation_text: str = "A colleague will get back to you shortly.",
        query: str | None = None,
    ) -> None:
        self.retriever = retriever
        self.encoder = encoder
        self.min_score = min_score
        self.escalation_text = escalation_text
        self.query = query

    async def generate(
        self, messages: list[ChatMessage], *, params: LLMParams | None = None
    ) -> LLMResult:
        """Pick the best unit for the question; see :meth:`LLMBackend.generate`."""
        query = self.query or next(
            (m["content"] for m in reversed(messages) if m["role"] == "user"), ""
        )
        results: Sequence[SearchResult] = []
        if query.strip() and self.retriever is not None:
            results = await self.retriever(query)
        best: Candidate | None = None
        candidates: list[Candidate] = []
        if results:
            candidates = await asyncio.to_thread(self.candidates, query, results)
            best = max(candidates, key=lambda c: c.score, default=None)
        score = best.score if best else 0.0
        if best is None or score < self.min_score:
            logger.info(
                "extractive: nothing above %.2f (best %.3f); escalating", self.min_score, score
            )
            return LLMResult(
                text=self.escalation_text,
                model=self.name,
                confidence=max(0.0, score),
                escalate=True,
            )
        return LLMResult(
            text=self.answer_text(best, candidates),
            model=self.name,
            confidence=max(0.0, min(1.0, score)),
            sources=[best.source],
        )

    @staticmethod
    def answer_text(best: Candidate, candidates: Sequence[Candidate]) -> str:
        """The best unit, with its neighbour in the passage when that scores almost as well
        (an answer spread over two sentences), in document order."""
        units = [best]
        for other in candidates:
            if (
                other.passage == best.passage
                and abs(other.position - best.position) == 1
                and other.score >= best.score - NEIGHBOUR_MARGIN
                and len(units) < 2
            ):
                units.append(other)
        return " ".join(u.text for u in sorted(units, key=lambda u: u.position))

    def candidates(self, query: str, results: Sequence[SearchResult]) -> list[Candidate]:
        """Every unit of the best passages, scored for ``query`` (blocking: embeds)."""
        terms = question_terms(query)
        out: list[Candidate] = []
        match_texts: list[str] = []
        for n, result in enumerate(list(results)[:_PASSAGES]):
            heading = ""
            if result.answer is not None:  # an owner's Q/A entry: answer with it whole
                units = [(result.answer, result.text)]
            else:
                heading = result.context.split(CONTEXT_SEPARATOR)[-1] if result.context else ""
                units = [
                    (unit, f"{heading}: {unit}" if heading else unit)
                    for unit in answer_units(result.text)
                ]
            for position, (unit, match) in enumerate(units):
                own = expand_day_ranges(unit if result.answer is None else match)
                typed, type_match = answer_type(query, unit, heading)
                out.append(
                    Candidate(
                        unit,
                        result.source,
                        passage=n,
                        position=position,
                        semantic=result.score,
                        lexical=coverage(terms, own),
                        lexical_context=coverage(terms, f"{result.context}\n{own}"),
                        has_terms=bool(terms),
                        typed=typed,
                        type_match=type_match,
                    )
                )
                match_texts.append(match)
        if not out:
            return out
        if self.encoder is not None:
            vectors = self.encoder([query, *match_texts])
            for candidate, similarity in zip(out, vectors[1:] @ vectors[0], strict=True):
                candidate.semantic = float(similarity)
        for candidate in out:
            candidate.score = unit_score(candidate)
        return out
