"""Knowledge bases: ingestion, chunking, embeddings and one FAISS index per base."""

from orchestrator.ai.rag.chunking import chunk_text
from orchestrator.ai.rag.embeddings import Embedder
from orchestrator.ai.rag.ingest import UnsupportedDocumentError, extract_text
from orchestrator.ai.rag.store import KnowledgeBaseError, KnowledgeBaseStore
from orchestrator.ai.rag.types import DocumentInfo, KBStatus, SearchResult

__all__ = [
    "DocumentInfo",
    "Embedder",
    "KBStatus",
    "KnowledgeBaseError",
    "KnowledgeBaseStore",
    "SearchResult",
    "UnsupportedDocumentError",
    "chunk_text",
    "extract_text",
]
