"""Turn uploaded documents (PDF, TXT, MD, HTML) into plain text."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePath

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

    _HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self._table_depth = 0
        self._in_cell = False

    # The text keeps the structure as light Markdown for structure-aware chunking:
    # headings as "# ", list items as "- ", table rows as "| cell | cell |".
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag in self._HEADINGS:
            self.parts.append("\n\n" + "#" * self._HEADINGS[tag] + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "table":
            self._table_depth += 1
            self.parts.append("\n\n")
        elif tag == "tr" and self._table_depth:
            self.parts.append("\n|")
        elif tag in ("td", "th") and self._table_depth:
            self._in_cell = True
            self.parts.append(" ")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "table":
            self._table_depth = max(0, self._table_depth - 1)
            self.parts.append("\n\n")
        elif tag in ("td", "th") and self._table_depth:
            self._in_cell = False
            self.parts.append(" |")
        elif tag == "tr" and self._table_depth:
            self.parts.append("\n")
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._table_depth and not self._in_cell and not data.strip():
            return  # whitespace between rows and cells would break the table apart
        if self._in_cell:
            data = " ".join(data.replace("|", "/").split())
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Strip tags with the stdlib parser; scripts and styles are dropped, blocks break lines."""
    parser = _HTMLTextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


_MD_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})[ \t]+", re.MULTILINE)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def markdown_to_text(md: str) -> str:
    """Drop Markdown syntax that would only add noise to embeddings."""
    text = _MD_FENCE.sub("", md)
    text = _MD_HEADING.sub(r"\1 ", text)  # headings stay: chunking keeps them as context
    text = _MD_LINK.sub(r"\1", text)
    return _MD_EMPHASIS.sub(r"\2", text)


@dataclass(frozen=True)
class ExtractLimits:
    """What reading one document may cost.

    Attributes:
        pdf_timeout_s: a PDF's reader process is killed after this many seconds.
        pdf_max_pages: PDFs with more pages are refused.
        max_chars: documents with more text than this are refused (HTML/Markdown sources
            may be up to four times this before their markup is stripped).
        pdf_max_memory_bytes: address-space limit of the PDF reader process.
    """

    pdf_timeout_s: float = 120.0
    pdf_max_pages: int = 2000
    max_chars: int = 5_000_000
    pdf_max_memory_bytes: int = 1024 * 1024 * 1024


class DocumentLimitError(UnsupportedDocumentError):
    """A document is beyond a limit (pages, characters, time or memory to read it).

    Attributes:
        status: the HTTP status a route should answer with (413 too large, 422 unreadable
            within the limits).
    """

    def __init__(self, message: str, *, status: int = 413) -> None:
        super().__init__(message)
        self.status = status


_PDF_WORKER = Path(__file__).with_name("_pdf_worker.py")
_POLL_S = 0.1


def pdf_to_text(
    data: bytes,
    limits: ExtractLimits | None = None,
    *,
    cancel: threading.Event | None = None,
) -> str:
    """Text of every page of a PDF, pages separated by blank lines.

    The PDF is read by pypdf in a separate process (``_pdf_worker.py``) with a memory limit;
    it is killed when ``limits.pdf_timeout_s`` passes or ``cancel`` is set, so a crafted file
    (a decompression bomb, a content stream of millions of operators) costs at most that long.

    Raises:
        DocumentLimitError: too many pages or characters (413), too slow or too big to read
            (422), or cancelled (503).
        UnsupportedDocumentError: pypdf cannot read it.
    """
    limits = limits or ExtractLimits()
    cmd = [
        sys.executable,
        "-I",
        str(_PDF_WORKER),
        str(limits.pdf_max_pages),
        str(limits.max_chars),
        str(limits.pdf_max_memory_bytes),
        str(int(limits.pdf_timeout_s) + 2),
    ]
    deadline = time.monotonic() + limits.pdf_timeout_s
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and file, fixed arguments
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    pending: bytes | None = data  # communicate() takes the input on its first call only
    try:
        while True:
            wait = min(_POLL_S, max(deadline - time.monotonic(), 0.0))
            try:
                out, err = proc.communicate(pending, timeout=wait)
                break
            except subprocess.TimeoutExpired:
                pending = None
                if cancel is not None and cancel.is_set():
                    raise DocumentLimitError(
                        "the orchestrator is shutting down; try again later", status=503
                    ) from None
                if time.monotonic() >= deadline:
                    raise DocumentLimitError(
                        f"the PDF could not be read within the {limits.pdf_timeout_s:g} s "
                        "limit (it may be damaged or built to exhaust the server)",
                        status=422,
                    ) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    try:
        answer = json.loads(out.decode("utf-8"))
    except ValueError:
        logger.warning(
            "pdf worker exited with %s: %s", proc.returncode, err.decode(errors="replace")[-300:]
        )
        raise DocumentLimitError(
            f"the PDF could not be read within the limits (reader exit code {proc.returncode})",
            status=422,
        ) from None
    error = answer.get("error")
    if error in ("pages", "chars"):
        raise DocumentLimitError(f"PDF too large: {answer.get('message')}", status=413)
    if error == "memory":
        raise DocumentLimitError(f"PDF too large: {answer.get('message')}", status=422)
    if error:
        raise UnsupportedDocumentError(f"cannot read PDF: {answer.get('message')}")
    return str(answer.get("text") or "")


def _check_chars(text: str, limit: int, what: str) -> str:
    if len(text) > limit:
        raise DocumentLimitError(f"{what}: more than {limit} characters of text", status=413)
    return text


def extract_text(
    filename: str,
    data: bytes,
    limits: ExtractLimits | None = None,
    *,
    cancel: threading.Event | None = None,
) -> tuple[str, str]:
    """Extract plain text from a document. CPU-bound: call it off the event loop.

    Args:
        filename: file name (its extension picks the parser).
        data: file bytes.
        limits: time, page and size limits (defaults when ``None``).
        cancel: set it to stop a PDF reader early (the store sets it on shutdown).

    Returns:
        ``(kind, text)``.

    Raises:
        UnsupportedDocumentError: unknown type or unreadable file.
        DocumentLimitError: beyond a limit (see :func:`pdf_to_text`).
    """
    limits = limits or ExtractLimits()
    kind = document_kind(filename, data)
    if kind == "pdf":
        text = pdf_to_text(data, limits, cancel=cancel)
        return kind, _check_chars(text, limits.max_chars, filename)
    text = decode_text(data)
    if kind in ("html", "md"):
        _check_chars(text, 4 * limits.max_chars, filename)
        text = html_to_text(text) if kind == "html" else markdown_to_text(text)
    return kind, _check_chars(text, limits.max_chars, filename)
