"""Knowledge-base build progress: phases, passages done / total, failures, concurrent reads.

The store's own batches are observed through a thin seam: an embedder that delegates to the
real MiniLM and, before each batch, records what :meth:`KnowledgeBaseStore.progress` says
(or waits for the test, for the model-warming case). Nothing under test sleeps.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from orchestrator.ai.rag import KnowledgeBaseError, KnowledgeBaseStore
from orchestrator.ai.rag.embeddings import Embedder
from orchestrator.ai.rag.progress import ACTIVE_PHASES, PHASES, BuildProgress
from orchestrator.ai.rag.store import MAX_QUEUED_PER_BASE


def long_document(paragraphs: int) -> str:
    """Distinct paragraphs of ~350 characters: about one passage each at chunk_size=400."""
    return "\n\n".join(
        f"Section {i}. The workshop number {i} repairs bicycles of model {i * 7} and sells "
        f"spare part {i * 13}; it opens at {8 + i % 4}:00 and closes at {16 + i % 5}:00 on "
        f"weekdays, takes bookings by phone for repair slot {i}, and keeps a stock of "
        f"{i * 3} inner tubes, {i * 2} chains and {i + 5} saddles for the usual models."
        for i in range(paragraphs)
    )


class ObservedEmbedder:
    """The real embedder; ``before_batch`` runs before each ``encode`` (the seam)."""

    def __init__(self, real: Embedder, *, loaded: bool = True) -> None:
        self.real = real
        self.before_batch: Callable[[int], None] = lambda n: None
        self.before_load: Callable[[], None] = lambda: None
        self._loaded = loaded

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def dim(self) -> int:
        return self.real.dim

    @property
    def model_name(self) -> str:
        return self.real.model_name

    def load(self) -> Any:
        if not self._loaded:
            self.before_load()
            self._loaded = True
        return self.real.load()

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if texts:
            self.before_batch(len(texts))
        return self.real.encode(texts)


@pytest.fixture
def observed(embedder: Embedder) -> ObservedEmbedder:
    return ObservedEmbedder(embedder)


def make_store(tmp_path: Path, emb: Any, **kw: Any) -> KnowledgeBaseStore:
    return KnowledgeBaseStore(tmp_path / "kb", emb, chunk_size=400, chunk_overlap=0, **kw)


async def wait_until_idle(store: KnowledgeBaseStore, kb_id: str) -> dict[str, Any]:
    """Poll the progress until no build runs (the test waits; the store never sleeps)."""
    for _ in range(3000):
        snap = store.progress(kb_id)
        if not snap["building"]:
            return snap
        await asyncio.sleep(0.01)
    raise AssertionError(f"the build never finished: {snap}")


# -- BuildProgress on its own -------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_phases_counts_and_last_build() -> None:
    clock = FakeClock()
    p = BuildProgress(clock=clock)
    assert p.snapshot()["phase"] == "idle"
    assert not p.snapshot()["building"]
    p.enqueue()
    assert p.snapshot()["phase"] == "queued"
    assert p.snapshot()["building"]
    p.start("menu.txt", queued=True)
    snap = p.snapshot()
    assert (snap["phase"], snap["document"], snap["queued"]) == ("reading", "menu.txt", 0)
    assert snap["started_at"]
    assert snap["label"] == "Reading documents"
    p.set_total(10)
    seen = []
    for _ in range(4):
        p.advance(3)  # the last batch would overshoot: capped at the total
        seen.append(p.snapshot()["done"])
    assert seen == [3, 6, 9, 10]
    clock.now += 2.5
    assert p.snapshot()["elapsed_s"] == 2.5
    p.set_phase("writing")
    p.finish()
    snap = p.snapshot()
    assert snap["phase"] == "ready"
    assert not snap["building"]
    assert (snap["done"], snap["total"]) == (10, 10)
    assert snap["last"]["passages"] == 10
    assert snap["last"]["duration_s"] == 2.5
    assert snap["elapsed_s"] is None
    assert snap["error"] is None
    with pytest.raises(ValueError, match="not an active build phase"):
        p.set_phase("ready")  # only finish() makes a build ready
    assert set(PHASES) >= ACTIVE_PHASES


def test_failure_keeps_the_reason_and_the_last_good_build() -> None:
    p = BuildProgress({"duration_s": 1.0, "passages": 7, "finished_at": "2026-01-01T00:00:00"})
    assert p.snapshot()["phase"] == "ready"  # a base built before this process started
    p.enqueue()
    p.start("scan.pdf", queued=True)
    p.fail("scan.pdf: no text found")
    snap = p.snapshot()
    assert snap["phase"] == "failed"
    assert not snap["building"]
    assert snap["error"] == "scan.pdf: no text found"
    assert snap["label"] == "Build failed"
    assert snap["last"]["passages"] == 7
    p.start(None)  # the next build clears the error
    assert p.snapshot()["error"] is None
    p.fail("")
    assert p.snapshot()["error"] == "the build failed"
    # A queued build that never started (its wait was cancelled) is no longer counted.
    p.enqueue()
    p.fail("stopped", queued=True)
    assert p.snapshot()["queued"] == 0
    assert not p.snapshot()["building"]


def test_concurrent_readers_see_consistent_monotonic_snapshots() -> None:
    p = BuildProgress()
    total = 20_000
    p.start("big.txt")
    p.set_total(total)
    stop = threading.Event()
    problems: list[str] = []

    def read() -> None:
        last = -1
        while not stop.is_set():
            snap = p.snapshot()
            if snap["phase"] == "embedding":
                if not (last <= snap["done"] <= snap["total"] == total):
                    problems.append(f"{last} -> {snap['done']} of {snap['total']}")
                last = snap["done"]
            elif snap["phase"] == "ready" and snap["done"] != total:
                problems.append(f"ready at {snap['done']}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for _ in range(total):
        p.advance(1)
    p.finish()
    stop.set()
    for t in readers:
        t.join(10)
    assert problems == []
    assert p.snapshot()["done"] == total


# -- the store's builds -------------------------------------------------------------------


async def test_upload_reports_each_batch_until_ready(tmp_path: Path, observed: ObservedEmbedder):
    store = make_store(tmp_path, observed, embed_batch=4)
    try:
        kb = await store.create("bikes")
        seen: list[dict[str, Any]] = []
        observed.before_batch = lambda n: seen.append(store.progress(kb.id))
        info = await store.add_document(kb.id, "bikes.txt", long_document(30).encode())
        assert info.chunks >= 20
        assert [s["phase"] for s in seen] == ["embedding"] * len(seen)
        assert len(seen) == -(-info.chunks // 4)  # one report per batch of 4
        assert [s["done"] for s in seen] == list(range(0, info.chunks, 4))
        assert {s["total"] for s in seen} == {info.chunks}
        assert all(s["building"] and s["document"] == "bikes.txt" for s in seen)
        final = store.progress(kb.id)
        assert final["phase"] == "ready"
        assert not final["building"]
        assert final["done"] == final["total"] == info.chunks
        assert final["last"]["passages"] == info.chunks
        assert final["last"]["duration_s"] >= 0
        status = await store.status(kb.id)
        assert status.build == final
        # The last build survives a restart (kept in kb.json).
        meta = json.loads((tmp_path / "kb" / kb.id / "kb.json").read_text())
        assert meta["last_build"] == final["last"]
    finally:
        store.close()
    again = make_store(tmp_path, observed)
    try:
        snap = again.progress(kb.id)
        assert snap["phase"] == "ready"
        assert snap["last"] == final["last"]
    finally:
        again.close()


async def test_rebuild_reports_progress_over_every_document(
    tmp_path: Path, observed: ObservedEmbedder
) -> None:
    store = make_store(tmp_path, observed, embed_batch=8)
    try:
        kb = await store.create("two docs")
        a = await store.add_document(kb.id, "a.txt", long_document(12).encode())
        b = await store.add_document(kb.id, "b.md", long_document(9).encode())
        seen: list[int] = []
        observed.before_batch = lambda n: seen.append(store.progress(kb.id)["done"])
        status = await store.rebuild(kb.id)
        assert status.chunks == a.chunks + b.chunks
        assert seen == list(range(0, status.chunks, 8))
        assert status.build is not None
        assert status.build["document"] is None
        assert status.build["last"]["passages"] == status.chunks
    finally:
        store.close()


async def test_failed_build_says_why(tmp_path: Path, observed: ObservedEmbedder) -> None:
    store = make_store(tmp_path, observed, max_chunks=5)
    try:
        kb = await store.create("limits")
        with pytest.raises(KnowledgeBaseError) as info:
            await store.add_document(kb.id, "blank.txt", b"   \n\n   ")
        assert info.value.status == 422
        snap = store.progress(kb.id)
        assert snap["phase"] == "failed"
        assert not snap["building"]
        assert snap["error"] == "blank.txt: no text found"
        # In the background the same refusal ends the build as failed with the reason.
        doc_id, name, started = await store.start_add_document(
            kb.id, "huge.txt", long_document(20).encode()
        )
        assert started["building"]
        assert name == "huge.txt"
        assert doc_id
        snap = await wait_until_idle(store, kb.id)
        assert snap["phase"] == "failed"
        assert "above the 5 chunk limit" in snap["error"]
        assert (await store.status(kb.id)).documents == []  # nothing half-added
        # An upload refused before any work (unknown base, too large) starts no build.
        with pytest.raises(KnowledgeBaseError) as info:
            await store.start_add_document("nosuchbase", "a.txt", b"text")
        assert info.value.status == 404
    finally:
        store.close()


async def test_background_upload_answers_at_once_then_becomes_ready(
    tmp_path: Path, observed: ObservedEmbedder
) -> None:
    store = make_store(tmp_path, observed, embed_batch=4)
    gate, reached = threading.Event(), threading.Event()

    def hold(n: int) -> None:  # the first batch waits for the test
        reached.set()
        assert gate.wait(30)
        observed.before_batch = lambda n: None

    observed.before_batch = hold
    try:
        kb = await store.create("background")
        _, _, started = await store.start_add_document(
            kb.id, "bikes.txt", long_document(12).encode()
        )
        assert started["building"]
        assert started["phase"] in ACTIVE_PHASES
        assert await asyncio.to_thread(reached.wait, 30)
        snap = store.progress(kb.id)
        assert (snap["phase"], snap["done"]) == ("embedding", 0)
        assert snap["total"] >= 10
        status = await store.status(kb.id)  # status answers while the build runs
        assert status.build is not None
        assert status.build["building"]
        # A second upload meanwhile is queued behind the first, not lost.
        await store.start_add_document(kb.id, "more.txt", long_document(3).encode())
        assert store.progress(kb.id)["queued"] == 1
        gate.set()
        snap = await wait_until_idle(store, kb.id)
        assert snap["phase"] == "ready"
        assert snap["document"] == "more.txt"
        names = [d.filename for d in (await store.status(kb.id)).documents]
        assert names == ["bikes.txt", "more.txt"]
        assert (await store.search(kb.id, "workshop number 7 bicycles", k=1))[0].text
    finally:
        gate.set()
        store.close()


async def test_first_build_while_the_model_loads_says_so(
    tmp_path: Path, embedder: Embedder
) -> None:
    cold = ObservedEmbedder(embedder, loaded=False)
    loading, loaded = threading.Event(), threading.Event()

    def slow_load() -> None:  # the start-up warm-up still holds the model
        loading.set()
        assert loaded.wait(30)

    cold.before_load = slow_load
    store = make_store(tmp_path, cold)
    try:
        kb = await store.create("first")
        # The status of a never-built base does not wait for the model either.
        assert (await store.status(kb.id)).chunks == 0
        await store.start_add_document(kb.id, "bikes.txt", b"We repair bicycles on Mondays.")
        assert await asyncio.to_thread(loading.wait, 30)
        snap = store.progress(kb.id)
        assert snap["phase"] == "waiting_for_model"
        assert snap["building"]
        assert "model" in snap["label"]
        assert "first start" in snap["label"]
        status = await store.status(kb.id)
        assert status.build is not None
        assert status.build["phase"] == "waiting_for_model"
        loaded.set()
        snap = await wait_until_idle(store, kb.id)
        assert snap["phase"] == "ready"
        assert snap["total"] == 1
    finally:
        loaded.set()
        store.close()


async def test_background_builds_waiting_are_bounded(
    tmp_path: Path, observed: ObservedEmbedder
) -> None:
    """Each waiting build holds its upload in memory: a base takes a few, then 429."""
    store = make_store(tmp_path, observed)
    gate, reached = threading.Event(), threading.Event()

    def hold(n: int) -> None:
        reached.set()
        assert gate.wait(30)

    observed.before_batch = hold
    try:
        kb = await store.create("busy")
        await store.start_add_document(kb.id, "first.txt", b"We repair bicycles on Mondays.")
        assert await asyncio.to_thread(reached.wait, 30)  # running, holding the lock
        for i in range(MAX_QUEUED_PER_BASE):
            await store.start_add_document(kb.id, f"doc{i}.txt", b"Saddles are in stock.")
        assert store.progress(kb.id)["queued"] == MAX_QUEUED_PER_BASE
        with pytest.raises(KnowledgeBaseError) as info:
            await store.start_add_document(kb.id, "one-too-many.txt", b"Chains too.")
        assert info.value.status == 429
        with pytest.raises(KnowledgeBaseError) as info:
            await store.start_rebuild(kb.id)
        assert info.value.status == 429
        gate.set()
        snap = await wait_until_idle(store, kb.id)
        assert snap["phase"] == "ready"
        assert len((await store.status(kb.id)).documents) == 1 + MAX_QUEUED_PER_BASE
        # Room again once they are done.
        await store.start_add_document(kb.id, "later.txt", b"Open on Saturdays.")
        assert (await wait_until_idle(store, kb.id))["phase"] == "ready"
    finally:
        gate.set()
        store.close()
