"""AI admin and internal API in-process (SQLite and PostgreSQL): knowledge bases, LLM providers,
previews, usage, and the bot-facing reply / RAG / Q&A / TTS / STT routes against local fakes."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlmodel import Session

from orchestrator.db import normalize_url
from orchestrator.models import BotInstance
from orchestrator.security import create_internal_token
from tests.conftest import TEST_SECRET_KEY, Actors, make_settings
from tests.fakes.openai_api import FakeOpenAI
from tests.support.fake_thread import serve_in_thread
from tests.unit.ai.conftest import make_pdf

PROVIDER_KEY = "sk-test-provider-SECRET-abcdef123456"
UPLOAD_LIMIT = 512 * 1024
IMPORT_LIMIT = 1024 * 1024

SHOP_FACTS = [
    "Fleet Garden Shop opening hours\n"
    "Our shop on Harbour Street is open Monday to Friday from 9:00 to 18:00.\n"
    "On Saturday we open from 10:00 to 14:00. We are closed on Sunday.",
    "Delivery and returns\n"
    "We deliver garden furniture within 5 working days anywhere in the country.\n"
    "Returns are accepted within 30 days with the receipt.",
]
TXT_DOC = (
    "Gift cards\n\nFleet Garden Shop gift cards are sold in amounts of 25, 50 and 100 euro.\n"
    "A gift card is valid for two years from the day it was bought.\n\n"
    "Workshops\n\nEvery first Thursday of the month we run a free pruning workshop at 17:00."
)


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[tuple[FakeOpenAI, str]]:
    """The OpenAI-compatible fake in a background thread (chat and transcriptions)."""
    fake = FakeOpenAI()
    with serve_in_thread(fake.app()) as url:
        yield fake, url


@pytest.fixture
def fake(openai_fake: tuple[FakeOpenAI, str]) -> FakeOpenAI:
    """The fake, with no scripted faults or recorded requests left from another test."""
    state = openai_fake[0]
    state.faults.clear()
    state.requests.clear()
    state.transcript = "hello from a voice note"
    return state


@pytest.fixture
def settings(tmp_path: Path, db_url: str, openai_fake: tuple[FakeOpenAI, str]) -> Any:
    """Orchestrator settings with the AI backends pointed at the local fake, fast retries."""
    url = openai_fake[1]
    return make_settings(
        tmp_path,
        db_url,
        ai_vllm_base_url=f"{url}/v1",
        ai_vllm_model="fake-model",
        ai_llm_max_retries=2,
        ai_llm_backoff_base_s=0.05,
        ai_llm_backoff_max_s=0.2,
        ai_llm_timeout_s=5.0,
        ai_llm_total_timeout_s=10.0,
        ai_stt_backend="openai",
        ai_stt_base_url=f"{url}/v1",
        ai_max_upload_bytes=UPLOAD_LIMIT,
        ai_max_import_bytes=IMPORT_LIMIT,
    )


# -- helpers -----------------------------------------------------------------------------------


def create_base(client: TestClient, headers: dict[str, str], name: str = "Shop facts") -> str:
    res = client.post("/admin/knowledge", json={"name": name}, headers=headers)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def upload(
    client: TestClient,
    headers: dict[str, str],
    kb_id: str,
    filename: str,
    data: bytes,
    mime: str = "application/octet-stream",
) -> Any:
    return client.post(
        f"/admin/knowledge/{kb_id}/documents",
        files={"file": (filename, data, mime)},
        headers=headers,
    )


def create_bot(client: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"name": "AI Bot", **fields}
    res = client.post("/admin/whatsapp/instances", json=body, headers=headers)
    assert res.status_code == 201, res.text
    return res.json()  # type: ignore[no-any-return]


def bot_headers(client: TestClient, bot_id: str) -> dict[str, str]:
    """A bot's internal-API token, as the supervisor would mint it at spawn."""
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        bot = session.get(BotInstance, bot_id)
        assert bot is not None
        token = create_internal_token(
            TEST_SECRET_KEY, instance_id=bot.id, kind=bot.kind, gen=bot.spawn_generation, minutes=5
        )
    return {"Authorization": f"Bearer {token}"}


def preview(client: TestClient, headers: dict[str, str], bot_id: str, message: str) -> Any:
    return client.post(
        "/admin/ai/test",
        json={"kind": "whatsapp", "bot_id": bot_id, "message": message},
        headers=headers,
    )


# -- knowledge bases ---------------------------------------------------------------------------


def test_knowledge_rbac_per_role(client: TestClient, actors: Actors) -> None:
    h = actors.headers
    kb_id = create_base(client, h["alice"], "Alice base")
    doc = upload(client, h["alice"], kb_id, "gifts.txt", TXT_DOC.encode(), "text/plain")
    assert doc.status_code == 201, doc.text
    doc_id = doc.json()["id"]
    search = {"query": "gift card validity", "k": 2}

    # anonymous: 401 everywhere
    assert client.get("/admin/knowledge").status_code == 401
    assert client.post("/admin/knowledge", json={"name": "x"}).status_code == 401
    assert client.get(f"/admin/knowledge/{kb_id}").status_code == 401

    # bob (another user): alice's base does not exist for him
    assert client.get("/admin/knowledge", headers=h["bob"]).json() == []
    for method, path, kw in (
        ("GET", f"/admin/knowledge/{kb_id}", {}),
        ("POST", f"/admin/knowledge/{kb_id}/search", {"json": search}),
        ("POST", f"/admin/knowledge/{kb_id}/build", {}),
        ("GET", f"/admin/knowledge/{kb_id}/export", {}),
        ("DELETE", f"/admin/knowledge/{kb_id}/documents/{doc_id}", {}),
        ("DELETE", f"/admin/knowledge/{kb_id}", {}),
    ):
        res = client.request(method, path, headers=h["bob"], **kw)
        assert res.status_code == 404, (method, path, res.text)
    res = upload(client, h["bob"], kb_id, "x.txt", b"hello")
    assert res.status_code == 404

    # gary (guest): reads everything, writes nothing
    listed = client.get("/admin/knowledge", headers=h["gary"])
    assert [b["id"] for b in listed.json()] == [kb_id]
    assert client.get(f"/admin/knowledge/{kb_id}", headers=h["gary"]).status_code == 200
    found = client.post(f"/admin/knowledge/{kb_id}/search", json=search, headers=h["gary"])
    assert found.status_code == 200
    assert "two years" in found.json()["results"][0]["text"]
    assert client.get(f"/admin/knowledge/{kb_id}/export", headers=h["gary"]).status_code == 200
    assert (
        client.post("/admin/knowledge", json={"name": "g"}, headers=h["gary"]).status_code == 403
    )
    assert upload(client, h["gary"], kb_id, "x.txt", b"hello").status_code == 403
    for method, path in (
        ("POST", f"/admin/knowledge/{kb_id}/build"),
        ("DELETE", f"/admin/knowledge/{kb_id}/documents/{doc_id}"),
        ("DELETE", f"/admin/knowledge/{kb_id}"),
    ):
        assert client.request(method, path, headers=h["gary"]).status_code == 403, path
    exported = client.get(f"/admin/knowledge/{kb_id}/export", headers=h["alice"]).content
    imported = client.post(
        "/admin/knowledge/import",
        files={"file": ("kb.zip", exported, "application/zip")},
        headers=h["gary"],
    )
    assert imported.status_code == 403

    # admin: sees and manages everyone's; alice sees only her own
    bob_kb = create_base(client, h["bob"], "Bob base")
    assert {b["id"] for b in client.get("/admin/knowledge", headers=h["admin"]).json()} == {
        kb_id,
        bob_kb,
    }
    assert [b["id"] for b in client.get("/admin/knowledge", headers=h["alice"]).json()] == [kb_id]
    assert client.post(f"/admin/knowledge/{kb_id}/build", headers=h["admin"]).status_code == 200
    assert client.delete(f"/admin/knowledge/{bob_kb}", headers=h["admin"]).status_code == 204
    assert client.get(f"/admin/knowledge/{bob_kb}", headers=h["bob"]).status_code == 404


def test_extractive_answers_from_uploaded_pdf(client: TestClient, actors: Actors) -> None:
    h = actors.headers["alice"]
    kb_id = create_base(client, h)
    res = upload(client, h, kb_id, "shop-facts.pdf", make_pdf(SHOP_FACTS), "application/pdf")
    assert res.status_code == 201, res.text
    assert res.json()["kind"] == "pdf"
    assert res.json()["chunks"] >= 1

    status = client.get(f"/admin/knowledge/{kb_id}", headers=h).json()
    assert status["document_count"] == 1
    assert status["documents"][0]["filename"] == "shop-facts.pdf"
    assert status["chunks"] >= 1
    assert status["vectors"] == status["chunks"]
    assert status["embedding_model"] == "all-MiniLM-L6-v2"
    assert status["built_at"]

    bot = create_bot(client, h, knowledge_base_ids=[kb_id])
    assert bot["llm_backend"] == "extractive"
    answer = preview(client, h, bot["id"], "When are you open on Saturday?")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "10:00" in body["text"]
    assert "14:00" in body["text"]
    assert body["sources"] == ["shop-facts.pdf"]
    assert body["escalate"] is False
    assert body["confidence"] > 0.4

    unknown = preview(client, h, bot["id"], "Can I pay with bitcoin for a llama?").json()
    assert unknown["escalate"] is True
    assert "colleague" in unknown["text"]

    # previews record no usage; another user's bot is a 404; a guest may preview
    assert client.get(f"/admin/ai/usage?bot_id={bot['id']}", headers=h).json()["usage"] == []
    assert preview(client, actors.headers["bob"], bot["id"], "hours?").status_code == 404
    assert preview(client, actors.headers["gary"], bot["id"], "hours?").status_code == 200
    assert client.post("/admin/ai/test", json={"kind": "whatsapp"}, headers=h).status_code == 422


def test_document_upload_rules_delete_and_build(client: TestClient, actors: Actors) -> None:
    h = actors.headers["alice"]
    kb_id = create_base(client, h)
    exe = upload(client, h, kb_id, "tool.exe", b"MZ\x90\x00")
    assert exe.status_code == 415
    assert "unsupported" in exe.json()["detail"]
    big = upload(client, h, kb_id, "big.txt", b"a" * (UPLOAD_LIMIT + 1), "text/plain")
    assert big.status_code == 413
    broken = upload(client, h, kb_id, "broken.pdf", b"%PDF-1.4 not really", "application/pdf")
    assert broken.status_code == 422
    empty = upload(client, h, kb_id, "empty.txt", b"   \n", "text/plain")
    assert empty.status_code == 422
    no_file = client.post(f"/admin/knowledge/{kb_id}/documents", headers=h)
    assert no_file.status_code == 422

    html = b"<html><head><script>var x=1;</script></head><body><h1>Hours</h1>" + (
        b"<p>The cafe serves lunch from noon until three.</p></body></html>"
    )
    md = b"# Parking\n\nCustomers park **for free** behind the shop."
    doc_html = upload(client, h, kb_id, "cafe.html", html, "text/html").json()
    doc_md = upload(client, h, kb_id, "parking.md", md, "text/markdown").json()
    assert (doc_html["kind"], doc_md["kind"]) == ("html", "md")
    status = client.get(f"/admin/knowledge/{kb_id}", headers=h).json()
    assert status["document_count"] == 2

    gone = client.delete(f"/admin/knowledge/{kb_id}/documents/{doc_html['id']}", headers=h)
    assert gone.status_code == 204
    again = client.delete(f"/admin/knowledge/{kb_id}/documents/{doc_html['id']}", headers=h)
    assert again.status_code == 404
    status = client.get(f"/admin/knowledge/{kb_id}", headers=h).json()
    assert [d["filename"] for d in status["documents"]] == ["parking.md"]
    results = client.post(
        f"/admin/knowledge/{kb_id}/search", json={"query": "lunch at the cafe", "k": 5}, headers=h
    ).json()["results"]
    assert all(r["source"] == "parking.md" for r in results)

    built = client.post(f"/admin/knowledge/{kb_id}/build", headers=h)
    assert built.status_code == 200
    assert built.json()["vectors"] == built.json()["chunks"] >= 1
    bad = client.post(f"/admin/knowledge/{kb_id}/search", json={"query": "", "k": 0}, headers=h)
    assert bad.status_code == 422
    assert client.get("/admin/knowledge/no-such-base", headers=h).status_code == 404
    assert client.get("/admin/knowledge/bad%20id!", headers=h).status_code == 422


def test_export_then_import_gives_same_search_results(client: TestClient, actors: Actors) -> None:
    h = actors.headers["alice"]
    kb_id = create_base(client, h, "Original")
    upload(client, h, kb_id, "gifts.txt", TXT_DOC.encode(), "text/plain")
    upload(client, h, kb_id, "shop-facts.pdf", make_pdf(SHOP_FACTS), "application/pdf")
    queries = ["how long is a gift card valid", "saturday opening hours", "pruning workshop"]

    def results(base: str) -> list[list[tuple[str, float, str]]]:
        out = []
        for q in queries:
            res = client.post(
                f"/admin/knowledge/{base}/search", json={"query": q, "k": 3}, headers=h
            )
            assert res.status_code == 200, res.text
            out.append(
                [(r["text"], round(r["score"], 4), r["source"]) for r in res.json()["results"]]
            )
        return out

    before = results(kb_id)
    exported = client.get(f"/admin/knowledge/{kb_id}/export", headers=h)
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(exported.content)) as zf:
        names = set(zf.namelist())
    assert {"manifest.json", "chunks.jsonl", "index.faiss"} <= names
    assert sum(n.startswith("docs/") for n in names) == 2

    imported = client.post(
        "/admin/knowledge/import",
        files={"file": ("kb.zip", exported.content, "application/zip")},
        data={"name": "Copy"},
        headers=h,
    )
    assert imported.status_code == 201, imported.text
    copy = imported.json()
    assert copy["id"] != kb_id
    assert copy["name"] == "Copy"
    assert copy["owner_id"] == actors.ids["alice"]
    assert copy["document_count"] == 2
    assert results(copy["id"]) == before

    # the original can go; the copy keeps answering
    assert client.delete(f"/admin/knowledge/{kb_id}", headers=h).status_code == 204
    assert results(copy["id"]) == before

    too_big = client.post(
        "/admin/knowledge/import",
        files={"file": ("kb.zip", b"PK" + b"\0" * IMPORT_LIMIT, "application/zip")},
        headers=h,
    )
    assert too_big.status_code == 413
    not_zip = client.post(
        "/admin/knowledge/import",
        files={"file": ("kb.zip", b"hello", "application/zip")},
        headers=h,
    )
    assert not_zip.status_code == 400


def test_bot_links_only_existing_bases_its_owner_may_use(
    client: TestClient, actors: Actors
) -> None:
    h = actors.headers
    alice_kb = create_base(client, h["alice"], "Alice")
    bob_kb = create_base(client, h["bob"], "Bob")
    bot = create_bot(client, h["alice"])
    path = f"/admin/whatsapp/instances/{bot['id']}"

    for ids, msg in (([bob_kb], "another user"), (["nope"], "does not exist")):
        res = client.put(path, json={"knowledge_base_ids": ids}, headers=h["alice"])
        assert res.status_code == 422, res.text
        detail = res.json()["detail"][0]
        assert detail["loc"][:2] == ["body", "knowledge_base_ids"]
        assert msg in detail["msg"]
    created = client.post(
        "/admin/whatsapp/instances",
        json={"name": "Other", "knowledge_base_ids": [bob_kb]},
        headers=h["alice"],
    )
    assert created.status_code == 422

    ok = client.put(path, json={"knowledge_base_ids": [alice_kb]}, headers=h["alice"])
    assert ok.status_code == 200
    assert ok.json()["knowledge_base_ids"] == [alice_kb]
    # an admin's own bot may use any base
    admin_bot = create_bot(client, h["admin"], knowledge_base_ids=[alice_kb, bob_kb])
    assert admin_bot["knowledge_base_ids"] == [alice_kb, bob_kb]

    # deleting a base unlinks it from every bot
    assert client.delete(f"/admin/knowledge/{alice_kb}", headers=h["alice"]).status_code == 204
    assert client.get(path, headers=h["alice"]).json()["knowledge_base_ids"] == []
    admin_view = client.get(f"/admin/whatsapp/instances/{admin_bot['id']}", headers=h["admin"])
    assert admin_view.json()["knowledge_base_ids"] == [bob_kb]


# -- TTS ---------------------------------------------------------------------------------------


def test_tts_test_returns_ogg_opus_of_plausible_duration(
    client: TestClient, actors: Actors
) -> None:
    text_in = "Hello! Thanks for your message. Our shop opens at nine tomorrow morning."
    res = client.post("/admin/tts/test", json={"text": text_in}, headers=actors.headers["gary"])
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "audio/ogg"
    info = sf.info(io.BytesIO(res.content))
    assert (info.format, info.subtype) == ("OGG", "OPUS")
    # about 12 words: 2-10 s of speech at any sane speaking rate
    assert 2.0 < info.duration < 10.0, info.duration
    audio, rate = sf.read(io.BytesIO(res.content))
    assert rate in (8000, 12000, 16000, 24000, 48000)
    assert float(abs(audio).max()) > 0.05  # not silence

    assert client.post("/admin/tts/test", json={"text": "hi"}).status_code == 401
    h = actors.headers["alice"]
    for body in (
        {"text": ""},
        {"text": "hi", "voice": "../../etc/passwd"},
        {"text": "hi", "x": 1},
    ):
        assert client.post("/admin/tts/test", json=body, headers=h).status_code == 422, body
    unknown = client.post("/admin/tts/test", json={"text": "hi", "voice": "nobody"}, headers=h)
    assert unknown.status_code == 422
    assert "voice" in unknown.json()["detail"]
    no_engine = client.post("/admin/tts/test", json={"text": "hi", "engine": "xtts"}, headers=h)
    assert no_engine.status_code == 422


# -- LLM providers -----------------------------------------------------------------------------


def test_llm_providers_admin_only_with_masked_encrypted_keys(
    client: TestClient,
    actors: Actors,
    fake: FakeOpenAI,
    openai_fake: tuple[FakeOpenAI, str],
    db_url: str,
) -> None:
    h = actors.headers
    body = {
        "name": "Team vLLM",
        "kind": "openai-compatible",
        "base_url": f"{openai_fake[1]}/v1",
        "api_key": PROVIDER_KEY,
        "model": "team-model",
    }
    assert client.post("/admin/llm/providers", json=body).status_code == 401
    for who in ("alice", "gary"):
        assert client.post("/admin/llm/providers", json=body, headers=h[who]).status_code == 403
        assert client.get("/admin/llm/providers", headers=h[who]).status_code == 403

    res = client.post("/admin/llm/providers", json=body, headers=h["admin"])
    assert res.status_code == 201, res.text
    provider = res.json()
    assert provider["id"] == "team-vllm"
    assert provider["backend"] == "cloud:team-vllm"
    assert provider["api_key"] == "****3456"
    for r in (
        res,
        client.get("/admin/llm/providers", headers=h["admin"]),
        client.get("/admin/llm/providers/team-vllm", headers=h["admin"]),
    ):
        assert r.status_code == 200 or r.status_code == 201
        assert PROVIDER_KEY not in r.text
    assert client.get("/admin/llm/providers/team-vllm", headers=h["alice"]).status_code == 403
    engine = create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT api_key_enc FROM llm_providers")).scalar_one()
    engine.dispose()
    assert PROVIDER_KEY not in stored

    # an echoed mask keeps the key; the bot's replies go to the provider with it
    put = client.put(
        "/admin/llm/providers/team-vllm",
        json={"api_key": "****3456", "model": "team-model-2"},
        headers=h["admin"],
    )
    assert put.status_code == 200
    assert put.json()["model"] == "team-model-2"
    bot = create_bot(client, h["admin"], llm_backend="cloud:team-vllm")
    answer = preview(client, h["admin"], bot["id"], "ping")
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == "echo: ping"
    assert fake.requests[-1]["auth"] == f"Bearer {PROVIDER_KEY}"
    assert fake.requests[-1]["json"]["model"] == "team-model-2"

    bad = (
        {"name": "x", "base_url": "ftp://host"},
        {"name": "x", "kind": "openai-compatible"},
        {"name": "x", "kind": "anthropic", "base_url": "http://h"},
    )
    for b in bad:
        assert client.post("/admin/llm/providers", json=b, headers=h["admin"]).status_code == 422
    dup = client.post("/admin/llm/providers", json=body, headers=h["admin"])
    assert dup.status_code == 422
    gemini = client.post(
        "/admin/llm/providers",
        json={"name": "Gem", "kind": "gemini", "api_key": "AIza-SECRET-key-0000"},
        headers=h["admin"],
    )
    assert gemini.status_code == 201
    assert gemini.json()["api_key"] == "****0000"

    assert client.delete("/admin/llm/providers/team-vllm", headers=h["alice"]).status_code == 403
    assert client.delete("/admin/llm/providers/team-vllm", headers=h["admin"]).status_code == 204
    assert client.get("/admin/llm/providers/team-vllm", headers=h["admin"]).status_code == 404
    gone = preview(client, h["admin"], bot["id"], "ping")
    assert gone.status_code == 503
    assert "team-vllm" in gone.json()["detail"]


# -- internal API ------------------------------------------------------------------------------


def test_internal_reply_vllm_retries_429_and_records_usage(
    client: TestClient, actors: Actors, fake: FakeOpenAI
) -> None:
    bot = create_bot(
        client,
        actors.headers["alice"],
        llm_backend="vllm",
        persona="You are Ola from Fleet Garden Shop.",
        system_prompt="Answer in one sentence.",
    )
    fake.fail_next(429, retry_after=0.05)
    body = {
        "text": "Do you sell roses?",
        "history": [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "Hello!"}],
        "customer": "+15550001111",
    }
    res = client.post("/internal/llm/reply", json=body, headers=bot_headers(client, bot["id"]))
    assert res.status_code == 200, res.text
    reply = res.json()
    assert reply["text"] == "echo: Do you sell roses?"
    assert reply["escalate"] is False
    assert reply["usage"]["total_tokens"] > 0
    assert set(reply) == {"text", "confidence", "sources", "usage", "escalate", "reason"}
    assert not reply["reason"]  # why a handover is asked for: nothing here
    chats = [r for r in fake.requests if r["path"] == "/v1/chat/completions"]
    assert len(chats) == 2  # the 429, then the retry
    messages = chats[-1]["json"]["messages"]
    assert messages[0]["role"] == "system"
    assert "Ola from Fleet Garden Shop" in messages[0]["content"]
    assert "one sentence" in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]
    assert chats[-1]["json"]["model"] == "fake-model"

    usage = client.get(f"/admin/ai/usage?bot_id={bot['id']}", headers=actors.headers["alice"])
    assert usage.status_code == 200
    days = usage.json()["usage"]
    assert len(days) == 1
    assert days[0]["requests"] == 1
    assert days[0]["total_tokens"] == reply["usage"]["total_tokens"]
    assert (
        client.get(
            f"/admin/ai/usage?bot_id={bot['id']}", headers=actors.headers["bob"]
        ).status_code
        == 404
    )
    assert client.get("/admin/ai/usage", headers=actors.headers["bob"]).json()["usage"] == []
    everyone = client.get("/admin/ai/usage", headers=actors.headers["gary"]).json()["usage"]
    assert [d["bot_id"] for d in everyone] == [bot["id"]]
    assert client.get("/admin/ai/usage").status_code == 401


def test_internal_reply_500_answers_503_with_a_clear_detail(
    client: TestClient, actors: Actors, fake: FakeOpenAI
) -> None:
    bot = create_bot(client, actors.headers["alice"], llm_backend="vllm")
    fake.fail_always(500)
    res = client.post(
        "/internal/llm/reply",
        json={"text": "hello", "history": [], "customer": "+15550001111"},
        headers=bot_headers(client, bot["id"]),
    )
    assert res.status_code == 503
    assert "vllm" in res.json()["detail"]
    assert "fallback" in res.json()["detail"]
    assert len(fake.requests) == 3  # first try + 2 retries, then it gives up
    # no token, or a token from an earlier run: 401
    assert client.post("/internal/llm/reply", json={"text": "x"}).status_code == 401


def test_internal_rag_search_and_owner_answers(client: TestClient, actors: Actors) -> None:
    h = actors.headers["alice"]
    kb_id = create_base(client, h)
    upload(client, h, kb_id, "gifts.txt", TXT_DOC.encode(), "text/plain")
    bot = create_bot(client, h, knowledge_base_ids=[kb_id])
    other = create_bot(client, h, name="Unlinked")
    bh = bot_headers(client, bot["id"])

    found = client.post("/internal/rag/search", json={"query": "gift card amounts"}, headers=bh)
    assert found.status_code == 200
    top = found.json()["results"][0]
    assert "25, 50 and 100 euro" in top["text"]
    assert top["source"] == "gifts.txt"
    assert top["kb_id"] == kb_id

    qa = {"question": "Do you have a parking lot?", "answer": "Yes, 20 free spaces behind us."}
    added = client.post("/internal/knowledge/qa", json=qa, headers=bh)
    assert added.status_code == 201, added.text
    assert added.json()["kb_id"] == kb_id
    assert added.json()["kind"] == "qa"
    reply = client.post(
        "/internal/llm/reply",
        json={"text": "Is there parking?", "history": [], "customer": "+15550002222"},
        headers=bh,
    ).json()
    assert reply["text"] == "Yes, 20 free spaces behind us."
    assert reply["sources"] == ["Q&A"]

    oh = bot_headers(client, other["id"])
    assert client.post("/internal/knowledge/qa", json=qa, headers=oh).status_code == 409
    wrong = client.post("/internal/knowledge/qa", json={**qa, "kb_id": "x" * 12}, headers=bh)
    assert wrong.status_code == 403
    assert client.post("/internal/rag/search", json={"query": "gift"}, headers=oh).json() == {
        "results": []
    }
    assert client.post("/internal/rag/search", json={"query": "gift"}).status_code == 401


def test_internal_tts_and_stt(client: TestClient, actors: Actors, fake: FakeOpenAI) -> None:
    bot = create_bot(client, actors.headers["alice"], tts_enabled=True)
    bh = bot_headers(client, bot["id"])
    res = client.post("/internal/tts", json={"text": "We open at nine."}, headers=bh)
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "audio/ogg"
    info = sf.info(io.BytesIO(res.content))
    assert (info.format, info.subtype) == ("OGG", "OPUS")
    assert 0.5 < info.duration < 6.0

    fake.transcript = "what time do you open"
    heard = client.post(
        "/internal/stt", files={"file": ("voice.ogg", res.content, "audio/ogg")}, headers=bh
    )
    assert heard.status_code == 200, heard.text
    assert heard.json() == {"text": "what time do you open"}
    sent = [r for r in fake.requests if r["path"] == "/v1/audio/transcriptions"]
    assert sent[-1]["size"] == len(res.content)

    fake.fail_always(500)
    down = client.post(
        "/internal/stt", files={"file": ("voice.ogg", res.content, "audio/ogg")}, headers=bh
    )
    assert down.status_code == 503
    fake.faults.clear()
    empty = client.post("/internal/stt", files={"file": ("v.ogg", b"", "audio/ogg")}, headers=bh)
    assert empty.status_code == 422
    assert client.post("/internal/tts", json={"text": "x"}).status_code == 401
    assert client.post("/internal/tts", json={"text": ""}, headers=bh).status_code == 422


def test_owner_id_beyond_the_database_is_422(client: TestClient, actors: Actors) -> None:
    res = client.post("/admin/knowledge", json={"name": "kb", "owner_id": -(2**110)},
                      headers=actors.headers["admin"])
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "owner_id"]
    res = client.post("/admin/whatsapp/instances", json={"name": "b", "owner_id": 2**64},
                      headers=actors.headers["admin"])
    assert res.status_code == 422


