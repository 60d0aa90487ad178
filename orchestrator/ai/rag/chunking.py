"""Split text into overlapping chunks on word boundaries."""

from __future__ import annotations

import re

_PARAGRAPH = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"[ \t\r\f\v]+")
_PARA_MARK = "\n\n"


def normalize_text(text: str) -> str:
    """Collapse runs of spaces, keep paragraph breaks, drop empty lines."""
    paragraphs = []
    for para in _PARAGRAPH.split(text):
        lines = [_SPACE.sub(" ", line).strip() for line in para.splitlines()]
        joined = " ".join(line for line in lines if line)
        if joined:
            paragraphs.append(joined)
    return "\n\n".join(paragraphs)


def chunk_text(text: str, *, size: int = 700, overlap: int = 120) -> list[str]:
    """Split ``text`` into chunks of at most ``size`` characters sharing ``overlap``.

    Chunks end on word boundaries and prefer paragraph ends: a paragraph that fits is never
    split. A word longer than ``size`` is cut.

    Args:
        text: the document text.
        size: maximum characters per chunk.
        overlap: characters (whole words) repeated from the end of one chunk at the start of
            the next, so a sentence on the boundary is found from either side.

    Returns:
        The chunks in document order (empty for blank text).

    Raises:
        ValueError: ``overlap`` is not smaller than ``size``.
    """
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    text = normalize_text(text)
    if not text:
        return []
    # Tokens are words; "\n\n" marks a paragraph end so chunks can prefer to stop there.
    tokens: list[str] = []
    for para in text.split("\n\n"):
        for word in para.split(" "):
            while len(word) > size:
                tokens.append(word[:size])
                word = word[size:]
            tokens.append(word)
        tokens.append(_PARA_MARK)
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    last_para_end = -1
    for token in tokens:
        if token == _PARA_MARK:
            last_para_end = len(current)
            continue
        extra = len(token) + (1 if current else 0)
        if current and length + extra > size:
            cut = last_para_end if last_para_end > len(current) // 2 else len(current)
            chunks.append(" ".join(current[:cut]))
            rest = current[cut:]
            carry: list[str] = []
            carried = 0
            for word in reversed(current[:cut]):
                if carried + len(word) + 1 > overlap:
                    break
                carry.insert(0, word)
                carried += len(word) + 1
            current = carry + rest
            while current and len(" ".join(current)) + extra > size:
                current.pop(0)
            length = len(" ".join(current))
            last_para_end = -1
            extra = len(token) + (1 if current else 0)
        current.append(token)
        length += extra
    if current:
        tail = " ".join(current)
        if not chunks or not chunks[-1].endswith(tail):
            chunks.append(tail)
    return chunks
