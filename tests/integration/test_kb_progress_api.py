"""Knowledge-base build progress through the admin API (SQLite and PostgreSQL).

A build is held between its batches by a thin seam, an embedder that delegates to the real
MiniLM but waits for the test before each batch, so the progress the API reports while a
build runs is checked deterministically (no sleeps anywhere under test).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actors, make_settings

BATCH = 4
UPLOAD_LIMIT = 64 * 1024


def long_document(paragraphs: int) -> bytes:
    """Distinct paragraphs of ~350 characters: about one passage each at chunk_size=400."""
    return "\n\n".join(
        f"Section {i}. The workshop number {i} repairs bicycles of model {i * 7} and sells "
        f"spare part {i * 13}; it opens at {8 + i % 4}:00 and closes at {16 + i % 5}:00 on "
        f"weekdays, takes bookings by phone for repair slot {i}, and keeps a stock of "
        f"{i * 3} inner tubes, {i * 2} chains and {i + 5} saddles for the usual models."
        for i in range(paragraphs)
    ).encode()


class SteppedEmbedder:
    """The real embedder, one batch at a time: each ``encode`` announces itself on
    ``arrivals`` and waits for a permit (``step``) from the test."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.arrivals: queue.Queue[int] = queue.Queue()
        self.permits = threading.Semaphore(0)
        self.free = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        if texts and not self.free.is_set():
            self.arrivals.put(len(texts))
            assert self.permits.acquire(timeout=60)
        return self.real.encode(texts)  # type: ignore[no-any-return]

    def next_batch(self) -> int:
        """Wait until the build asks to embed its next batch; its size."""
        return self.arrivals.get(timeout=60)

    def step(self) -> None:
        self.permits.release()

    def release_all(self) -> None:
        self.free.set()
        for _ in range(1000):
            self.permits.release()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    """Small passages and small batches: a short document takes several batches."""
    return make_settings(
        tmp_path,
        db_url,
        ai_chunk_size=400,
        ai_chunk_overlap=0,
        ai_embed_batch=BATCH,
        ai_max_upload_bytes=UPLOAD_LIMIT,
    )


@pytest.fixture
def stepped(client: TestClient) -> Iterator[SteppedEmbedder]:
    store = client.app.state.ai.get().kb  # type: ignore[attr-defined]
    real = store.embedder
    emb = SteppedEmbedder(real)
    store.embedder = emb
    try:
        yield emb
    finally:
        emb.release_all()
        store.embedder = real


def create_base(client: TestClient, headers: dict[str, str], name: str = "Bikes") -> str:
    res = client.post("/admin/knowledge", json={"name": name}, headers=headers)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def upload(
    client: TestClient,
    headers: dict[str, str],
    kb_id: str,
    name: str,
    data: bytes,
    query: str = "?wait=false",
) -> Any:
    return client.post(
        f"/admin/knowledge/{kb_id}/documents{query}",
        files={"file": (name, data, "text/plain")},
        headers=headers,
    )


def wait_idle(client: TestClient, headers: dict[str, str], kb_id: str) -> dict[str, Any]:
    """Poll GET until no build runs (the test waits; nothing under test sleeps)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/admin/knowledge/{kb_id}", headers=headers).json()
        if not body["building"]:
            return body
        time.sleep(0.02)
    raise AssertionError(f"the build never finished: {body}")


def test_progress_while_a_background_upload_builds(
    client: TestClient, actors: Actors, stepped: SteppedEmbedder
) -> None:
    h = actors.headers["alice"]
    kb_id = create_base(client, h)
    res = upload(client, h, kb_id, "bikes.txt", long_document(14))
    assert res.status_code == 202, res.text
    body = res.json()
    assert body["building"] is True
    assert body["filename"] == "bikes.txt"
    assert body["id"]
    assert body["build"]["phase"] in ("queued", "reading", "waiting_for_model", "embedding")

    done = 0
    batches = 0
    while True:
        size = stepped.next_batch()  # the build waits before this batch
        status = client.get(f"/admin/knowledge/{kb_id}", headers=h).json()
        build = status["build"]
        assert status["building"] is True
        assert build["phase"] == "embedding"
        assert build["label"] == "Indexing passages"
        assert build["done"] == done  # exactly the batches embedded so far
        assert build["total"] >= 10
        assert build["document"] == "bikes.txt"
        assert build["started_at"]
        assert build["error"] is None
        assert status["chunks"] == 0  # the new index is not swapped in yet
        if batches == 1:
            # The list shows the same progress; a guest reads it too.
            listed = client.get("/admin/knowledge", headers=actors.headers["gary"]).json()
            (mine,) = [b for b in listed if b["id"] == kb_id]
            assert mine["build"]["done"] == done
            assert mine["building"] is True
        assert size <= BATCH
        done += size
        batches += 1
        stepped.step()
        if done == build["total"]:
            break
    assert batches >= 3
    final = wait_idle(client, h, kb_id)
    assert final["build"]["phase"] == "ready"
    assert final["build"]["done"] == final["build"]["total"] == done
    assert final["build"]["last"]["passages"] == done
    assert final["build"]["last"]["duration_s"] >= 0
    assert final["chunks"] == final["vectors"] == done
    assert [d["filename"] for d in final["documents"]] == ["bikes.txt"]
    stepped.release_all()  # a search embeds its query
    results = client.post(
        f"/admin/knowledge/{kb_id}/search",
        json={"query": "workshop number 3 bicycles", "k": 1},
        headers=h,
    ).json()["results"]
    assert results[0]["source"] == "bikes.txt"


def test_background_failure_and_rebuild(
    client: TestClient, actors: Actors, stepped: SteppedEmbedder
) -> None:
    stepped.release_all()
    h = actors.headers["alice"]
    kb_id = create_base(client, h)
    # What only reading tells (no text) fails the build with the reason, not the request.
    res = upload(client, h, kb_id, "blank.txt", b"   \n\n  ")
    assert res.status_code == 202, res.text
    failed = wait_idle(client, h, kb_id)
    assert failed["build"]["phase"] == "failed"
    assert failed["build"]["error"] == "blank.txt: no text found"
    assert failed["documents"] == []
    # The default upload still answers when the index is written, and says it is ready.
    sync = upload(client, h, kb_id, "bikes.txt", long_document(6), query="")
    assert sync.status_code == 201, sync.text
    assert sync.json()["building"] is False
    assert sync.json()["build"]["phase"] == "ready"
    assert sync.json()["build"]["last"]["passages"] == sync.json()["chunks"]
    # A rebuild in the background: 202 saying it builds, then ready over every passage.
    built = client.post(f"/admin/knowledge/{kb_id}/build?wait=false", headers=h)
    assert built.status_code == 202, built.text
    assert built.json()["building"] is True
    ready = wait_idle(client, h, kb_id)
    assert ready["build"]["phase"] == "ready"
    assert ready["build"]["document"] is None
    assert ready["build"]["last"]["passages"] == ready["chunks"] == sync.json()["chunks"]
    sync_build = client.post(f"/admin/knowledge/{kb_id}/build", headers=h)
    assert sync_build.status_code == 200
    assert sync_build.json()["building"] is False


def test_background_upload_abuse(client: TestClient, actors: Actors) -> None:
    h = actors.headers
    kb_id = create_base(client, h["alice"])
    doc = long_document(2)
    # Not a boolean.
    assert upload(client, h["alice"], kb_id, "a.txt", doc, "?wait=maybe").status_code == 422
    # Another user's base, a guest, an unknown or malformed id.
    assert upload(client, h["bob"], kb_id, "a.txt", doc).status_code == 404
    assert upload(client, h["gary"], kb_id, "a.txt", doc).status_code == 403
    assert upload(client, h["alice"], "nosuchbase", "a.txt", doc).status_code == 404
    assert upload(client, h["alice"], "bad%20id!", "a.txt", doc).status_code == 422
    assert (
        client.post(f"/admin/knowledge/{kb_id}/build?wait=false", headers=h["bob"]).status_code
        == 404
    )
    assert (
        client.post(f"/admin/knowledge/{kb_id}/build?wait=false", headers=h["gary"]).status_code
        == 403
    )
    # Refused before any build starts: unsupported type, too large.
    exe = upload(client, h["alice"], kb_id, "tool.exe", b"MZ\x90\x00")
    assert exe.status_code == 415
    big = upload(client, h["alice"], kb_id, "big.txt", b"a" * (UPLOAD_LIMIT + 1))
    assert big.status_code == 413
    status = client.get(f"/admin/knowledge/{kb_id}", headers=h["alice"]).json()
    assert status["building"] is False
    assert status["build"]["phase"] == "idle"
    assert status["build"]["label"] == "No build yet"
