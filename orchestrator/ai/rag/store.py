"""`KnowledgeBaseStore`: documents, chunks and one FAISS index per knowledge base on disk.

Layout of ``{root}/{kb_id}/``::

    kb.json        name, created_at, embedding_model, built_at, documents
    chunks.jsonl   one chunk per line, row i = vector i of the index
    index.faiss    IndexFlatIP over L2-normalised vectors (inner product = cosine)
    docs/          the uploaded originals (``{doc_id}{suffix}``), kept for rebuilds

Writers to one base are serialised by an asyncio lock and build a new index beside the
old one, then swap it in, so searches never wait for or see a half-built index. Every
CPU-heavy step (parsing, embedding, FAISS) runs in a small dedicated thread pool.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any, TypeVar

import faiss
import numpy as np
import numpy.typing as npt

from orchestrator.ai.rag.chunking import chunk_text
from orchestrator.ai.rag.embeddings import Embedder
from orchestrator.ai.rag.ingest import document_kind, extract_text
from orchestrator.ai.rag.types import DocumentInfo, KBStatus, SearchResult

logger = logging.getLogger(__name__)

T = TypeVar("T")

EXPORT_FORMAT = "flotilla-kb"
EXPORT_VERSION = 1
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_UNCOMPRESSED_FACTOR = 4


class KnowledgeBaseError(Exception):
    """A knowledge-base operation was refused.

    Attributes:
        status: the HTTP status a route should answer with (404, 400, 413, ...).
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Chunk:
    doc_id: str
    text: str
    source: str
    answer: str | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = {"doc_id": self.doc_id, "text": self.text, "source": self.source}
        if self.answer is not None:
            data["answer"] = self.answer
        return json.dumps(data, ensure_ascii=False)


@dataclass(frozen=True)
class _Loaded:
    """An immutable snapshot of a base: searches read it while writers build the next."""

    index: Any
    chunks: tuple[_Chunk, ...]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_index(dim: int) -> Any:
    return faiss.IndexFlatIP(dim)


def _all_vectors(index: Any) -> npt.NDArray[np.float32]:
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)


class KnowledgeBaseStore:
    """Knowledge bases under ``root`` (normally ``{data_dir}/kb``).

    Args:
        root: directory holding one sub-directory per base.
        embedder: shared embedder (its model loads once, on first use).
        chunk_size: characters per chunk.
        chunk_overlap: characters shared by neighbouring chunks.
        max_import_bytes: ZIP imports above this are refused (413).
        max_upload_bytes: documents above this are refused (413).
        workers: threads for parsing, embedding and index builds.
    """

    def __init__(
        self,
        root: Path,
        embedder: Embedder,
        *,
        chunk_size: int = 700,
        chunk_overlap: int = 120,
        max_import_bytes: int = 250 * 1024 * 1024,
        max_upload_bytes: int = 50 * 1024 * 1024,
        workers: int = 2,
    ) -> None:
        self.root = Path(root)
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_import_bytes = max_import_bytes
        self.max_upload_bytes = max_upload_bytes
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kb")
        self._loaded: dict[str, _Loaded] = {}
        self._load_lock = threading.Lock()
        self._write_locks: dict[str, asyncio.Lock] = {}

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))

    def close(self) -> None:
        """Stop the worker threads (waits for running jobs)."""
        self._executor.shutdown(wait=True)

    def _dir(self, kb_id: str) -> Path:
        if not _ID_RE.match(kb_id):
            raise KnowledgeBaseError(f"invalid knowledge base id {kb_id!r}", status=400)
        return self.root / kb_id

    def _existing_dir(self, kb_id: str) -> Path:
        path = self._dir(kb_id)
        if not (path / "kb.json").is_file():
            raise KnowledgeBaseError(f"knowledge base {kb_id!r} not found", status=404)
        return path

    def _lock(self, kb_id: str) -> asyncio.Lock:
        return self._write_locks.setdefault(kb_id, asyncio.Lock())

    def _read_meta(self, kb_id: str) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads((self._existing_dir(kb_id) / "kb.json").read_text())
        return meta

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _write_meta(self, kb_id: str, meta: dict[str, Any]) -> None:
        self._write_atomic(
            self._dir(kb_id) / "kb.json", json.dumps(meta, ensure_ascii=False, indent=1).encode()
        )

    def _load(self, kb_id: str) -> _Loaded:
        cached = self._loaded.get(kb_id)
        if cached is not None:
            return cached
        with self._load_lock:
            cached = self._loaded.get(kb_id)
            if cached is not None:
                return cached
            path = self._existing_dir(kb_id)
            chunks: list[_Chunk] = []
            chunk_file = path / "chunks.jsonl"
            if chunk_file.is_file():
                for line in chunk_file.read_text().splitlines():
                    if line.strip():
                        chunks.append(_Chunk(**json.loads(line)))
            index_file = path / "index.faiss"
            index = (
                faiss.read_index(str(index_file))
                if index_file.is_file()
                else _new_index(self.embedder.dim)
            )
            if index.ntotal != len(chunks):
                raise KnowledgeBaseError(
                    f"knowledge base {kb_id!r} is inconsistent ({index.ntotal} vectors, "
                    f"{len(chunks)} chunks): rebuild it",
                    status=409,
                )
            loaded = _Loaded(index=index, chunks=tuple(chunks))
            self._loaded[kb_id] = loaded
            return loaded

    def _save(self, kb_id: str, loaded: _Loaded, meta: dict[str, Any]) -> None:
        path = self._dir(kb_id)
        self._write_atomic(
            path / "chunks.jsonl", "".join(c.to_json() + "\n" for c in loaded.chunks).encode()
        )
        self._write_atomic(path / "index.faiss", bytes(faiss.serialize_index(loaded.index)))
        meta["embedding_model"] = self.embedder.model_name
        meta["built_at"] = _now()
        self._write_meta(kb_id, meta)
        self._loaded[kb_id] = loaded

    def _status(self, kb_id: str) -> KBStatus:
        meta = self._read_meta(kb_id)
        loaded = self._load(kb_id)
        return KBStatus(
            id=kb_id,
            name=meta["name"],
            documents=[DocumentInfo(**d) for d in meta["documents"]],
            chunks=len(loaded.chunks),
            vectors=int(loaded.index.ntotal),
            embedding_model=meta.get("embedding_model") or self.embedder.model_name,
            built_at=meta.get("built_at"),
            created_at=meta.get("created_at", ""),
        )

    def _embed_chunks(self, chunks: Sequence[_Chunk]) -> npt.NDArray[np.float32]:
        return self.embedder.encode([c.text for c in chunks])

    def _chunks_for(self, doc_id: str, filename: str, text: str) -> list[_Chunk]:
        return [
            _Chunk(doc_id=doc_id, text=t, source=filename)
            for t in chunk_text(text, size=self.chunk_size, overlap=self.chunk_overlap)
        ]

    # -- bases ------------------------------------------------------------------------------

    async def create(self, name: str, *, kb_id: str | None = None) -> KBStatus:
        """Create an empty knowledge base.

        Args:
            name: display name.
            kb_id: id to use (e.g. the orchestrator's row id); a new one when ``None``.

        Returns:
            Its status.

        Raises:
            KnowledgeBaseError: bad or already used id (409).
        """
        kb_id = str(kb_id) if kb_id is not None else uuid.uuid4().hex[:12]
        path = self._dir(kb_id)
        if (path / "kb.json").exists():
            raise KnowledgeBaseError(f"knowledge base {kb_id!r} already exists", status=409)
        (path / "docs").mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "id": kb_id,
            "name": name,
            "created_at": _now(),
            "embedding_model": None,
            "built_at": None,
            "documents": [],
        }
        self._write_meta(kb_id, meta)
        return KBStatus(id=kb_id, name=name, created_at=meta["created_at"])

    def exists(self, kb_id: str | int) -> bool:
        """Whether a base with this id exists (cheap, no loading)."""
        try:
            return (self._dir(str(kb_id)) / "kb.json").is_file()
        except KnowledgeBaseError:
            return False

    async def list_bases(self) -> list[KBStatus]:
        """Status of every base, sorted by name."""
        if not self.root.is_dir():
            return []
        ids = [p.name for p in self.root.iterdir() if (p / "kb.json").is_file()]
        statuses = [await self._run(self._status, kb_id) for kb_id in ids]
        return sorted(statuses, key=lambda s: (s.name, s.id))

    async def status(self, kb_id: str) -> KBStatus:
        """Documents, chunk and vector counts, embedding model and build time of a base.

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        return await self._run(self._status, str(kb_id))

    async def delete(self, kb_id: str) -> None:
        """Delete a base and its files.

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        kb_id = str(kb_id)
        path = self._existing_dir(kb_id)
        async with self._lock(kb_id):
            self._loaded.pop(kb_id, None)
            await self._run(shutil.rmtree, path)

    # -- documents --------------------------------------------------------------------------

    def _add_sync(
        self,
        kb_id: str,
        doc_id: str,
        filename: str,
        data: bytes,
        chunks: list[_Chunk] | None,
        kind: str,
    ) -> DocumentInfo:
        if chunks is None:
            kind, text = extract_text(filename, data)
            chunks = self._chunks_for(doc_id, filename, text)
            if not chunks:
                raise KnowledgeBaseError(f"{filename}: no text found", status=422)
        vectors = self._embed_chunks(chunks)
        old = self._load(kb_id)
        index = faiss.clone_index(old.index) if old.index.ntotal else _new_index(vectors.shape[1])
        index.add(vectors)
        suffix = PurePath(filename).suffix.lower() if kind != "qa" else ".json"
        self._write_atomic(self._dir(kb_id) / "docs" / f"{doc_id}{suffix}", data)
        info = DocumentInfo(
            id=doc_id,
            filename=filename,
            kind=kind,
            size_bytes=len(data),
            chunks=len(chunks),
            added_at=_now(),
        )
        meta = self._read_meta(kb_id)
        meta["documents"].append(info.as_dict())
        self._save(kb_id, _Loaded(index=index, chunks=old.chunks + tuple(chunks)), meta)
        logger.info("kb %s: added %s (%s, %d chunks)", kb_id, filename, kind, len(chunks))
        return info

    async def add_document(self, kb_id: str, filename: str, data: bytes) -> DocumentInfo:
        """Parse, chunk, embed and index a PDF / TXT / MD / HTML document.

        Args:
            kb_id: the base.
            filename: original file name; its extension picks the parser.
            data: file bytes.

        Returns:
            The new document (with its chunk count).

        Raises:
            KnowledgeBaseError: unknown base (404), too large (413), no text (422).
            UnsupportedDocumentError: unsupported or unreadable file.
        """
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        if len(data) > self.max_upload_bytes:
            raise KnowledgeBaseError(
                f"{filename}: {len(data)} bytes is above the {self.max_upload_bytes} limit",
                status=413,
            )
        filename = PurePath(filename.replace("\\", "/")).name or "document.txt"
        kind = document_kind(filename, data)
        doc_id = uuid.uuid4().hex[:12]
        async with self._lock(kb_id):
            return await self._run(self._add_sync, kb_id, doc_id, filename, data, None, kind)

    async def add_qa(self, kb_id: str, question: str, answer: str) -> DocumentInfo:
        """Add an owner's answer as a Q/A entry (found by the question or the answer).

        Args:
            kb_id: the base.
            question: the customer's question.
            answer: the owner's answer; an extractive reply returns exactly this.

        Returns:
            The Q/A document (kind ``qa``; delete it like any document).

        Raises:
            KnowledgeBaseError: unknown base (404) or empty question/answer (422).
        """
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        question, answer = question.strip(), answer.strip()
        if not question or not answer:
            raise KnowledgeBaseError("question and answer are required", status=422)
        doc_id = uuid.uuid4().hex[:12]
        chunk = _Chunk(
            doc_id=doc_id, text=f"Q: {question}\nA: {answer}", source="Q&A", answer=answer
        )
        data = json.dumps({"question": question, "answer": answer}, ensure_ascii=False).encode()
        async with self._lock(kb_id):
            return await self._run(self._add_sync, kb_id, doc_id, "Q&A", data, [chunk], "qa")

    def _delete_document_sync(self, kb_id: str, doc_id: str) -> None:
        meta = self._read_meta(kb_id)
        docs = [d for d in meta["documents"] if d["id"] != doc_id]
        if len(docs) == len(meta["documents"]):
            raise KnowledgeBaseError(f"document {doc_id!r} not found", status=404)
        old = self._load(kb_id)
        keep = [i for i, c in enumerate(old.chunks) if c.doc_id != doc_id]
        vectors = _all_vectors(old.index)[keep]
        index = _new_index(old.index.d)
        if len(keep):
            index.add(vectors)
        meta["documents"] = docs
        self._save(kb_id, _Loaded(index=index, chunks=tuple(old.chunks[i] for i in keep)), meta)
        for path in (self._dir(kb_id) / "docs").glob(f"{doc_id}.*"):
            path.unlink()

    async def delete_document(self, kb_id: str, doc_id: str) -> None:
        """Remove a document and its vectors (no re-embedding needed).

        Raises:
            KnowledgeBaseError: unknown base or document (404).
        """
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        async with self._lock(kb_id):
            await self._run(self._delete_document_sync, kb_id, str(doc_id))

    def _rebuild_sync(self, kb_id: str) -> None:
        meta = self._read_meta(kb_id)
        docs_dir = self._dir(kb_id) / "docs"
        chunks: list[_Chunk] = []
        for doc in meta["documents"]:
            if doc["kind"] == "qa":
                qa = json.loads((docs_dir / f"{doc['id']}.json").read_text())
                doc_chunks = [
                    _Chunk(
                        doc_id=doc["id"],
                        source="Q&A",
                        answer=qa["answer"],
                        text=f"Q: {qa['question']}\nA: {qa['answer']}",
                    )
                ]
            else:
                data = (
                    docs_dir / f"{doc['id']}{PurePath(doc['filename']).suffix.lower()}"
                ).read_bytes()
                _, text = extract_text(doc["filename"], data)
                doc_chunks = self._chunks_for(doc["id"], doc["filename"], text)
            doc["chunks"] = len(doc_chunks)
            chunks.extend(doc_chunks)
        vectors = self._embed_chunks(chunks)
        index = _new_index(self.embedder.dim)
        if len(chunks):
            index.add(vectors)
        self._save(kb_id, _Loaded(index=index, chunks=tuple(chunks)), meta)
        logger.info("kb %s: rebuilt, %d chunks", kb_id, len(chunks))

    async def rebuild(self, kb_id: str) -> KBStatus:
        """Re-parse, re-chunk and re-embed every document (after a model or chunking change).

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        async with self._lock(kb_id):
            await self._run(self._rebuild_sync, kb_id)
        return await self.status(kb_id)

    # -- search -----------------------------------------------------------------------------

    def _search_sync(self, kb_ids: Sequence[str], query: str, k: int) -> list[SearchResult]:
        vector = self.embedder.encode([query])
        faiss.omp_set_num_threads(1)  # one thread is faster for small batches (issue 5)
        results: list[SearchResult] = []
        for kb_id in kb_ids:
            loaded = self._load(kb_id)
            if loaded.index.ntotal == 0:
                continue
            scores, ids = loaded.index.search(vector, min(k, loaded.index.ntotal))
            for score, idx in zip(scores[0], ids[0], strict=True):
                if idx < 0:
                    continue
                chunk = loaded.chunks[idx]
                results.append(
                    SearchResult(
                        text=chunk.text,
                        score=float(score),
                        source=chunk.source,
                        kb_id=kb_id,
                        doc_id=chunk.doc_id,
                        answer=chunk.answer,
                    )
                )
        results.sort(key=lambda r: r.score, reverse=True)
        return results[:k]

    async def search(self, kb_id: str, query: str, k: int = 5) -> list[SearchResult]:
        """Best ``k`` passages of one base for ``query``.

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        return await self.search_many([str(kb_id)], query, k)

    async def search_many(
        self, kb_ids: Sequence[str | int], query: str, k: int = 5
    ) -> list[SearchResult]:
        """Best ``k`` passages over several bases (a bot's ``knowledge_base_ids``).

        Args:
            kb_ids: bases to search; unknown ids raise.
            query: the question.
            k: number of results, best first.

        Returns:
            Results sorted by descending score.

        Raises:
            KnowledgeBaseError: an unknown base (404).
        """
        ids = [str(i) for i in kb_ids]
        if not ids or not query.strip() or k <= 0:
            return []
        return await self._run(self._search_sync, ids, query, k)

    # -- export / import --------------------------------------------------------------------

    def _export_sync(self, kb_id: str) -> bytes:
        meta = self._read_meta(kb_id)
        path = self._dir(kb_id)
        loaded = self._load(kb_id)
        manifest = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "name": meta["name"],
            "exported_at": _now(),
            "embedding_model": meta.get("embedding_model"),
            "dim": int(loaded.index.d),
            "chunks": len(loaded.chunks),
            "vectors": int(loaded.index.ntotal),
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "documents": meta["documents"],
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
            zf.writestr("chunks.jsonl", "".join(c.to_json() + "\n" for c in loaded.chunks))
            zf.writestr("index.faiss", bytes(faiss.serialize_index(loaded.index)))
            for doc_file in sorted((path / "docs").iterdir()):
                zf.write(doc_file, f"docs/{doc_file.name}")
        return buf.getvalue()

    async def export_zip(self, kb_id: str) -> bytes:
        """A ZIP with ``manifest.json``, ``chunks.jsonl``, ``index.faiss`` and ``docs/``.

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        async with self._lock(kb_id):
            return await self._run(self._export_sync, kb_id)

    def _import_sync(self, data: bytes, kb_id: str, name: str | None) -> None:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise KnowledgeBaseError(f"not a ZIP file: {exc}", status=400) from exc
        with zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > self.max_import_bytes * _MAX_UNCOMPRESSED_FACTOR:
                raise KnowledgeBaseError("archive expands beyond the size limit", status=413)
            names = {i.filename for i in infos}
            if "manifest.json" not in names or "chunks.jsonl" not in names:
                raise KnowledgeBaseError("manifest.json or chunks.jsonl missing", status=400)
            manifest = json.loads(zf.read("manifest.json"))
            if manifest.get("format") != EXPORT_FORMAT:
                raise KnowledgeBaseError("not a Flotilla knowledge-base export", status=400)
            if int(manifest.get("version", 0)) > EXPORT_VERSION:
                raise KnowledgeBaseError("export made by a newer version", status=400)
            chunks = tuple(
                _Chunk(**json.loads(line))
                for line in zf.read("chunks.jsonl").decode().splitlines()
                if line.strip()
            )
            index = None
            same_model = manifest.get("embedding_model") == self.embedder.model_name
            if same_model and "index.faiss" in names:
                raw = np.frombuffer(zf.read("index.faiss"), dtype=np.uint8)
                index = faiss.deserialize_index(raw)
                if index.ntotal != len(chunks) or index.d != self.embedder.dim:
                    index = None
            if index is None:
                logger.info(
                    "import: re-embedding %d chunks (model %s -> %s)",
                    len(chunks),
                    manifest.get("embedding_model"),
                    self.embedder.model_name,
                )
                index = _new_index(self.embedder.dim)
                if chunks:
                    index.add(self._embed_chunks(chunks))
            path = self._dir(kb_id)
            (path / "docs").mkdir(parents=True, exist_ok=True)
            doc_ids = {d["id"] for d in manifest.get("documents", [])}
            for info in infos:
                member = PurePath(info.filename)
                # Only plain files directly under docs/ named after a listed document.
                if (
                    len(member.parts) == 2
                    and member.parts[0] == "docs"
                    and member.stem in doc_ids
                    and not info.is_dir()
                ):
                    self._write_atomic(path / "docs" / member.name, zf.read(info))
        meta = {
            "id": kb_id,
            "name": name or manifest.get("name") or kb_id,
            "created_at": _now(),
            "documents": manifest.get("documents", []),
        }
        self._save(kb_id, _Loaded(index=index, chunks=chunks), meta)

    async def import_zip(
        self, data: bytes, *, name: str | None = None, kb_id: str | None = None
    ) -> KBStatus:
        """Create a new base from an :meth:`export_zip` archive.

        The stored index is reused when the embedding model matches; otherwise the chunks are
        re-embedded with the current model.

        Args:
            data: the ZIP bytes.
            name: display name; the exported name when ``None``.
            kb_id: id for the new base; a new one when ``None``.

        Returns:
            Status of the new base.

        Raises:
            KnowledgeBaseError: above ``max_import_bytes`` (413), not an export (400),
                id in use (409).
        """
        if len(data) > self.max_import_bytes:
            raise KnowledgeBaseError(
                f"archive of {len(data)} bytes is above the {self.max_import_bytes} limit",
                status=413,
            )
        kb_id = str(kb_id) if kb_id is not None else uuid.uuid4().hex[:12]
        path = self._dir(kb_id)
        if path.exists():
            raise KnowledgeBaseError(f"knowledge base {kb_id!r} already exists", status=409)
        async with self._lock(kb_id):
            try:
                await self._run(self._import_sync, data, kb_id, name)
            except BaseException:
                self._loaded.pop(kb_id, None)
                await self._run(shutil.rmtree, path, ignore_errors=True)
                raise
        return await self.status(kb_id)
