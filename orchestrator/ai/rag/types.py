"""Plain data returned by the knowledge-base store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SearchResult:
    """One passage found by a search.

    Attributes:
        text: the chunk text.
        score: cosine similarity to the query (-1..1, higher is closer).
        source: document name (file name, or ``Q&A`` for owner answers).
        kb_id: knowledge base it came from.
        doc_id: document it came from.
        answer: for a Q/A entry, just the answer (what an extractive reply should say).
        context: the headings the passage sits under (``"Prices › Cakes"``), for matching
            and for prompts; never part of an answer.
        lexical: IDF-weighted share of the query's content words the passage (with its
            headings) contains, 0..1.
    """

    text: str
    score: float
    source: str
    kb_id: str = ""
    doc_id: str = ""
    answer: str | None = None
    context: str = ""
    lexical: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the admin API shows ``text``, ``score``, ``source``)."""
        return asdict(self)


@dataclass
class DocumentInfo:
    """A document in a knowledge base."""

    id: str
    filename: str
    kind: str
    size_bytes: int
    chunks: int
    added_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> DocumentInfo:
        """Read a ``kb.json`` document entry, tolerating missing or odd fields.

        Entries are written by the store, but a base imported before the import checks
        existed may hold anything: a status page must still answer, never fail.
        """
        data = data if isinstance(data, dict) else {}

        def text(key: str, default: str = "") -> str:
            value = data.get(key, default)
            return value[:300] if isinstance(value, str) else default

        def number(key: str) -> int:
            value = data.get(key, 0)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        return cls(
            id=text("id"),
            filename=text("filename"),
            kind=text("kind"),
            size_bytes=number("size_bytes"),
            chunks=number("chunks"),
            added_at=text("added_at"),
        )


@dataclass
class KBStatus:
    """What the admin status page shows for a knowledge base."""

    id: str
    name: str
    documents: list[DocumentInfo] = field(default_factory=list)
    chunks: int = 0
    vectors: int = 0
    embedding_model: str = ""
    built_at: str | None = None
    created_at: str = ""
    #: The current or last build (see :mod:`orchestrator.ai.rag.progress`), when known.
    build: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form with ``documents`` as a list of objects."""
        data = asdict(self)
        data["document_count"] = len(self.documents)
        return data
