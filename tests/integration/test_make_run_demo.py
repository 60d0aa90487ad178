"""What `make run` starts: the orchestrator with the sandbox and an auto-starting demo bot that
`scripts/play_customer.py --demo` can talk to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.orchestrator_proc import REPO, OrchestratorProcess, free_port

pytestmark = pytest.mark.slow


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
        assert [b["name"] for b in bots] == ["Demo Shop"]
        orch.wait_state("whatsapp", bots[0]["id"], "running")
        demo = json.loads((tmp_path / "data" / "demo-bot.json").read_text())
        assert (tmp_path / "data" / "demo-bot.json").stat().st_mode & 0o077 == 0
        assert demo["app_secret"] not in json.dumps(bots)  # masked in the API
        out = subprocess.run(
            [
                sys.executable,
                "scripts/play_customer.py",
                "--demo",  # found through the server's own settings (FLOTILLA_DATA_DIR, _PORT)
                "--text",
                "hi",
                "--wait",
                "4",
            ],
            cwd=REPO,
            env=orch.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert "webhook -> 200" in out.stdout
        assert "sales:quiz" in out.stdout  # the welcome's buttons, as the sandbox recorded them
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
