"""Text helpers every channel renderer needs: splitting long text and the ``*bold*`` marker."""

from __future__ import annotations

import re
from collections.abc import Callable

#: ``*bold*`` as routing writes it: a non-space right after the opening star and right before
#: the closing one, on one line (so ``5 * 3 * 2`` is left alone).
BOLD_RE = re.compile(r"\*(?=\S)([^*\n]*?\S)\*")


def split_text(text: str, limit: int) -> list[str]:
    """Split text into chunks of at most ``limit`` characters at paragraph, line or word breaks.

    Args:
        text: the text.
        limit: the longest chunk.

    Returns:
        At least one chunk; blank text gives ``[""]``.
    """
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            pos = window.rfind(sep)
            if pos > limit // 3:
                cut = pos
                break
        if cut <= 0:
            cut = limit
        chunk = rest[:cut].rstrip()
        if not chunk:  # only whitespace before the cut: hard cut instead
            chunk, cut = rest[:limit], limit
        chunks.append(chunk)
        rest = rest[cut:].lstrip()
    chunks.append(rest)
    return [c for c in chunks if c] or [""]


def strip_bold(text: str) -> str:
    """Drop ``*bold*`` markers (channels that show no formatting), keeping the words."""
    return BOLD_RE.sub(r"\1", text)


def convert_bold(text: str, bold: Callable[[str], str], other: Callable[[str], str]) -> str:
    """Rewrite ``*bold*`` spans with ``bold`` and everything else with ``other``.

    Example: ``convert_bold(t, lambda s: f"<b>{escape(s)}</b>", escape)`` gives Telegram HTML.
    """
    out: list[str] = []
    pos = 0
    for match in BOLD_RE.finditer(text):
        out.append(other(text[pos : match.start()]))
        out.append(bold(match.group(1)))
        pos = match.end()
    out.append(other(text[pos:]))
    return "".join(out)
