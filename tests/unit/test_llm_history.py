"""Issue 14 item 9: the history the LLM sees is one per-bot setting (``llm_history``).

The bot sends that many earlier messages; the orchestrator uses all it gets (up to a hard cap).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.ai import AIService, AISettings
from shared.botkit.inbox import HISTORY_LIMIT, HISTORY_MAX, history_limit
from shared.channels.base import CustomerRef, InboundMessage
from tests.botkit_support import Harness, make_harness
from tests.fakes.openai_api import FakeOpenAI, serve

PHONE = "+15550100001"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, HISTORY_LIMIT),
        (5, 5),
        ("7", 7),
        (0, 0),
        (-3, 0),
        (HISTORY_MAX + 100, HISTORY_MAX),
        ("many", HISTORY_LIMIT),
        (True, HISTORY_LIMIT),
    ],
)
def test_history_limit_reads_and_clamps_the_setting(raw: Any, expected: int) -> None:
    config = {} if raw is None else {"llm_history": raw}
    assert history_limit(config) == expected


def test_default_is_twenty_as_in_the_seed() -> None:
    from orchestrator.schemas import COMMON_DEFAULTS

    assert HISTORY_LIMIT == 20
    assert COMMON_DEFAULTS["llm_history"] == HISTORY_LIMIT


async def _conversation(h: Harness, turns: int) -> None:
    """``turns`` earlier messages of the customer, alternating in/out, oldest first."""
    user = h.ctx.store.resolve_user(CustomerRef(phone=PHONE))
    for i in range(turns):
        direction = "in" if i % 2 == 0 else "out"
        h.ctx.store.add_message(
            direction=direction,
            customer=PHONE,
            type_="text",
            text=f"earlier {i}",
            user_id=user.id,
        )


async def _ask(h: Harness) -> list[dict[str, Any]]:
    h.orch.llm_answer = "Answer."
    h.ctx.accept_inbound(
        InboundMessage("wamid.q", CustomerRef(phone=PHONE), text="zxqv the question?")
    )
    await h.settle()
    assert h.orch.llm_requests, "the bot asked the orchestrator"
    return h.orch.llm_requests[-1]["history"]  # type: ignore[no-any-return]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(tmp_path):
        yield harness


async def test_bot_sends_twenty_earlier_messages_by_default(h: Harness) -> None:
    await _conversation(h, 30)
    history = await _ask(h)
    assert [m["text"] for m in history] == [f"earlier {i}" for i in range(10, 30)]


async def test_bot_sends_as_many_as_its_setting_says(h: Harness) -> None:
    h.ctx.config["llm_history"] = 4
    await _conversation(h, 30)
    history = await _ask(h)
    assert [m["text"] for m in history] == [f"earlier {i}" for i in range(26, 30)]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]


async def test_zero_sends_no_history(h: Harness) -> None:
    h.ctx.config["llm_history"] = 0
    await _conversation(h, 6)
    assert await _ask(h) == []


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[AIService]:
    svc = AIService(AISettings(data_dir=tmp_path / "data", llm_timeout_s=5.0))
    yield svc
    await svc.aclose()


async def test_orchestrator_uses_every_message_the_bot_sends(service: AIService) -> None:
    fake = FakeOpenAI()
    fake.reply = lambda msgs: "ok"
    history = [{"role": "user" if i % 2 == 0 else "assistant", "text": f"m{i}"} for i in range(20)]
    async with serve(fake.app()) as url:
        service.settings.vllm_base_url = f"{url}/v1"
        service.settings.vllm_model = "qwen"
        await service.reply({"id": "b", "llm_backend": "vllm"}, "now?", history)
    sent = [m for m in fake.requests[0]["json"]["messages"] if m["role"] != "system"]
    assert sent[-1]["content"] == "now?"
    assert [m["content"] for m in sent[:-1]] == [f"m{i}" for i in range(20)]


async def test_orchestrator_hard_cap_still_bounds_the_prompt(service: AIService) -> None:
    fake = FakeOpenAI()
    fake.reply = lambda msgs: "ok"
    service.settings.llm_history_messages = 3
    history = [{"role": "user", "text": f"m{i}"} for i in range(10)]
    async with serve(fake.app()) as url:
        service.settings.vllm_base_url = f"{url}/v1"
        service.settings.vllm_model = "qwen"
        await service.reply({"id": "b", "llm_backend": "vllm"}, "now?", history)
    sent = [m for m in fake.requests[0]["json"]["messages"] if m["role"] != "system"]
    assert sent[-1]["content"] == "now?"
    assert [m["content"] for m in sent[:-1]] == ["m7", "m8", "m9"]
