"""Text matching and templating used by the funnel engine (no I/O, no state)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_VOICE_MARKER = re.compile(r"^\s*\[voice\]\s*", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+(?:[.,]\d+)?)\s*"
    r"(k|к|тыс\w*|thousand\w*)?(?!\w)",
    re.IGNORECASE,
)


def normalize(text: str) -> str:
    """Lower-case, fold ``ё`` to ``е``, drop punctuation and a ``[voice]`` marker, squeeze spaces.

    ``"Привет!!"`` and ``"  /start "`` become ``"привет"`` and ``"start"``.
    """
    text = _VOICE_MARKER.sub("", text).casefold().replace("ё", "е")
    return " ".join(_NON_WORD.sub(" ", text).replace("_", " ").split())


def contains_stem(normalized_text: str, stem: str) -> bool:
    """Tell whether a word (or phrase) starting with ``stem`` occurs in ``normalized_text``.

    Stems match word beginnings, so ``"цен"`` finds ``"цены"`` and ``"price"`` finds
    ``"prices"`` but ``"ice"`` does not find ``"price"``.
    """
    stem = normalize(stem)
    if not stem:
        return False
    return re.search(r"(?<!\w)" + re.escape(stem), normalized_text) is not None


def mentions(normalized_text: str, stem: str, negations: Iterable[str] = ()) -> bool:
    """Like :func:`contains_stem`, but an occurrence right after a negation does not count.

    ``mentions("не срочно", "срочн", ["не"])`` is false; ``mentions("срочно", ...)`` is true.
    """
    stem = normalize(stem)
    if not stem:
        return False
    negated = {normalize(n) for n in negations}
    for match in re.finditer(r"(?<!\w)" + re.escape(stem), normalized_text):
        before = normalized_text[: match.start()].split()
        if not before or before[-1] not in negated:
            return True
    return False


def count_stems(normalized_text: str, stems: Iterable[str]) -> int:
    """Count how many of ``stems`` occur in ``normalized_text`` (see :func:`contains_stem`)."""
    return sum(1 for stem in stems if contains_stem(normalized_text, stem))


def extract_number(text: str) -> float | None:
    """Return the first number in free text: ``"about 1 500 pages"`` -> 1500, ``"2k"`` -> 2000."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    digits = re.sub(r"[ \u00a0\u202f]", "", match.group(1)).replace(",", ".")
    value = float(digits)
    if match.group(2):
        value *= 1000
    return value


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill ``{name}`` placeholders; unknown ones are left as they are.

    Only plain names are substituted (no attribute or index access), so a template written by a
    funnel author cannot reach into Python objects the way ``str.format`` could.
    """

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        return str(values[key]) if key in values else match.group(0)

    return _PLACEHOLDER.sub(fill, template)


def format_money(amount: float, currency: str, separator: str = " ") -> str:
    """Format a whole amount with a thousands separator: ``150000`` -> ``"150 000 ₽"``."""
    whole = f"{round(amount):,}".replace(",", separator)
    return f"{whole} {currency}".strip()
