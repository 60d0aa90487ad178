"""What ``flotilla serve`` prints: a busy port or a wrong host is one line naming the setting,
before anything is created; the first-run admin password stands in a block of its own; FAISS's
CPU-feature probes stay out of the console; ``scripts/play_customer.py`` reads the server's
settings."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.orchestrator_proc import REPO, OrchestratorProcess, free_port


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "FLOTILLA_DATA_DIR": str(root / "data"),
        "FLOTILLA_LOGS_DIR": str(root / "logs"),
        "PYTHONPATH": str(REPO),
        **extra,
    }
    env.pop("FLOTILLA_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    return env


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_busy_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _serve(_env(tmp_path, FLOTILLA_HOST="127.0.0.1", FLOTILLA_PORT=str(port)))
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert "FLOTILLA_PORT" in lines[0]
    assert str(port) in lines[0]
    assert "in use" in lines[0]
    assert not lines[0].lstrip().startswith("{"), "a plain line, not a JSON log record"
    # Nothing was created: no data dir (database, secret key, admin password), no logs dir.
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "logs").exists()


def test_a_busy_sandbox_port_names_flotilla_sandbox_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, FLOTILLA_SANDBOX="true", FLOTILLA_SANDBOX_PORT=str(port))
        env["FLOTILLA_PORT"] = str(free_port())
        out = _serve(env)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert "FLOTILLA_SANDBOX_PORT" in lines[0]
    assert not (tmp_path / "data").exists()


def test_a_host_not_on_this_machine_names_flotilla_host(tmp_path: Path) -> None:
    # 203.0.113.0/24 is TEST-NET-3: never an address of this machine.
    out = _serve(_env(tmp_path, FLOTILLA_HOST="203.0.113.7", FLOTILLA_PORT="8000"))
    assert out.returncode == 1
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert "FLOTILLA_HOST" in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_first_run_password_block_and_no_third_party_noise(tmp_path: Path) -> None:
    orch = OrchestratorProcess(tmp_path, FLOTILLA_ADMIN_PASSWORD="", FLOTILLA_DEMO_BOT="false")
    orch.start()
    try:
        saved = (tmp_path / "data" / "initial-admin.txt").read_text()
        password = re.search(r"^password: (\S+)$", saved, re.M)
        assert password, saved
        log = (tmp_path / "orchestrator.log").read_text()
        lines = log.splitlines()
        # The password on a line of its own, inside a framed block, not inside a JSON record.
        where = lines.index(f"      password:  {password.group(1)}")
        rules = [i for i, line in enumerate(lines) if line.startswith("=" * 40)]
        start = max(i for i in rules if i < where)
        end = min(i for i in rules if i > where)
        framed = "\n".join(lines[start : end + 1])
        assert "First run" in framed
        assert "username:  admin" in framed
        assert f"{orch.url}/login" in framed
        assert "initial-admin.txt" in framed
        assert sum(password.group(1) in line for line in lines) == 1, "printed once"
        assert orch.http.post(
            "/auth/token", data={"username": "admin", "password": password.group(1)}
        ).is_success
    finally:
        orch.close()


def test_faiss_probes_stay_out_of_the_serve_console(tmp_path: Path) -> None:
    """The serve process's logging (JSON on stderr at INFO) with the quiet levels applied, as
    ``cmd_serve`` does before the models load: importing FAISS prints nothing."""
    code = (
        "from orchestrator.cli import quiet_third_party\n"
        "from orchestrator.logging_setup import configure_logging\n"
        "quiet_third_party()\n"
        "configure_logging()\n"
        "import logging, os, faiss\n"
        "logging.getLogger('orchestrator').info('still heard')\n"
        "print(os.environ['TQDM_DISABLE'], os.environ['HF_HUB_DISABLE_PROGRESS_BARS'])\n"
    )
    env = _env(tmp_path)
    env.pop("TQDM_DISABLE", None)
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "faiss" not in out.stderr.lower(), out.stderr
    assert "still heard" in out.stderr  # our own INFO lines still show
    assert out.stdout.split() == ["1", "1"]


def test_play_customer_reads_the_servers_settings(tmp_path: Path) -> None:
    env = _env(tmp_path, FLOTILLA_HOST="127.0.0.1", FLOTILLA_PORT="8765")
    env["FLOTILLA_SANDBOX_PORT"] = "8777"
    help_out = subprocess.run(
        [sys.executable, "scripts/play_customer.py", "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    flat = " ".join(help_out.split())
    assert "http://127.0.0.1:8765" in flat
    assert "http://127.0.0.1:8777" in flat
    out = subprocess.run(
        [sys.executable, "scripts/play_customer.py", "--demo", "--text", "hi"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert str(tmp_path / "data" / "demo-bot.json") in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr
