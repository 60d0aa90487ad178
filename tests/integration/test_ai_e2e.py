"""AI end to end: a real orchestrator (sandbox providers in-process), real whatsapp_bot
subprocesses, and a local OpenAI-compatible fake for chat and ``/audio/transcriptions``.

A bot with a knowledge base answers free text from it and, with TTS on, follows its text with a
voice note uploaded to the Graph API; a voice note is transcribed and answered as ``[voice]``
text; a Telegram bot with TTS on sends its voice note with ``sendVoice`` (multipart OGG/Opus);
a ``vllm`` bot retries a 429 and sends its fallback text when the server keeps failing.
"""

from __future__ import annotations

import copy
import io
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import soundfile as sf

from tests.fakes.openai_api import FakeOpenAI
from tests.support.fake_thread import serve_in_thread
from tests.support.orchestrator_proc import OrchestratorProcess, free_port
from tests.support.wa import ACCESS_TOKEN, PHONE_NUMBER_ID, WaCustomer, body_text, bot_fields

pytestmark = pytest.mark.slow

KB_TEXT = (
    "Gift cards\n\nFleet Garden Shop gift cards are sold in amounts of 25, 50 and 100 euro. "
    "A gift card is valid for two years from the day it was bought.\n\n"
    "Opening hours\n\nOn Saturday the shop is open from 10:00 to 14:00. "
    "On weekdays we are open from 9:00 to 18:00 and on Sunday we are closed."
)
FALLBACK = "Sorry, our assistant is away. A person will answer you soon."


class Env:
    """The orchestrator, its sandbox and the OpenAI fake."""

    def __init__(self, orch: OrchestratorProcess, sandbox_url: str, fake: FakeOpenAI) -> None:
        self.orch = orch
        self.sandbox_url = sandbox_url
        self.fake = fake
        self.graph = f"{sandbox_url}/graph/v21.0"
        self.auth = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
        self._phones = iter(range(15550200001, 15550209999))
        self._kb_id: str | None = None

    def bot(self, name: str, **extra: Any) -> dict[str, Any]:
        bot = self.orch.create_bot(name=name, **bot_fields(self.sandbox_url, **extra))
        res = self.orch.api("POST", f"/admin/whatsapp/instances/{bot['id']}/start")
        assert res.status_code == 200, res.text
        st = self.orch.wait_state("whatsapp", bot["id"], "running")
        bot["url"] = f"http://127.0.0.1:{st['port']}"
        return bot

    def customer(self, bot: dict[str, Any]) -> WaCustomer:
        return WaCustomer(bot["url"], self.sandbox_url, f"+{next(self._phones)}")

    def media_bytes(self, media_id: str) -> bytes:
        """Download an uploaded media object the way a WhatsApp client would."""
        meta = httpx.get(f"{self.graph}/{media_id}", headers=self.auth)
        assert meta.status_code == 200, meta.text
        data = httpx.get(meta.json()["url"], headers=self.auth)
        assert data.status_code == 200
        return data.content

    def upload_media(self, data: bytes, mime: str = "audio/ogg") -> str:
        """Put a customer's voice note on the Graph API (as Meta hosts inbound media)."""
        res = httpx.post(
            f"{self.graph}/{PHONE_NUMBER_ID}/media",
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": ("voice.ogg", data, mime)},
            headers=self.auth,
        )
        assert res.status_code == 200, res.text
        return str(res.json()["id"])

    def db(self, bot_id: str) -> sqlite3.Connection:
        path = self.orch.root / "data" / f"wa_sales_{bot_id}.db"
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def shop_kb(self) -> str:
        """A knowledge base with :data:`KB_TEXT` (made once per module)."""
        if self._kb_id is None:
            kb = self.orch.api("POST", "/admin/knowledge", json={"name": "Shop"})
            assert kb.status_code == 201, kb.text
            doc = self.orch.api(
                "POST",
                f"/admin/knowledge/{kb.json()['id']}/documents",
                files={"file": ("shop.txt", KB_TEXT.encode(), "text/plain")},
            )
            assert doc.status_code == 201, doc.text
            self._kb_id = str(kb.json()["id"])
        return self._kb_id


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    fake = FakeOpenAI()
    with serve_in_thread(fake.app()) as fake_url:
        sandbox_port = free_port()
        orch = OrchestratorProcess(
            tmp_path_factory.mktemp("ai-e2e"),
            FLOTILLA_SANDBOX="true",
            FLOTILLA_SANDBOX_PORT=str(sandbox_port),
            FLOTILLA_AI_VLLM_BASE_URL=f"{fake_url}/v1",
            FLOTILLA_AI_VLLM_MODEL="fake-model",
            FLOTILLA_AI_LLM_MAX_RETRIES="2",
            FLOTILLA_AI_LLM_BACKOFF_BASE_S="0.05",
            FLOTILLA_AI_LLM_BACKOFF_MAX_S="0.5",
            FLOTILLA_AI_STT_BACKEND="openai",
            FLOTILLA_AI_STT_BASE_URL=f"{fake_url}/v1",
        ).start()
        try:
            yield Env(orch, f"http://127.0.0.1:{sandbox_port}", fake)
        finally:
            orch.close()


