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
    """

    text: str
    score: float
    source: str
    kb_id: str = ""
    doc_id: str = ""
    answer: str | None = None

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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form with ``documents`` as a list of objects."""
        data = asdict(self)
        data["document_count"] = len(self.documents)
        return data
