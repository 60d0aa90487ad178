"""What `make run` starts: the orchestrator with the sandbox and an auto-starting demo bot that
`scripts/play_customer.py --demo` can talk to."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.orchestrator_proc import REPO, OrchestratorProcess, free_port

pytestmark = pytest.mark.slow


def play(orch: OrchestratorProcess, text: str, wait: str = "4") -> str:
    """``scripts/play_customer.py --demo`` (found through the server's own settings:
    FLOTILLA_DATA_DIR, FLOTILLA_PORT); its output."""
    out = subprocess.run(
        [sys.executable, "scripts/play_customer.py", "--demo", "--text", text, "--wait", wait],
        cwd=REPO,
        env=orch.env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_demo_bot_answers_play_customer(tmp_path: Path) -> None:
    sandbox_port = free_port()
    orch = OrchestratorProcess(
        tmp_path,
        FLOTILLA_SANDBOX="true",
        FLOTILLA_SANDBOX_PORT=str(sandbox_port),
        FLOTILLA_DEMO_BOT="true",
    ).start()
    try:
        bots = orch.api("GET", "/admin/whatsapp/instances").json()
        assert [b["name"] for b in bots] == ["Lighthouse Books"]
        # a neutral business of its own: nothing of the seed-004 sales funnel
        assert bots[0]["template"] == "documents"
        assert bots[0]["business"]["name"] == "Lighthouse Books"
        for trace in ("Private AI", "₽", "YooMoney", "your-org"):
            assert trace not in json.dumps(bots[0], ensure_ascii=False)
        orch.wait_state("whatsapp", bots[0]["id"], "running")
        demo = json.loads((tmp_path / "data" / "demo-bot.json").read_text())
        assert (tmp_path / "data" / "demo-bot.json").stat().st_mode & 0o077 == 0
        assert demo["app_secret"] not in json.dumps(bots)  # masked in the API
        out = play(orch, "hi")
        assert "webhook -> 200" in out
        assert "sales:show:ask" in out  # the welcome's buttons, as the sandbox recorded them
        assert "Lighthouse Books" in out
        # its own knowledge base, built in the background after start and linked to the bot
        kb_ids: list[str] = []
        deadline = time.monotonic() + 180
        while not kb_ids and time.monotonic() < deadline:
            time.sleep(1)
            bot = orch.api("GET", f"/admin/whatsapp/instances/{bots[0]['id']}").json()
            kb_ids = bot["knowledge_base_ids"]
        assert len(kb_ids) == 1, "the demo knowledge base was not built"
        kb = orch.api("GET", f"/admin/knowledge/{kb_ids[0]}").json()
        assert [d["filename"] for d in kb["documents"]] == ["lighthouse-books.md"]
        out = play(orch, "How much is delivery?", wait="10")
        assert "3 euros" in out  # answered from its own document
        # the menu offers the document's topics (the running bot reloaded its funnel)
        topics = bot["funnel"]["faq"]["sections"][0]
        assert topics["id"] == "topics"
        assert "Opening hours" in [i["title"] for i in topics["items"]]
        assert "faq:menu" in play(orch, "hi")
    finally:
        orch.close()
    # a second start neither creates another demo bot nor fails
    orch = OrchestratorProcess(
        tmp_path,
        FLOTILLA_SANDBOX="true",
        FLOTILLA_SANDBOX_PORT=str(sandbox_port),
        FLOTILLA_DEMO_BOT="true",
    ).start()
    try:
        assert len(orch.api("GET", "/admin/whatsapp/instances").json()) == 1
    finally:
        orch.close()
