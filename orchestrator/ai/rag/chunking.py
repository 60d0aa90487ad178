"""Split text into chunks: plain overlapping word windows, or passages that follow the
document's headings, lists and tables (headings kept as context, not as text)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# -- structure-aware chunking -------------------------------------------------------------

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+•▪‣◦]|\d{1,3}[.)])\s+(.+)$")
_TABLE_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]*-[\s:|-]*\|?\s*$")
_TERMINAL = ".!?:;,"
CONTEXT_SEPARATOR = " › "


@dataclass(frozen=True)
class Passage:
    """A chunk of a document with the headings it sits under.

    Attributes:
        text: the chunk's answer units (paragraphs, list items, table rows), one per line;
            headings are never part of it.
        context: the heading path, outermost first, joined by :data:`CONTEXT_SEPARATOR`
            (empty before the first heading).
    """

    text: str
    context: str = ""


def _plain_heading(line: str) -> bool:
    """A plain-text line that reads like a heading: short, no digits, no end punctuation."""
    words = line.split()
    return (
        0 < len(words) <= 8
        and len(line) <= 60
        and line[-1] not in _TERMINAL
        and not any(ch.isdigit() for ch in line)
        and line[0].isupper()
        and not _BULLET.match(line)
    )


def _row_text(cells: list[str], header: list[str] | None) -> str:
    """A table row as one readable unit: ``first: second; header3: third ...``."""
    cells = [c.strip() for c in cells]
    if not any(cells):
        return ""
    if len(cells) == 1:
        return cells[0]
    text = f"{cells[0]}: {cells[1]}" if cells[0] and cells[1] else cells[0] or cells[1]
    for i, cell in enumerate(cells[2:], 2):
        if not cell:
            continue
        name = header[i].strip().lower() if header and i < len(header) else ""
        text += f"; {name}: {cell}" if name else f"; {cell}"
    return text


def document_sections(text: str) -> list[tuple[list[str], list[str]]]:
    """Split light Markdown / plain text into ``(heading path, units)`` sections.

    Markdown headings (``#``) give the path; a document without any uses plain-text headings
    (a short line without digits or end punctuation that starts a paragraph). Units are
    paragraphs (soft-wrapped lines joined), list items and table rows (rendered as
    ``first cell: second cell; header: cell``, the header row itself not being a unit).
    """
    lines = [_SPACE.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    markdown = any(_HEADING.match(line) for line in lines)
    sections: list[tuple[list[str], list[str]]] = []
    path: list[tuple[int, str]] = []
    units: list[str] = []
    paragraph: list[str] = []
    header: list[str] | None = None
    in_table = False
    plain_title_seen = False

    def flush_paragraph() -> None:
        if paragraph:
            units.append(" ".join(paragraph))
            paragraph.clear()

    def flush_section() -> None:
        flush_paragraph()
        if units:
            sections.append(([title for _, title in path], list(units)))
            units.clear()

    def set_heading(level: int, title: str) -> None:
        flush_section()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))

    previous_blank = True
    for i, line in enumerate(lines):
        if not line:
            flush_paragraph()
            previous_blank = True
            continue
        heading = _HEADING.match(line) if markdown else None
        table = _TABLE_ROW.match(line)
        if not table:
            in_table = False
        if heading:
            set_heading(len(heading.group(1)), heading.group(2).strip())
        elif table:
            flush_paragraph()
            if _TABLE_RULE.match(line):
                pass
            else:
                cells = table.group(1).split("|")
                if not in_table:
                    header, in_table = cells, True
                else:
                    row = _row_text(cells, header)
                    if row:
                        units.append(row)
        elif bullet := _BULLET.match(line):
            flush_paragraph()
            units.append(bullet.group(1).strip())
        elif (
            not markdown
            and (previous_blank or not paragraph)
            and _plain_heading(line)
            and any(lines[i + 1 :])
        ):
            set_heading(1 if not plain_title_seen else 2, line)
            plain_title_seen = True
        elif markdown:
            paragraph.append(line)
        else:
            # Plain text: a line is its own unit unless it visibly continues the previous
            # one (starts in lower case, or the previous line was long and unfinished).
            if paragraph and (
                line[0].islower()
                or (len(paragraph[-1]) >= 60 and paragraph[-1][-1] not in ".!?:;")
            ):
                paragraph[-1] = f"{paragraph[-1]} {line}"
            else:
                flush_paragraph()
                paragraph.append(line)
        previous_blank = False
    flush_section()
    return sections


def chunk_document(text: str, *, size: int = 700, overlap: int = 120) -> list[Passage]:
    """Split a document into passages that follow its sections.

    A section (the units under one heading) that fits in ``size`` characters is one passage;
    a longer one is packed unit by unit, the last unit repeated in the next passage when it
    is at most ``overlap`` characters; a single unit longer than ``size`` is cut with
    :func:`chunk_text`. Headings go into :attr:`Passage.context`, never into the text.

    Raises:
        ValueError: ``overlap`` is not smaller than ``size``.
    """
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    passages: list[Passage] = []
    for titles, units in document_sections(text):
        context = CONTEXT_SEPARATOR.join(titles)
        pieces: list[str] = []
        for unit in units:
            if len(unit) <= size:
                pieces.append(unit)
            else:
                pieces.extend(chunk_text(unit, size=size, overlap=overlap))
        current: list[str] = []
        for piece in pieces:
            if current and len("\n".join([*current, piece])) > size:
                passages.append(Passage("\n".join(current), context))
                carry = current[-1]
                fits = len(carry) <= overlap and len(carry) + len(piece) < size
                current = [carry] if fits else []
            current.append(piece)
        if current:
            passages.append(Passage("\n".join(current), context))
    return passages