def collect(c: WaCustomer, *, until_audio: bool, wait: float = 60.0) -> list[dict[str, Any]]:
    """The customer's replies; with ``until_audio``, keep reading until a voice note came."""
    got = c.replies(wait=wait)
    deadline = time.monotonic() + wait
    while until_audio and not any(m["type"] == "audio" for m in got):
        assert time.monotonic() < deadline, [m["type"] for m in got]
        got += c.replies(wait=5.0)
    return got


def voice_payload(c: WaCustomer, media_id: str) -> dict[str, Any]:
    payload = c.payload("")
    msg = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.pop("text")
    msg["type"] = "audio"
    msg["audio"] = {"mime_type": "audio/ogg; codecs=opus", "id": media_id, "voice": True}
    return payload


def test_kb_bot_answers_from_its_base_with_a_voice_note_and_hears_voice(env: Env) -> None:
    kb_id = env.shop_kb()
    bot = env.bot("Voice Shop", knowledge_base_ids=[kb_id], tts_enabled=True)
    c = env.customer(bot)

    # free text → the answer from the knowledge base, then the same answer as a voice note
    res = c.post(c.payload("How long is a gift card valid?"))
    assert res.status_code == 200
    replies = collect(c, until_audio=True)
    texts = [body_text(m) for m in replies if m["type"] == "text"]
    assert any("two years" in t for t in texts), texts
    audio = [m for m in replies if m["type"] == "audio"]
    assert len(audio) == 1
    assert replies.index(audio[0]) > replies.index(next(m for m in replies if m["type"] == "text"))
    media_id = audio[0]["payload"]["audio"]["id"]
    ogg = env.media_bytes(media_id)
    info = sf.info(io.BytesIO(ogg))
    assert (info.format, info.subtype) == ("OGG", "OPUS")
    assert 1.0 < info.duration < 15.0, info.duration

    # a voice note → transcribed by the OpenAI-compatible fake → answered as [voice] text
    env.fake.transcript = "When is the shop open on Saturday?"
    note_id = env.upload_media(ogg)
    res = c.post(voice_payload(c, note_id))
    assert res.status_code == 200
    replies = collect(c, until_audio=True)
    texts = [body_text(m) for m in replies if m["type"] == "text"]
    assert any("10:00" in t and "14:00" in t for t in texts), texts
    stt = [r for r in env.fake.requests if r["path"] == "/v1/audio/transcriptions"]
    assert stt
    assert stt[-1]["size"] == len(ogg)
    with env.db(bot["id"]) as db:
        inbound = db.execute(
            "SELECT type, text FROM messages WHERE direction = 'in' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert inbound == ("audio", "[voice] When is the shop open on Saturday?")


def test_kb_bot_answers_a_price_question_from_its_base_not_the_funnel_price_list(
    env: Env,
) -> None:
    # The sales template's FAQ has a price entry matched by "how much"; this bot's knowledge
    # base knows what a gift card costs: the question is answered from the base.
    bot = env.bot("Gift Shop", knowledge_base_ids=[env.shop_kb()], template="sales")
    c = env.customer(bot)
    res = c.post(c.payload("How much is a gift card?"))
    assert res.status_code == 200
    texts = [body_text(m) for m in collect(c, until_audio=False)]
    assert any("25, 50 and 100 euro" in t for t in texts), texts
    assert not any("Private AI" in t or "How much does it cost" in t for t in texts), texts
    # Asked in the FAQ's own words, the funnel's entry still answers (a confident match).
    res = c.post(c.payload("How much does it cost?"))
    assert res.status_code == 200
    texts = [body_text(m) for m in collect(c, until_audio=False)]
    assert any("How much does it cost?" in t for t in texts), texts


TG_TOKEN = "7000000077:AAH-voice-e2e"
TG_SECRET = "tg-voice-secret"
TG_USER = 521234599


def test_telegram_bot_answers_with_a_voice_note_through_send_voice(env: Env) -> None:
    bot = env.orch.create_bot(
        "telegram",
        name="Voice Telegram",
        bot_token=TG_TOKEN,
        webhook_secret=TG_SECRET,
        telegram_api_base_url=f"{env.sandbox_url}/telegram",
        knowledge_base_ids=[env.shop_kb()],
        tts_enabled=True,
    )
    res = env.orch.api("POST", f"/admin/telegram/instances/{bot['id']}/start")
    assert res.status_code == 200, res.text
    port = env.orch.wait_state("telegram", bot["id"], "running")["port"]
    chat = {"id": TG_USER, "first_name": "Vera", "type": "private"}
    update: dict[str, Any] = {
        "update_id": 913572001,
        "message": {
            "message_id": 5,
            "from": {"id": TG_USER, "is_bot": False, "first_name": "Vera"},
            "chat": chat,
            "date": int(time.time()),
            "text": "How long is a gift card valid?",
        },
    }
    res = httpx.post(
        f"http://127.0.0.1:{port}/webhook",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    )
    assert res.status_code == 200, res.text

    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not any(m["type"] == "voice" for m in got):
        assert time.monotonic() < deadline, got
        since = got[-1]["seq"] if got else 0
        page = httpx.get(
            f"{env.sandbox_url}/_sandbox/messages",
            params={"provider": "telegram", "to": str(TG_USER), "wait": "5", "since": since},
            timeout=10,
        )
        got += page.json()["messages"]
    texts = [m["text"] or "" for m in got if m["type"] == "text"]
    assert any("two years" in t for t in texts), texts
    (voice,) = [m for m in got if m["type"] == "voice"]
    assert got.index(voice) > next(i for i, m in enumerate(got) if m["type"] == "text")

    # the sendVoice call was multipart with the OGG/Opus file in ``voice``
    calls = httpx.get(
        f"{env.sandbox_url}/_sandbox/requests", params={"provider": "telegram"}
    ).json()["requests"]
    (call,) = [r for r in calls if r["path"].endswith("/sendVoice")]
    assert call["status"] == 200
    assert call["form"]["voice"]["size"] == voice["payload"]["voice"]["file_size"]

    # and Telegram's file API gives back a real voice note
    api = f"{env.sandbox_url}/telegram"
    file_id = voice["payload"]["voice"]["file_id"]
    info = httpx.post(f"{api}/bot{TG_TOKEN}/getFile", json={"file_id": file_id}).json()
    ogg = httpx.get(f"{api}/file/bot{TG_TOKEN}/{info['result']['file_path']}").content
    sound = sf.info(io.BytesIO(ogg))
    assert (sound.format, sound.subtype) == ("OGG", "OPUS")
    assert 1.0 < sound.duration < 15.0, sound.duration

    # the customer's own voice note (Telegram keeps it under a file_id) → getFile → STT
    env.fake.transcript = "When is the shop open on Saturday?"
    voice_update = copy.deepcopy(update)
    voice_update["update_id"] += 1
    message: dict[str, Any] = voice_update["message"]
    message["message_id"] += 1
    del message["text"]
    message["voice"] = {"file_id": file_id, "file_unique_id": "u1", "duration": 2,
                        "mime_type": "audio/ogg"}
    seen = got[-1]["seq"]
    res = httpx.post(
        f"http://127.0.0.1:{port}/webhook",
        json=voice_update,
        headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    )
    assert res.status_code == 200, res.text
    texts = []
    deadline = time.monotonic() + 60
    while not any("10:00" in t and "14:00" in t for t in texts):
        assert time.monotonic() < deadline, texts
        page = httpx.get(
            f"{env.sandbox_url}/_sandbox/messages",
            params={"provider": "telegram", "to": str(TG_USER), "wait": "5", "since": seen},
            timeout=10,
        )
        fresh = page.json()["messages"]
        seen = fresh[-1]["seq"] if fresh else seen
        texts += [m["text"] or "" for m in fresh if m["type"] == "text"]
    stt = [r for r in env.fake.requests if r["path"] == "/v1/audio/transcriptions"]
    assert stt[-1]["size"] == len(ogg)


def test_vllm_bot_retries_429_and_sends_fallback_when_the_server_fails(env: Env) -> None:
    bot = env.bot("Vllm Shop", llm_backend="vllm", fallback_text=FALLBACK)
    c = env.customer(bot)

    env.fake.fail_always(500)
    replies = c.say("Could you recommend a plant for a dark corner?", wait=30)
    env.fake.faults.clear()
    assert [body_text(m) for m in replies] == [FALLBACK]

    env.fake.requests.clear()
    env.fake.fail_next(429, retry_after=0.1)
    replies = c.say("Which roses survive the winter?", wait=30)
    assert [body_text(m) for m in replies] == ["echo: Which roses survive the winter?"]
    chats = [r for r in env.fake.requests if r["path"] == "/v1/chat/completions"]
    assert len(chats) == 2  # the 429, then the retry that answered
    usage = env.orch.api("GET", f"/admin/ai/usage?bot_id={bot['id']}").json()["usage"]
    assert usage[0]["requests"] == 1
    assert usage[0]["total_tokens"] > 0