def test_internal_reply_answers_503_retry_after_while_the_models_warm_up(
    client: TestClient, actors: Actors
) -> None:
    """After a start the embedding model loads in the background; meanwhile a bot with
    knowledge bases is told to ask again (503 + Retry-After, which the bot waits on) instead of
    getting an error it would answer with its fallback text."""
    import asyncio
    import threading

    h = actors.headers["alice"]
    kb_id = create_base(client, h)
    upload(client, h, kb_id, "gifts.txt", TXT_DOC.encode(), "text/plain")
    bot = create_bot(client, h, knowledge_base_ids=[kb_id])
    plain = create_bot(client, h, name="No knowledge")
    holder = client.app.state.ai  # type: ignore[attr-defined]
    service = holder.get()
    real = service.embedder
    entered, gate = threading.Event(), threading.Event()

    class GatedEmbedder:
        """The real embedder whose model load waits for the gate (a slow first load)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def load(self) -> Any:
            entered.set()
            gate.wait(30)
            return real.load()

    service.embedder = GatedEmbedder()
    warm = threading.Thread(target=asyncio.run, args=(holder.warm_up(),))
    body = {"text": "How long is a gift card valid?", "history": [], "customer": "+15550003333"}
    try:
        warm.start()
        assert entered.wait(30)  # the warm-up loads the embedding model
        assert holder.warming
        res = client.post("/internal/llm/reply", json=body, headers=bot_headers(client, bot["id"]))
        assert res.status_code == 503
        assert res.headers["Retry-After"] == "5"
        assert "loading its models" in res.json()["detail"]
        # A bot without knowledge bases needs no embeddings: answered meanwhile.
        other = client.post(
            "/internal/llm/reply", json=body, headers=bot_headers(client, plain["id"])
        )
        assert other.status_code == 200, other.text
    finally:
        gate.set()
        warm.join(30)
        service.embedder = real
    assert not holder.warming
    res = client.post("/internal/llm/reply", json=body, headers=bot_headers(client, bot["id"]))
    assert res.status_code == 200, res.text
    assert "two years" in res.json()["text"]


TOPICS_DOC = """# Corner Café — customer information

## Opening hours

We are open daily from 8:00 to 18:00.

## Delivery

We deliver within 5 km of the café. Delivery costs 3 euros.
"""


def test_knowledge_topics_for_a_menu(client: TestClient, actors: Actors) -> None:
    h = actors.headers
    kb_id = create_base(client, h["alice"], "Café")
    assert client.get(f"/admin/knowledge/{kb_id}/topics", headers=h["alice"]).json() == []
    doc = upload(client, h["alice"], kb_id, "cafe.md", TOPICS_DOC.encode(), "text/markdown")
    assert doc.status_code == 201, doc.text
    res = client.get(f"/admin/knowledge/{kb_id}/topics", headers=h["alice"])
    assert res.status_code == 200, res.text
    topics = res.json()
    # the document's title heading is not a topic; its sections are, in order, with their text
    assert [t["title"] for t in topics] == ["Opening hours", "Delivery"]
    assert "3 euros" in topics[1]["text"]
    assert "Opening hours" not in topics[0]["text"]  # the heading is not glued into the text
    one = client.get(f"/admin/knowledge/{kb_id}/topics?limit=1", headers=h["alice"]).json()
    assert [t["title"] for t in one] == ["Opening hours"]
    # a guest reads it; another user's base does not exist; bad ids and limits are 404/422
    assert client.get(f"/admin/knowledge/{kb_id}/topics", headers=h["gary"]).status_code == 200
    assert client.get(f"/admin/knowledge/{kb_id}/topics", headers=h["bob"]).status_code == 404
    assert client.get(f"/admin/knowledge/{kb_id}/topics").status_code == 401
    for bad in ("?limit=0", "?limit=51", "?limit=x"):
        res = client.get(f"/admin/knowledge/{kb_id}/topics{bad}", headers=h["alice"])
        assert res.status_code == 422, bad
    assert client.get("/admin/knowledge/nope/topics", headers=h["alice"]).status_code == 404
    assert client.get("/admin/knowledge/..%2F..%2Fetc/topics", headers=h["alice"]).status_code in (
        404,
        422,
    )
