"""Fixtures for the AI backend tests: offline models loaded once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from orchestrator.ai.config import AISettings  # noqa: E402 - env must be set first
from orchestrator.ai.rag.embeddings import Embedder  # noqa: E402
from orchestrator.ai.rag.store import KnowledgeBaseStore  # noqa: E402


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled MiniLM, loaded once for the whole run."""
    emb = Embedder()
    emb.load()
    return emb


@pytest.fixture
def ai_settings(tmp_path: Path) -> AISettings:
    """Settings with a fresh data dir and fast retries."""
    return AISettings(
        data_dir=tmp_path / "data",
        llm_backoff_base_s=0.05,
        llm_backoff_max_s=2.0,
        llm_timeout_s=5.0,
        llm_total_timeout_s=10.0,
    )


@pytest.fixture
def kb_store(tmp_path: Path, embedder: Embedder) -> Iterator[KnowledgeBaseStore]:
    """A knowledge-base store in a temporary directory."""
    store = KnowledgeBaseStore(tmp_path / "kb", embedder, chunk_size=400, chunk_overlap=80)
    yield store
    store.close()


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one Helvetica text page per string (lines split on \\n)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    # 1: catalog, 2: pages, 3: font, then (page, content) pairs.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        lines = []
        for line in text.split("\n"):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            lines.append(f"({escaped}) Tj T*")
        stream = ("BT /F1 11 Tf 14 TL 50 780 Td " + " ".join(lines) + " ET").encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
