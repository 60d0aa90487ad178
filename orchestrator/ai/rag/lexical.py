"""Words for lexical matching: tokenising, stemming (English and Russian), stop words, BM25.

The lexical half of hybrid retrieval (:class:`LexicalIndex`, BM25 from ``bm25s``) and the
term-coverage measures that the extractive backend and the grounding check use. Stemming is
Snowball (``snowballstemmer``), chosen per word by its script, so "deliveries" finds
"delivery" and «стрижку» finds «стрижка».
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence

import bm25s
import numpy as np
import numpy.typing as npt
import snowballstemmer

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")

#: Words that say nothing about what a question is about: function words, question words and
#: chat shorthand ("u", "r"). Content words are everything else.
STOPWORDS = frozenset(
    """
    a an the and or but if of to in on at by for from with about as into than then so
    is are was were be been being am do does did doing done have has had having will would
    can could shall should may might must need it its it's this that these those there here
    i me my mine we us our ours you your yours u ur r he she him her they them their what
    which who whom whose when where why how much many any some anything something all
    not no yes please thanks thank hi hello hey ok okay also just still ever get got
    tell know want like let make way much one ones time take
    я мы вы ты он она оно они меня мне вас вам нас нам вами у к с со в во на по о об от до
    за из для при без над под и а но или ли же бы не ни да нет это этот эта эти то что
    как какой какая какие каком где когда куда откуда сколько почем почём зачем почему
    есть ли можно нужно надо будет если ваш ваша ваши вашей наш там тут здесь еще ещё уже
    очень просто пожалуйста спасибо здравствуйте привет скажите подскажите
    """.split()  # noqa: SIM905 - a word list reads best as text
)

_STEMMERS = {
    "en": snowballstemmer.stemmer("english"),
    "ru": snowballstemmer.stemmer("russian"),
}


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of a lower-case word (Russian stemmer for Cyrillic words)."""
    if word.isdigit():
        return word
    stemmer = _STEMMERS["ru" if _CYRILLIC.search(word) else "en"]
    return str(stemmer.stemWord(word.replace("ё", "е")))


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters and digits; apostrophes kept inside). A hyphenated
    word counts joined and as its parts of three letters or more: "e-bike" is "ebike" and
    "bike"."""
    out: list[str] = []
    for word in _WORD.findall(text):
        word = word.lower().replace("’", "'")
        if "-" in word:
            parts = word.split("-")
            out.append("".join(parts))
            out.extend(part for part in parts if len(part) >= 3)  # not "up" of "pick-up"
        else:
            out.append(word)
    return out


def tokens(text: str) -> list[str]:
    """Stems of every word of ``text`` (for the BM25 index)."""
    return [stem(w) for w in words(text)]


def content_terms(text: str) -> list[str]:
    """Distinct stems of the content words of ``text`` (stop words dropped), in order."""
    out: dict[str, None] = {}
    for word in words(text):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        out[stem(word)] = None
    return list(out)


def _matches(term: str, vocabulary: set[str]) -> bool:
    if term in vocabulary:
        return True
    # Stems of one word family sometimes differ in their tail ("deliv" / "deliveri",
    # «зап» / «запис»); Russian stems are shorter, so they may match from three letters.
    shortest = 3 if _CYRILLIC.search(term) else 4
    if len(term) >= shortest and not term.isdigit():
        return any(
            len(v) >= shortest and (v.startswith(term) or term.startswith(v)) for v in vocabulary
        )
    return False


_DAYS = {
    "en": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    "ru": ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"],
}
_DAY_RANGE = re.compile(
    r"(?P<a>monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun"
    r"|понедельник\w*|вторник\w*|сред\w*|четверг\w*|пятниц\w*|суббот\w*|воскресень\w*"
    r"|пн|вт|ср|чт|пт|сб|вс)\.?\s*(?:to|till|until|through|-|–|—|по)\s*"
    r"(?P<b>monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun"
    r"|понедельник\w*|вторник\w*|сред\w*|четверг\w*|пятниц\w*|суббот\w*|воскресень\w*"
    r"|пн|вт|ср|чт|пт|сб|вс)\b",
    re.IGNORECASE,
)
_RU_SHORT = ["пн", "вт", "ср", "чт", "пт", "сб", "вс"]


def _day_index(word: str) -> tuple[str, int] | None:
    word = word.lower()
    for lang, days in _DAYS.items():
        for i, day in enumerate(days):
            if day.startswith(word[:3]) and (lang == "en" or word[:4] == day[:4]):
                return lang, i
    if word in _RU_SHORT:
        return "ru", _RU_SHORT.index(word)
    return None


def expand_day_ranges(text: str) -> str:
    """``text`` plus the weekdays its ranges cover ("Tuesday to Friday" adds Wednesday and
    Thursday; a Monday–Friday range also adds "weekdays"/«будни»), for word matching."""
    extra: list[str] = []
    for match in _DAY_RANGE.finditer(text):
        a, b = _day_index(match.group("a")), _day_index(match.group("b"))
        if a is None or b is None or a[0] != b[0]:
            continue
        lang, start, end = a[0], a[1], b[1]
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
        extra.extend(_DAYS[lang][i] for i in span)
        if start == 0 and end >= 4:
            extra.append("weekdays" if lang == "en" else "будни")
    return f"{text} {' '.join(extra)}" if extra else text


def coverage(
    query_terms: Sequence[str],
    text: str,
    idf: dict[str, float] | None = None,
) -> float:
    """Share of the query's content terms that ``text`` contains (0..1), IDF-weighted.

    Args:
        query_terms: :func:`content_terms` of the question.
        text: the passage, sentence or answer.
        idf: weight per term; terms missing from it weigh the most (``max(idf)`` or 1).
    """
    if not query_terms:
        return 0.0
    vocabulary = set(content_terms(text))
    top = max(idf.values(), default=1.0) if idf else 1.0
    total = found = 0.0
    for term in query_terms:
        weight = idf.get(term, top) if idf else 1.0
        if term.isdigit():
            weight *= 2  # a number asked about (a date, a size) is what the question is about
        total += weight
        if _matches(term, vocabulary):
            found += weight
    return found / total if total else 0.0


class LexicalIndex:
    """BM25 over a fixed list of passages (``bm25s``), plus their IDF for :func:`coverage`.

    Args:
        texts: the passages, in the order their ids are returned.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        self.size = len(texts)
        corpus = [tokens(t) or [""] for t in texts]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        df: dict[str, int] = {}
        for doc in corpus:
            for term in set(doc):
                df[term] = df.get(term, 0) + 1
        n = max(1, len(corpus))
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def scores(self, query: str) -> npt.NDArray[np.float32]:
        """BM25 score of every passage for ``query`` (zeros when no word matches)."""
        terms = [t for t in tokens(query) if t in self.idf]
        if not terms or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)


def rrf(rankings: Iterable[Sequence[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum(1 / (k + rank))`` of each id over the rankings."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused
