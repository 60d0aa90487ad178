"""`KnowledgeBaseStore`: documents, chunks and one FAISS index per knowledge base on disk.

Layout of ``{root}/{kb_id}/``::

    kb.json        name, created_at, embedding_model, built_at, documents
    chunks.jsonl   one chunk per line, row i = vector i of the index
    index.faiss    IndexFlatIP over L2-normalised vectors (inner product = cosine)
    docs/          the uploaded originals (``{doc_id}{suffix}``), kept for rebuilds

Writers to one base are serialised by an asyncio lock and build a new index beside the
old one, then swap it in, so searches never wait for or see a half-built index. Every
CPU-heavy step (parsing, embedding, FAISS) runs in a small dedicated thread pool; PDFs are read
in a separate process with a time limit. :meth:`KnowledgeBaseStore.close` cancels queued work
and stops running work at its next batch, so shutdown never waits for an index build.

Nothing from an archive or a ``kb.json`` names a file: every path is built by
:func:`safe_join` from a checked single name and must stay inside the base's folder; imported
documents get new ids, their content comes only from the archive's ``docs/`` entries, and the
imported index is checked against the manifest before a byte of it is used (see
:meth:`KnowledgeBaseStore.import_zip`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import lzma
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any, TypeGuard, TypeVar

import faiss
import numpy as np
import numpy.typing as npt

from orchestrator.ai.rag.chunking import chunk_document
from orchestrator.ai.rag.embeddings import Embedder
from orchestrator.ai.rag.ingest import (
    SUPPORTED_KINDS,
    DocumentLimitError,
    ExtractLimits,
    UnsupportedDocumentError,
    document_kind,
    extract_text,
)
from orchestrator.ai.rag.lexical import LexicalIndex, content_terms, coverage, rrf
from orchestrator.ai.rag.progress import BuildProgress
from orchestrator.ai.rag.types import DocumentInfo, KBStatus, SearchResult

logger = logging.getLogger(__name__)

T = TypeVar("T")

EXPORT_FORMAT = "flotilla-kb"
EXPORT_VERSION = 1
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DOC_KINDS = frozenset({"pdf", "txt", "md", "html", "qa"})
#: Suffixes a stored document file may have ("" for a name without one, as uploads allow).
_DOC_SUFFIXES = frozenset({*SUPPORTED_KINDS, "", ".json"})
_MAX_MANIFEST_BYTES = 8 * 1024 * 1024
_MAX_CHUNK_LINE_BYTES = 64 * 1024
_MAX_QA_BYTES = 64 * 1024
#: An entry larger than this must not expand more than _MAX_RATIO times its compressed size.
_RATIO_FLOOR_BYTES = 1024 * 1024
_MAX_RATIO = 100
_STREAM_BLOCK = 64 * 1024
#: faiss' IndexFlatIP serialisation: fourcc, d, ntotal, two dummies, is_trained, metric_type,
#: then the number of floats in the codes and the floats themselves.
_FLAT_IP_FOURCC = b"IxFI"
_FLAT_HEADER = struct.Struct("<4siqqqBiQ")
_METRIC_INNER_PRODUCT = 0
_EMBED_BATCH = 64
#: Background builds (each holding its upload in memory) that may wait per base / in all.
MAX_QUEUED_PER_BASE = 4
MAX_BACKGROUND_JOBS = 16


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
    #: The headings the chunk sits under ("Prices › Cakes"); searched, never answered.
    context: str = ""

    @property
    def searchable(self) -> str:
        """What is embedded and indexed: the headings, then the text."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    def to_json(self) -> str:
        data: dict[str, Any] = {"doc_id": self.doc_id, "text": self.text, "source": self.source}
        if self.answer is not None:
            data["answer"] = self.answer
        if self.context:
            data["context"] = self.context
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


def safe_join(base: Path, name: str) -> Path:
    """``base / name`` for a single plain file name, resolved and checked to stay in ``base``.

    Args:
        base: the folder the result must be directly inside.
        name: one path component (no separators, no ``..``, not absolute).

    Returns:
        The resolved path.

    Raises:
        KnowledgeBaseError: the name is not a plain name or the path leaves ``base`` (400),
            e.g. through a symbolic link.
    """
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or len(name) > 255
    ):
        raise KnowledgeBaseError(f"unsafe file name {name[:80]!r}", status=400)
    root = base.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise KnowledgeBaseError(f"unsafe file name {name[:80]!r}", status=400)
    return path


def _doc_suffix(kind: str, filename: str) -> str:
    return ".json" if kind == "qa" else PurePath(filename).suffix.lower()


def _clean_filename(value: Any) -> str:
    name = PurePath(str(value).replace("\\", "/")).name if isinstance(value, str) else ""
    return name[:255] or "document.txt"


def _flat_index_header(head: bytes) -> tuple[int, int]:
    """``(d, ntotal)`` of a serialised IndexFlatIP, from its first bytes only.

    Raises:
        KnowledgeBaseError: not an IndexFlatIP over float32 codes (400).
    """
    if len(head) < _FLAT_HEADER.size:
        raise KnowledgeBaseError("index.faiss is truncated", status=400)
    fourcc, d, ntotal, _, _, _, metric, floats = _FLAT_HEADER.unpack_from(head)
    if fourcc != _FLAT_IP_FOURCC or metric != _METRIC_INNER_PRODUCT:
        raise KnowledgeBaseError("index.faiss is not an inner-product flat index", status=400)
    if d <= 0 or ntotal < 0 or floats != d * ntotal:
        raise KnowledgeBaseError("index.faiss has an inconsistent header", status=400)
    return int(d), int(ntotal)


def _flat_index_size(d: int, ntotal: int) -> int:
    return _FLAT_HEADER.size + 4 * d * ntotal


def _entry_mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0o170000


def _parse_qa(data: bytes, doc_id: str, *, status: int) -> tuple[str, str]:
    """``(question, answer)`` of a stored Q/A document."""
    try:
        qa = json.loads(data.decode("utf-8")) if len(data) <= _MAX_QA_BYTES else None
    except (ValueError, RecursionError):
        qa = None
    if (
        not isinstance(qa, dict)
        or not isinstance(qa.get("question"), str)
        or not isinstance(qa.get("answer"), str)
    ):
        raise KnowledgeBaseError(f"Q&A document {doc_id!r} is damaged", status=status)
    return qa["question"], qa["answer"]


def _failure_message(exc: BaseException) -> str:
    """Why a build failed, in words safe to show the base's owner."""
    if isinstance(exc, KnowledgeBaseError | UnsupportedDocumentError):
        return str(exc)
    if isinstance(exc, asyncio.CancelledError):
        return "the build was stopped because the orchestrator is shutting down; start it again"
    return f"the build failed unexpectedly ({type(exc).__name__}); see the orchestrator log"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@contextlib.contextmanager
def _archive_errors(what: str) -> Iterator[None]:
    """Turn what a damaged or crafted archive makes zipfile, zlib or json raise into a 400."""
    try:
        yield
    except KnowledgeBaseError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        lzma.LZMAError,
        EOFError,
        NotImplementedError,
        RuntimeError,
        OSError,
        ValueError,
        RecursionError,
        struct.error,
    ) as exc:
        raise KnowledgeBaseError(
            f"{what}: damaged or unsupported ({type(exc).__name__}: {str(exc)[:200]})",
            status=400,
        ) from exc


_CHUNK_KEYS = frozenset({"doc_id", "text", "source", "answer", "context"})


def _parse_chunk(line: bytes, new_ids: dict[str, str], number: int) -> _Chunk:
    """One ``chunks.jsonl`` line, its document id mapped to the new one."""
    try:
        data = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        data = None
    if (
        not isinstance(data, dict)
        or not set(data) <= _CHUNK_KEYS
        or not isinstance(data.get("text"), str)
        or not isinstance(data.get("source", ""), str)
        or not isinstance(data.get("answer", ""), str | None)
        or not isinstance(data.get("context", ""), str)
    ):
        raise KnowledgeBaseError(f"chunks.jsonl line {number} is not a chunk", status=400)
    old_id = data.get("doc_id")
    doc_id = new_ids.get(old_id) if isinstance(old_id, str) else None
    if doc_id is None:
        raise KnowledgeBaseError(
            f"chunks.jsonl line {number} belongs to no document of the manifest", status=400
        )
    return _Chunk(
        doc_id=doc_id,
        text=data["text"],
        source=data.get("source", "")[:300],
        answer=data.get("answer"),
        context=data.get("context", "")[:1000],
    )


@dataclass(frozen=True)
class _ImportDoc:
    """A manifest document being imported: its old and new id and its archive entry."""

    old_id: str
    new_id: str
    kind: str
    filename: str
    suffix: str
    added_at: str
    info: zipfile.ZipInfo
    cap: int


class _Budget:
    """Bytes an archive may still expand to, counted on what decompression actually yields."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise KnowledgeBaseError(
                f"archive expands beyond the {self.limit} byte limit", status=413
            )


class KnowledgeBaseStore:
    """Knowledge bases under ``root`` (normally ``{data_dir}/kb``).

    Args:
        root: directory holding one sub-directory per base.
        embedder: shared embedder (its model loads once, on first use).
        chunk_size: characters per chunk.
        chunk_overlap: characters shared by neighbouring chunks.
        max_import_bytes: ZIP imports above this are refused (413).
        max_upload_bytes: documents above this are refused (413); also the largest document
            an import may carry.
        max_chunks: chunks one base may hold (uploads, imports and rebuilds above: 413).
        max_import_expanded_bytes: bytes an import may decompress to, counted while reading.
        max_import_entries: entries a ZIP import may have.
        extract_limits: time, page and character limits of reading one document.
        workers: threads for parsing, embedding and index builds.
        embed_batch: passages embedded per batch; progress and cancellation are checked
            between batches.
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
        max_chunks: int = 50_000,
        max_import_expanded_bytes: int = 512 * 1024 * 1024,
        max_import_entries: int = 10_000,
        extract_limits: ExtractLimits | None = None,
        workers: int = 2,
        embed_batch: int = _EMBED_BATCH,
    ) -> None:
        self.root = Path(root)
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_import_bytes = max_import_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_chunks = max_chunks
        self.max_import_expanded_bytes = max_import_expanded_bytes
        self.max_import_entries = max_import_entries
        self.extract_limits = extract_limits or ExtractLimits()
        self.embed_batch = max(1, int(embed_batch))
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kb")
        self._cancel = threading.Event()
        self._loaded: dict[str, _Loaded] = {}
        self._load_lock = threading.Lock()
        self._write_locks: dict[str, asyncio.Lock] = {}
        self._lexical: dict[str, tuple[_Loaded, LexicalIndex]] = {}  # BM25 per loaded snapshot
        self._progress: dict[str, BuildProgress] = {}  # current or last build per base
        self._progress_lock = threading.Lock()
        self._jobs: set[asyncio.Task[Any]] = set()  # builds started in the background

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))
        except RuntimeError as exc:  # the executor was shut down
            raise self._closing_error() from exc
        return await future

    @staticmethod
    def _closing_error() -> KnowledgeBaseError:
        return KnowledgeBaseError(
            "the orchestrator is shutting down; try again when it is back", status=503
        )

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise self._closing_error()

    def close(self) -> None:
        """Stop background work without waiting for it.

        Queued jobs are cancelled; a running embedding or build stops at its next batch and
        a running PDF reader process is killed, so a graceful shutdown never waits for an
        index build. Nothing half-built is saved: a stopped job raises before it writes.
        """
        self._cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for job in list(self._jobs):  # waiting for a base's lock: stop waiting
            with contextlib.suppress(RuntimeError):  # its loop is already closed
                job.get_loop().call_soon_threadsafe(job.cancel)

    def _dir(self, kb_id: str) -> Path:
        if not _ID_RE.match(kb_id):
            raise KnowledgeBaseError(f"invalid knowledge base id {kb_id[:80]!r}", status=400)
        return safe_join(self.root, kb_id)

    def _docs_dir(self, kb_id: str) -> Path:
        return safe_join(self._dir(kb_id), "docs")

    def _doc_path(self, kb_id: str, doc: dict[str, Any]) -> Path:
        """The stored file of a ``kb.json`` document entry, checked (409 when unsafe).

        Entries are written by the store, but a base imported before the import checks
        existed may name anything (``../../secret.key``): such an entry is never followed.
        """
        doc_id, kind, filename = doc.get("id"), doc.get("kind"), doc.get("filename")
        suffix = _doc_suffix(str(kind), filename) if isinstance(filename, str) else None
        if (
            not isinstance(doc_id, str)
            or not _ID_RE.match(doc_id)
            or kind not in _DOC_KINDS
            or suffix not in _DOC_SUFFIXES
        ):
            raise KnowledgeBaseError(
                f"knowledge base {kb_id!r} has an unsafe document entry "
                f"{str(doc_id)[:80]!r}; delete the base and import or upload its documents again",
                status=409,
            )
        docs_dir = self._docs_dir(kb_id)
        if (docs_dir / f"{doc_id}{suffix}").is_symlink():
            raise KnowledgeBaseError(f"document {doc_id!r} is not a regular file", status=409)
        path = safe_join(docs_dir, f"{doc_id}{suffix}")
        if path.exists() and not path.is_file():
            raise KnowledgeBaseError(f"document {doc_id!r} is not a regular file", status=409)
        return path

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
            chunk_file = safe_join(path, "chunks.jsonl")
            if chunk_file.is_file():
                for line in chunk_file.read_text().splitlines():
                    if line.strip():
                        chunks.append(_Chunk(**json.loads(line)))
            index_file = safe_join(path, "index.faiss")
            if index_file.is_file():
                self._check_index_file(kb_id, index_file)
                index = faiss.read_index(str(index_file))
            else:
                index = _new_index(self.embedder.dim)
            if index.ntotal != len(chunks):
                raise KnowledgeBaseError(
                    f"knowledge base {kb_id!r} is inconsistent ({index.ntotal} vectors, "
                    f"{len(chunks)} chunks): rebuild it",
                    status=409,
                )
            loaded = _Loaded(index=index, chunks=tuple(chunks))
            self._loaded[kb_id] = loaded
            return loaded

    @staticmethod
    def _check_index_file(kb_id: str, index_file: Path) -> None:
        """Refuse an index file whose header disagrees with its size (never allocate for it)."""
        with index_file.open("rb") as fh:
            head = fh.read(_FLAT_HEADER.size)
        try:
            d, ntotal = _flat_index_header(head)
        except KnowledgeBaseError as exc:
            raise KnowledgeBaseError(
                f"knowledge base {kb_id!r}: {exc}; rebuild it", status=409
            ) from exc
        if index_file.stat().st_size != _flat_index_size(d, ntotal):
            raise KnowledgeBaseError(
                f"knowledge base {kb_id!r}: index.faiss does not match its header; rebuild it",
                status=409,
            )

    def _save(self, kb_id: str, loaded: _Loaded, meta: dict[str, Any]) -> None:
        self._check_cancel()
        path = self._dir(kb_id)
        self._write_atomic(
            safe_join(path, "chunks.jsonl"),
            "".join(c.to_json() + "\n" for c in loaded.chunks).encode(),
        )
        self._write_atomic(
            safe_join(path, "index.faiss"), bytes(faiss.serialize_index(loaded.index))
        )
        meta["embedding_model"] = self.embedder.model_name
        meta["built_at"] = _now()
        self._write_meta(kb_id, meta)
        self._loaded[kb_id] = loaded

    def _status(self, kb_id: str) -> KBStatus:
        meta = self._read_meta(kb_id)
        path = self._dir(kb_id)
        built = (path / "index.faiss").exists() or (path / "chunks.jsonl").exists()
        if kb_id not in self._loaded and not built:
            # Never built: nothing to load, and no need to wait for the embedding model
            # (a status poll during the first build after a start must answer at once).
            chunks, vectors = 0, 0
        else:
            loaded = self._load(kb_id)
            chunks, vectors = len(loaded.chunks), int(loaded.index.ntotal)
        return KBStatus(
            id=kb_id,
            name=meta["name"],
            documents=[DocumentInfo.from_dict(d) for d in meta.get("documents") or []],
            chunks=chunks,
            vectors=vectors,
            embedding_model=meta.get("embedding_model") or self.embedder.model_name,
            built_at=meta.get("built_at"),
            created_at=meta.get("created_at", ""),
            build=self._build_snapshot(kb_id, meta),
        )

    # -- build progress ---------------------------------------------------------------------

    def _tracker(self, kb_id: str) -> BuildProgress:
        with self._progress_lock:
            tracker = self._progress.get(kb_id)
            if tracker is None:
                last = None
                with contextlib.suppress(KnowledgeBaseError, OSError, ValueError):
                    last = self._read_meta(kb_id).get("last_build")
                tracker = BuildProgress(last if isinstance(last, dict) else None)
                self._progress[kb_id] = tracker
            return tracker

    def _build_snapshot(self, kb_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        with self._progress_lock:
            tracker = self._progress.get(kb_id)
        if tracker is None:
            last = meta.get("last_build")
            tracker = BuildProgress(last if isinstance(last, dict) else None)
        return tracker.snapshot()

    def progress(self, kb_id: str) -> dict[str, Any]:
        """The current or last build of a base (cheap; safe while a build runs).

        Returns:
            :meth:`BuildProgress.snapshot <orchestrator.ai.rag.progress.BuildProgress.snapshot>`:
            ``phase``, ``label``, ``building``, ``done`` / ``total`` passages, ``started_at``,
            ``elapsed_s``, ``error`` and ``last`` (the last finished build's ``duration_s``
            and ``passages``).

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        kb_id = str(kb_id)
        return self._build_snapshot(kb_id, self._read_meta(kb_id))

    def _wait_for_model(self, progress: BuildProgress | None) -> None:
        """Load the embedding model, saying so while it loads (the warm-up may hold it)."""
        if getattr(self.embedder, "loaded", True):
            return
        if progress is not None:
            progress.set_phase("waiting_for_model")
        self.embedder.load()
        self._check_cancel()

    def _finish(
        self, kb_id: str, loaded: _Loaded, meta: dict[str, Any], progress: BuildProgress | None
    ) -> None:
        """Write a build (``writing``), then mark it ``ready`` with its duration kept."""
        if progress is None:
            self._save(kb_id, loaded, meta)
            return
        progress.set_phase("writing")
        last = progress.summary()
        meta["last_build"] = last
        self._save(kb_id, loaded, meta)
        progress.finish(last)

    async def _tracked(
        self,
        kb_id: str,
        document: str | None,
        func: Callable[..., T],
        /,
        *args: Any,
        queued: bool = False,
    ) -> T:
        """Run a build job under the base's write lock, reporting its progress."""
        tracker = self._tracker(kb_id)
        started = False
        try:
            async with self._lock(kb_id):
                tracker.start(document, queued=queued)
                started = True
                return await self._run(func, *args, progress=tracker)
        except BaseException as exc:
            tracker.fail(_failure_message(exc), queued=queued and not started)
            raise

    def _check_room(self, kb_id: str) -> None:
        """Refuse (429) a background build when too many already wait: each one holds its
        upload in memory until its turn."""
        queued = self._tracker(kb_id).snapshot()["queued"]
        if queued >= MAX_QUEUED_PER_BASE or len(self._jobs) >= MAX_BACKGROUND_JOBS:
            raise KnowledgeBaseError(
                "too many builds are waiting; try again when the current build is done",
                status=429,
            )

    def _background(self, coro: Any) -> None:
        job: asyncio.Task[Any] = asyncio.create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._job_done)

    def _job_done(self, job: asyncio.Task[Any]) -> None:
        self._jobs.discard(job)
        exc = None if job.cancelled() else job.exception()
        if isinstance(exc, KnowledgeBaseError | UnsupportedDocumentError):
            logger.info("knowledge-base build failed: %s", exc)  # the owner's to fix
        elif exc is not None:
            logger.error("knowledge-base build failed", exc_info=exc)

    def _embed_chunks(
        self, chunks: Sequence[_Chunk], progress: BuildProgress | None = None
    ) -> npt.NDArray[np.float32]:
        """Embed in batches of ``embed_batch``, checking between batches whether the store is
        closing and counting each batch in ``progress``."""
        self._wait_for_model(progress)
        if progress is not None:
            progress.set_total(len(chunks))
        parts = []
        for start in range(0, len(chunks), self.embed_batch):
            self._check_cancel()
            batch = chunks[start : start + self.embed_batch]
            parts.append(self.embedder.encode([c.searchable for c in batch]))
            if progress is not None:
                progress.advance(len(batch))
        self._check_cancel()
        if not parts:
            return self.embedder.encode([])
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _chunks_for(self, doc_id: str, filename: str, text: str) -> list[_Chunk]:
        return [
            _Chunk(doc_id=doc_id, text=p.text, source=filename, context=p.context)
            for p in chunk_document(text, size=self.chunk_size, overlap=self.chunk_overlap)
        ]

    def _extract(self, filename: str, data: bytes) -> tuple[str, str]:
        try:
            return extract_text(filename, data, self.extract_limits, cancel=self._cancel)
        except DocumentLimitError as exc:
            raise KnowledgeBaseError(
                f"{filename}: {exc}; nothing was added", status=exc.status
            ) from exc

    def _check_chunk_count(self, count: int) -> None:
        if count > self.max_chunks:
            raise KnowledgeBaseError(
                f"the knowledge base would hold {count} chunks, above the {self.max_chunks} "
                "chunk limit; split it into several bases",
                status=413,
            )

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
        safe_join(path, "docs").mkdir(parents=True, exist_ok=True)
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
        """Documents, chunk and vector counts, embedding model, build time and build progress
        of a base.

        Read in a thread of its own, not the build pool: a status poll answers while builds
        keep every build worker busy.

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        return await asyncio.to_thread(self._status, str(kb_id))

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
        progress: BuildProgress | None = None,
    ) -> DocumentInfo:
        if chunks is None:
            kind, text = self._extract(filename, data)
            chunks = self._chunks_for(doc_id, filename, text)
            if not chunks:
                raise KnowledgeBaseError(f"{filename}: no text found", status=422)
        self._wait_for_model(progress)  # a base never built needs the model's dimension
        old = self._load(kb_id)
        self._check_chunk_count(len(old.chunks) + len(chunks))
        vectors = self._embed_chunks(chunks, progress)
        index = faiss.clone_index(old.index) if old.index.ntotal else _new_index(vectors.shape[1])
        index.add(vectors)
        suffix = _doc_suffix(kind, filename)
        if suffix not in _DOC_SUFFIXES:
            raise KnowledgeBaseError(f"{filename}: unsupported file name", status=415)
        self._check_cancel()
        self._write_atomic(safe_join(self._docs_dir(kb_id), f"{doc_id}{suffix}"), data)
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
        self._finish(
            kb_id, _Loaded(index=index, chunks=old.chunks + tuple(chunks)), meta, progress
        )
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
        kb_id, filename, kind = self._check_upload(str(kb_id), filename, data)
        doc_id = uuid.uuid4().hex[:12]
        return await self._tracked(
            kb_id, filename, self._add_sync, kb_id, doc_id, filename, data, None, kind
        )

    def _check_upload(self, kb_id: str, filename: str, data: bytes) -> tuple[str, str, str]:
        """``(kb_id, clean file name, kind)`` of an upload, or the error refusing it."""
        self._existing_dir(kb_id)
        if len(data) > self.max_upload_bytes:
            raise KnowledgeBaseError(
                f"{filename}: {len(data)} bytes is above the {self.max_upload_bytes} limit",
                status=413,
            )
        filename = PurePath(filename.replace("\\", "/")).name or "document.txt"
        return kb_id, filename, document_kind(filename, data)

    async def start_add_document(
        self, kb_id: str, filename: str, data: bytes
    ) -> tuple[str, str, dict[str, Any]]:
        """Check an upload like :meth:`add_document`, then add it in the background.

        What only reading the document can tell (no text, too many passages, a damaged PDF)
        ends the build as ``failed`` with the reason; follow it with :meth:`progress`.

        Returns:
            ``(doc_id, clean file name, progress snapshot)``; the snapshot says ``building``.

        Raises:
            KnowledgeBaseError: unknown base (404), too large (413), too many builds waiting
                (429, see :data:`MAX_QUEUED_PER_BASE`), shutting down (503).
            UnsupportedDocumentError: unsupported file type.
        """
        self._check_cancel()
        kb_id, filename, kind = self._check_upload(str(kb_id), filename, data)
        self._check_room(kb_id)
        doc_id = uuid.uuid4().hex[:12]
        tracker = self._tracker(kb_id)
        tracker.enqueue()
        job = self._tracked(
            kb_id, filename, self._add_sync, kb_id, doc_id, filename, data, None, kind, queued=True
        )
        self._background(job)
        return doc_id, filename, tracker.snapshot()

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
        if not _ID_RE.match(doc_id):
            raise KnowledgeBaseError(f"document {doc_id[:80]!r} not found", status=404)
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
        docs_dir = self._docs_dir(kb_id)
        for suffix in sorted(_DOC_SUFFIXES):
            safe_join(docs_dir, f"{doc_id}{suffix}").unlink(missing_ok=True)

    async def delete_document(self, kb_id: str, doc_id: str) -> None:
        """Remove a document and its vectors (no re-embedding needed).

        Raises:
            KnowledgeBaseError: unknown base or document (404).
        """
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        async with self._lock(kb_id):
            await self._run(self._delete_document_sync, kb_id, str(doc_id))

    def _rebuild_sync(self, kb_id: str, progress: BuildProgress | None = None) -> None:
        meta = self._read_meta(kb_id)
        documents = meta.get("documents")
        if not isinstance(documents, list) or not all(isinstance(d, dict) for d in documents):
            raise KnowledgeBaseError(f"knowledge base {kb_id!r} has a damaged kb.json", status=409)
        # Check every entry before reading any file: a hostile entry reads nothing.
        paths = [self._doc_path(kb_id, doc) for doc in documents]
        chunks: list[_Chunk] = []
        for doc, path in zip(documents, paths, strict=True):
            self._check_cancel()
            if not path.is_file():
                raise KnowledgeBaseError(
                    f"document {doc['id']!r} has no stored file; delete it", status=409
                )
            data = path.read_bytes()
            if doc["kind"] == "qa":
                question, answer = _parse_qa(data, doc["id"], status=409)
                doc_chunks = [
                    _Chunk(
                        doc_id=doc["id"],
                        source="Q&A",
                        answer=answer,
                        text=f"Q: {question}\nA: {answer}",
                    )
                ]
            else:
                _, text = self._extract(doc["filename"], data)
                doc_chunks = self._chunks_for(doc["id"], doc["filename"], text)
            doc["chunks"] = len(doc_chunks)
            chunks.extend(doc_chunks)
            self._check_chunk_count(len(chunks))
        vectors = self._embed_chunks(chunks, progress)
        index = _new_index(self.embedder.dim)
        if len(chunks):
            index.add(vectors)
        self._finish(kb_id, _Loaded(index=index, chunks=tuple(chunks)), meta, progress)
        logger.info("kb %s: rebuilt, %d chunks", kb_id, len(chunks))

    async def rebuild(self, kb_id: str) -> KBStatus:
        """Re-parse, re-chunk and re-embed every document (after a model or chunking change).

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        await self._tracked(kb_id, None, self._rebuild_sync, kb_id)
        return await self.status(kb_id)

    async def start_rebuild(self, kb_id: str) -> KBStatus:
        """:meth:`rebuild` in the background; the returned status's ``build`` says
        ``building`` (follow it with :meth:`progress`).

        Raises:
            KnowledgeBaseError: unknown base (404), too many builds waiting (429).
        """
        self._check_cancel()
        kb_id = str(kb_id)
        self._existing_dir(kb_id)
        self._check_room(kb_id)
        self._tracker(kb_id).enqueue()
        self._background(self._tracked(kb_id, None, self._rebuild_sync, kb_id, queued=True))
        return await self.status(kb_id)

    # -- search -----------------------------------------------------------------------------

    def _lexical_index(self, kb_id: str, loaded: _Loaded) -> LexicalIndex:
        cached = self._lexical.get(kb_id)
        if cached is not None and cached[0] is loaded:
            return cached[1]
        index = LexicalIndex([c.searchable for c in loaded.chunks])
        self._lexical[kb_id] = (loaded, index)
        return index

    def _search_sync(self, kb_ids: Sequence[str], query: str, k: int) -> list[SearchResult]:
        """Hybrid search: embedding and BM25 rankings fused by reciprocal rank fusion."""
        vector = self.embedder.encode([query])
        faiss.omp_set_num_threads(1)  # one thread is faster for small batches (issue 5)
        terms = content_terms(query)
        pool = max(4 * k, 20)
        # Every candidate from either ranking, keyed by (kb_id, row).
        cosine: dict[tuple[str, int], float] = {}
        lexical: dict[tuple[str, int], float] = {}
        idfs: dict[str, dict[str, float]] = {}
        for kb_id in kb_ids:
            loaded = self._load(kb_id)
            n = loaded.index.ntotal
            if n == 0:
                continue
            scores, ids = loaded.index.search(vector, min(pool, n))
            for score, idx in zip(scores[0], ids[0], strict=True):
                if idx >= 0:
                    cosine[(kb_id, int(idx))] = float(score)
            lex = self._lexical_index(kb_id, loaded)
            idfs[kb_id] = lex.idf
            bm25 = lex.scores(query)
            for idx in np.argsort(-bm25)[:pool]:
                if bm25[idx] > 0:
                    lexical[(kb_id, int(idx))] = float(bm25[idx])
        keys = list(dict.fromkeys([*cosine, *lexical]))
        missing: dict[str, list[int]] = {}
        for kb_id, idx in keys:
            if (kb_id, idx) not in cosine:
                missing.setdefault(kb_id, []).append(idx)
        for kb_id, rows in missing.items():  # lexical-only hits still get their cosine
            vectors = np.asarray(
                [self._load(kb_id).index.reconstruct(i) for i in rows], dtype=np.float32
            )
            for idx, score in zip(rows, vectors @ vector[0], strict=True):
                cosine[(kb_id, idx)] = float(score)
        fused = rrf(
            [
                sorted(range(len(keys)), key=lambda i: -cosine[keys[i]]),
                sorted(
                    (i for i in range(len(keys)) if keys[i] in lexical),
                    key=lambda i: -lexical[keys[i]],
                ),
            ]
        )
        order = sorted(range(len(keys)), key=lambda i: -fused.get(i, 0.0))[:k]
        results: list[SearchResult] = []
        for i in order:
            kb_id, idx = keys[i]
            chunk = self._load(kb_id).chunks[idx]
            results.append(
                SearchResult(
                    text=chunk.text,
                    score=cosine[keys[i]],
                    source=chunk.source,
                    kb_id=kb_id,
                    doc_id=chunk.doc_id,
                    answer=chunk.answer,
                    context=chunk.context,
                    lexical=round(coverage(terms, chunk.searchable, idfs[kb_id]), 4),
                )
            )
        return results

    def _topics_sync(self, kb_id: str, limit: int) -> list[dict[str, str]]:
        loaded = self._load(kb_id)
        # A document's first heading is its title when it has headings below it.
        depth: dict[str, int] = {}
        for chunk in loaded.chunks:
            parts = [p for p in chunk.context.split(" › ") if p.strip()]
            depth[chunk.doc_id] = max(depth.get(chunk.doc_id, 0), len(parts))
        topics: dict[str, list[str]] = {}
        for chunk in loaded.chunks:
            if chunk.answer:
                continue  # a Q/A pair is already an answer, not a section
            parts = [p.strip() for p in chunk.context.split(" › ") if p.strip()]
            if not parts or (len(parts) == 1 and depth.get(chunk.doc_id, 0) > 1):
                continue
            title = parts[-1]
            if title not in topics:
                if len(topics) >= limit:
                    continue
                topics[title] = []
            topics[title].append(chunk.text)
        return [{"title": t, "text": " ".join(texts)} for t, texts in topics.items()]

    async def topics(self, kb_id: str, limit: int = 8) -> list[dict[str, str]]:
        """The base's sections in document order: ``{"title": heading, "text": its passages}``
        (at most ``limit``; a document's title heading is skipped when it has sections), for a
        menu of topics built from the documents.

        Raises:
            KnowledgeBaseError: unknown base (404).
        """
        return await self._run(self._topics_sync, str(kb_id), max(0, min(limit, 50)))

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
            Results best first: the embedding ranking (cosine ``score``) and the BM25 ranking
            of the same query fused by reciprocal rank fusion, so a passage that shares the
            question's rare words ranks high even when the embedding model misses it (names,
            prices, other languages). ``lexical`` says how much of the question it covers.

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
        loaded = self._load(kb_id)
        documents = meta.get("documents") or []
        # Only checked entries name files (a hostile kb.json entry is a 409, never read).
        paths = [self._doc_path(kb_id, d) for d in documents if isinstance(d, dict)]
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
            "documents": documents,
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=1))
            zf.writestr("chunks.jsonl", "".join(c.to_json() + "\n" for c in loaded.chunks))
            zf.writestr("index.faiss", bytes(faiss.serialize_index(loaded.index)))
            for doc_file in paths:
                if doc_file.is_file():
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

    # An import reads an attacker's archive: every entry it uses is looked up by an exact name
    # the store builds, must be a plain file, and is decompressed in blocks against limits on
    # what decompression actually yields (declared sizes are only used to refuse early).

    def _entry(
        self, entries: dict[str, zipfile.ZipInfo], name: str, cap: int, budget: _Budget
    ) -> zipfile.ZipInfo:
        info = entries.get(name)
        if info is None:
            raise KnowledgeBaseError(f"{name[:120]} is missing from the archive", status=400)
        mode = _entry_mode(info)
        if info.is_dir() or (mode and not stat.S_ISREG(mode)):
            raise KnowledgeBaseError(f"{name[:120]} is not a regular file", status=400)
        if info.flag_bits & 0x1:
            raise KnowledgeBaseError(f"{name[:120]} is encrypted", status=400)
        if info.file_size > cap or info.file_size > budget.left:
            raise KnowledgeBaseError(
                f"{name[:120]} expands to {info.file_size} bytes, above the limit", status=413
            )
        if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > _MAX_RATIO * max(
            info.compress_size, 1
        ):
            raise KnowledgeBaseError(
                f"{name[:120]} expands more than {_MAX_RATIO} times (a decompression bomb?)",
                status=413,
            )
        return info

    @staticmethod
    def _blocks(
        zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, budget: _Budget
    ) -> Iterator[bytes]:
        """The entry's bytes in blocks, counting what is actually decompressed."""
        total = 0
        with _archive_errors(info.filename), zf.open(info) as fh:
            while block := fh.read(_STREAM_BLOCK):
                total += len(block)
                if total > cap:
                    raise KnowledgeBaseError(
                        f"{info.filename[:120]} expands beyond its {cap} byte limit", status=413
                    )
                budget.take(len(block))
                yield block

    def _read_manifest(
        self, zf: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo], budget: _Budget
    ) -> dict[str, Any]:
        info = self._entry(entries, "manifest.json", _MAX_MANIFEST_BYTES, budget)
        raw = b"".join(self._blocks(zf, info, _MAX_MANIFEST_BYTES, budget))
        with _archive_errors("manifest.json"):
            manifest = json.loads(raw.decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
            raise KnowledgeBaseError("not a Flotilla knowledge-base export", status=400)
        version = manifest.get("version", EXPORT_VERSION)
        if not _is_int(version) or version < 1:
            raise KnowledgeBaseError("manifest.json: bad version", status=400)
        if version > EXPORT_VERSION:
            raise KnowledgeBaseError("export made by a newer version", status=400)
        count = manifest.get("chunks")
        if not _is_int(count) or count < 0:
            raise KnowledgeBaseError("manifest.json: chunks must be a count", status=400)
        self._check_chunk_count(count)
        documents = manifest.get("documents", [])
        if not isinstance(documents, list) or len(documents) > self.max_import_entries:
            raise KnowledgeBaseError("manifest.json: bad documents list", status=400)
        return manifest

    def _plan_documents(
        self, manifest: dict[str, Any], entries: dict[str, zipfile.ZipInfo], budget: _Budget
    ) -> list[_ImportDoc]:
        """The manifest's documents, each with a new id and its checked archive entry."""
        planned: list[_ImportDoc] = []
        seen: set[str] = set()
        for doc in manifest.get("documents", []):
            old_id = doc.get("id") if isinstance(doc, dict) else None
            if not isinstance(old_id, str) or not _ID_RE.match(old_id) or old_id in seen:
                raise KnowledgeBaseError(
                    f"manifest.json: document id {str(old_id)[:80]!r} is not valid", status=400
                )
            seen.add(old_id)
            kind = doc.get("kind")
            filename = _clean_filename(doc.get("filename"))
            suffix = _doc_suffix(str(kind), filename)
            if kind not in _DOC_KINDS or suffix not in _DOC_SUFFIXES:
                raise KnowledgeBaseError(
                    f"manifest.json: document {old_id!r} has an unsupported kind or name",
                    status=400,
                )
            cap = _MAX_QA_BYTES if kind == "qa" else self.max_upload_bytes
            info = self._entry(entries, f"docs/{old_id}{suffix}", cap, budget)
            added_at = doc.get("added_at")
            planned.append(
                _ImportDoc(
                    old_id=old_id,
                    new_id=uuid.uuid4().hex[:12],
                    kind=str(kind),
                    filename="Q&A" if kind == "qa" else filename,
                    suffix=suffix,
                    added_at=added_at[:40] if isinstance(added_at, str) else _now(),
                    info=info,
                    cap=cap,
                )
            )
        return planned

    def _read_chunks(
        self,
        zf: zipfile.ZipFile,
        entries: dict[str, zipfile.ZipInfo],
        budget: _Budget,
        new_ids: dict[str, str],
        expected: int,
    ) -> tuple[_Chunk, ...]:
        cap = budget.left
        info = self._entry(entries, "chunks.jsonl", cap, budget)
        chunks: list[_Chunk] = []
        total = 0
        with _archive_errors("chunks.jsonl"), zf.open(info) as fh:
            while line := fh.readline(_MAX_CHUNK_LINE_BYTES + 1):
                total += len(line)
                budget.take(len(line))
                if len(line) > _MAX_CHUNK_LINE_BYTES:
                    raise KnowledgeBaseError(
                        f"chunks.jsonl: a line is longer than {_MAX_CHUNK_LINE_BYTES} bytes",
                        status=400,
                    )
                if not line.strip():
                    continue
                if len(chunks) >= expected:
                    raise KnowledgeBaseError(
                        "chunks.jsonl holds more chunks than manifest.json says", status=400
                    )
                chunks.append(_parse_chunk(line, new_ids, len(chunks) + 1))
        if len(chunks) != expected:
            raise KnowledgeBaseError(
                f"chunks.jsonl holds {len(chunks)} chunks, manifest.json says {expected}",
                status=400,
            )
        return tuple(chunks)

    def _read_index(
        self,
        zf: zipfile.ZipFile,
        entries: dict[str, zipfile.ZipInfo],
        budget: _Budget,
        manifest: dict[str, Any],
        count: int,
    ) -> Any:
        """The archive's vectors as a new index, after checking every number first.

        The header must describe exactly ``count`` vectors of the embedder's dimension, as the
        manifest says, and the entry must be exactly that long, before anything is allocated;
        faiss never parses the archive's bytes (the vectors are copied into a new index).
        """
        dim, vectors = manifest.get("dim"), manifest.get("vectors")
        if dim != self.embedder.dim or vectors != count:
            raise KnowledgeBaseError(
                f"manifest.json: {vectors!r} vectors of dimension {dim!r} do not match "
                f"{count} chunks of dimension {self.embedder.dim}",
                status=400,
            )
        size = _flat_index_size(self.embedder.dim, count)
        info = self._entry(entries, "index.faiss", size, budget)
        if info.file_size != size:
            raise KnowledgeBaseError(
                f"index.faiss is {info.file_size} bytes; {count} vectors of dimension "
                f"{self.embedder.dim} take {size}",
                status=400,
            )
        raw = b"".join(self._blocks(zf, info, size, budget))
        if len(raw) != size or _flat_index_header(raw) != (self.embedder.dim, count):
            raise KnowledgeBaseError("index.faiss does not match manifest.json", status=400)
        matrix = np.frombuffer(raw, dtype="<f4", offset=_FLAT_HEADER.size)
        matrix = np.ascontiguousarray(matrix.reshape(count, self.embedder.dim), dtype=np.float32)
        if not np.isfinite(matrix).all():
            raise KnowledgeBaseError("index.faiss holds vectors that are not numbers", status=400)
        index = _new_index(self.embedder.dim)
        if count:
            index.add(matrix)
        return index

    def _copy_document(
        self, zf: zipfile.ZipFile, doc: _ImportDoc, docs_dir: Path, budget: _Budget
    ) -> int:
        target = safe_join(docs_dir, f"{doc.new_id}{doc.suffix}")
        if doc.kind == "qa":
            data = b"".join(self._blocks(zf, doc.info, doc.cap, budget))
            _parse_qa(data, doc.old_id, status=400)
            self._write_atomic(target, data)
            return len(data)
        size = 0
        fd, tmp = tempfile.mkstemp(dir=docs_dir, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                for block in self._blocks(zf, doc.info, doc.cap, budget):
                    self._check_cancel()
                    fh.write(block)
                    size += len(block)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def _import_sync(self, data: bytes, kb_id: str, name: str | None) -> None:
        path = self._dir(kb_id)
        try:
            self._import_archive(data, kb_id, path, name)
        except BaseException:
            self._loaded.pop(kb_id, None)
            shutil.rmtree(path, ignore_errors=True)
            raise

    def _import_archive(self, data: bytes, kb_id: str, path: Path, name: str | None) -> None:
        with _archive_errors("the archive"):
            zf = zipfile.ZipFile(io.BytesIO(data))
        with zf:
            infos = zf.infolist()
            if len(infos) > self.max_import_entries:
                raise KnowledgeBaseError(
                    f"archive has {len(infos)} entries, above the {self.max_import_entries} "
                    "entry limit",
                    status=413,
                )
            entries: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                if info.filename in entries:
                    raise KnowledgeBaseError(
                        f"archive holds {info.filename[:120]!r} twice", status=400
                    )
                entries[info.filename] = info
            budget = _Budget(self.max_import_expanded_bytes)
            manifest = self._read_manifest(zf, entries, budget)
            planned = self._plan_documents(manifest, entries, budget)
            new_ids = {d.old_id: d.new_id for d in planned}
            chunks = self._read_chunks(zf, entries, budget, new_ids, manifest["chunks"])
            index = None
            same_model = manifest.get("embedding_model") == self.embedder.model_name
            if same_model and "index.faiss" in entries:
                index = self._read_index(zf, entries, budget, manifest, len(chunks))
            docs_dir = safe_join(path, "docs")
            docs_dir.mkdir(parents=True, exist_ok=True)
            documents = []
            for doc in planned:
                size = self._copy_document(zf, doc, docs_dir, budget)
                documents.append(
                    DocumentInfo(
                        id=doc.new_id,
                        filename=doc.filename,
                        kind=doc.kind,
                        size_bytes=size,
                        chunks=sum(1 for c in chunks if c.doc_id == doc.new_id),
                        added_at=doc.added_at,
                    ).as_dict()
                )
        if index is None:
            logger.info(
                "import: re-embedding %d chunks (model %s -> %s)",
                len(chunks),
                str(manifest.get("embedding_model"))[:100],
                self.embedder.model_name,
            )
            index = _new_index(self.embedder.dim)
            if chunks:
                index.add(self._embed_chunks(chunks))
        exported = manifest.get("name")
        meta = {
            "id": kb_id,
            "name": name or (exported[:200] if isinstance(exported, str) else "") or kb_id,
            "created_at": _now(),
            "documents": documents,
        }
        self._save(kb_id, _Loaded(index=index, chunks=chunks), meta)

    async def import_zip(
        self, data: bytes, *, name: str | None = None, kb_id: str | None = None
    ) -> KBStatus:
        """Create a new base from an :meth:`export_zip` archive (read as hostile input).

        Documents get new ids and their bytes come only from their ``docs/{id}{suffix}``
        entries; no id or name from the archive becomes a path. Every entry used is
        decompressed in blocks against ``max_import_expanded_bytes`` (what it yields, not what
        its header says), and chunks are bounded by ``max_chunks``. The stored index is reused
        when the embedding model matches and its header and length agree with the manifest
        (checked before anything is allocated; the vectors are copied into a new index);
        otherwise the chunks are re-embedded with the current model, in cancellable batches.

        Args:
            data: the ZIP bytes.
            name: display name; the exported name when ``None``.
            kb_id: id for the new base; a new one when ``None``.

        Returns:
            Status of the new base.

        Raises:
            KnowledgeBaseError: above ``max_import_bytes`` or another limit (413), not an
                export, damaged or inconsistent (400), id in use (409), shutting down (503).
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
            # The job removes its half-made base itself on any failure (also when cancelled).
            await self._run(self._import_sync, data, kb_id, name)
        return await self.status(kb_id)
