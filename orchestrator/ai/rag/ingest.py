"""Turn uploaded documents (PDF, TXT, MD, HTML) into plain text."""

from __future__ import annotations

import io
import logging
import re
from html.parser import HTMLParser
from pathlib import PurePath

logger = logging.getLogger(__name__)

SUPPORTED_KINDS = {
    ".pdf": "pdf",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
}


class UnsupportedDocumentError(ValueError):
    """The file type is not one we ingest, or the file cannot be read."""


def document_kind(filename: str, data: bytes | None = None) -> str:
    """Kind of a document from its extension (sniffing PDF magic when there is none).

    Args:
        filename: the uploaded file name.
        data: its bytes, used only when the extension says nothing.

    Returns:
        ``pdf``, ``txt``, ``md`` or ``html``.

    Raises:
        UnsupportedDocumentError: anything else.
    """
    suffix = PurePath(filename).suffix.lower()
    if suffix in SUPPORTED_KINDS:
        return SUPPORTED_KINDS[suffix]
    if not suffix and data is not None:
        return "pdf" if data.startswith(b"%PDF") else "txt"
    raise UnsupportedDocumentError(
        f"unsupported document type {suffix!r}; use PDF, TXT, MD or HTML"
    )


def decode_text(data: bytes) -> str:
    """Decode text bytes: UTF-8 (with or without BOM), else cp1252, never failing."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


class _HTMLTextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "table",
            "section",
            "article",
            "header",
            "footer",
            "blockquote",
            "pre",
            "hr",
            "dt",
            "dd",
            "title",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Strip tags with the stdlib parser; scripts and styles are dropped, blocks break lines."""
    parser = _HTMLTextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


_MD_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def markdown_to_text(md: str) -> str:
    """Drop Markdown syntax that would only add noise to embeddings."""
    text = _MD_FENCE.sub("", md)
    text = _MD_HEADING.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    return _MD_EMPHASIS.sub(r"\2", text)


def pdf_to_text(data: bytes) -> str:
    """Text of every page of a PDF, pages separated by blank lines."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, OSError) as exc:
        raise UnsupportedDocumentError(f"cannot read PDF: {exc}") from exc
    return "\n\n".join(pages)


def extract_text(filename: str, data: bytes) -> tuple[str, str]:
    """Extract plain text from a document. CPU-bound for PDFs: call it off the event loop.

    Args:
        filename: file name (its extension picks the parser).
        data: file bytes.

    Returns:
        ``(kind, text)``.

    Raises:
        UnsupportedDocumentError: unknown type or unreadable file.
    """
    kind = document_kind(filename, data)
    if kind == "pdf":
        return kind, pdf_to_text(data)
    text = decode_text(data)
    if kind == "html":
        return kind, html_to_text(text)
    if kind == "md":
        return kind, markdown_to_text(text)
    return kind, text
