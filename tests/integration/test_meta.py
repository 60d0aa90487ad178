"""Health, version, metrics, request ids, CLI and migrations."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

REPO = Path(__file__).resolve().parents[2]


def test_health_version_metrics_docs(client, actors) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["models"] in ("warming", "ready")
    v = client.get("/version").json()
    assert set(v) == {"version", "commit", "build_time"}
    assert v["version"] == "0.1.0"
    assert client.get("/docs").status_code == 200
    assert "/admin/{kind}/instances" in client.get("/openapi.json").json()["paths"]
    # /metrics answers to an admin's token (no FLOTILLA_METRICS_TOKEN set); tests/security/
    # test_headers.py checks the refusals.
    metrics = client.get("/metrics", headers=actors.headers["admin"])
    assert "flotilla_http_requests_total" in metrics.text


def test_request_id_honoured_or_generated(client) -> None:
    res = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert res.headers["x-request-id"] == "abc-123"
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 32


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_migrate_create_user_and_secret_key(tmp_path) -> None:
    env = {**os.environ, "FLOTILLA_DATA_DIR": str(tmp_path / "d"), "PYTHONPATH": str(REPO)}
    env.pop("FLOTILLA_SECRET_KEY", None)
    env.pop("FLOTILLA_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    assert _run(["migrate"], env, tmp_path).returncode == 0
    assert _run(["migrate"], env, tmp_path).returncode == 0  # idempotent
    # the password policy holds on the command line too: a guessable password is refused
    res = _run(
        ["create-user", "--username", "ops", "--password", "s3cret-pass", "--role", "guest"],
        env,
        tmp_path,
    )
    assert res.returncode == 2
    assert "too easy to guess" in res.stderr
    strong = "correct-horse-battery-staple-42"
    res = _run(
        ["create-user", "--username", "ops", "--password", strong, "--role", "guest"],
        env,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "guest 'ops'" in res.stdout
    res = _run(["create-user", "--username", "ops", "--password", strong], env, tmp_path)
    assert res.returncode == 2
    assert "already exists" in res.stderr
    key = tmp_path / "d" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    engine = create_engine(f"sqlite:///{tmp_path / 'd' / 'orchestrator.db'}")
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT role FROM users WHERE username='ops'")).scalar() == "guest"
        )


def test_migrate_whatsapp_script_is_idempotent_and_imports_legacy(tmp_path) -> None:
    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # the seed-004 panel's own table
        conn.execute(
            text(
                "CREATE TABLE whatsapp_instances (id TEXT PRIMARY KEY, name TEXT, phone_number_id "
                "TEXT, waba_id TEXT, access_token TEXT, verify_token TEXT, app_secret TEXT, "
                "webhook_port INTEGER, enabled INTEGER, auto_start INTEGER, llm_backend TEXT, "
                "system_prompt TEXT, owner_id INTEGER)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO whatsapp_instances VALUES ('old-bot', 'Old Bot', '111', '222', "
                "'legacy-SECRET-token', 'vt', 'as', 8003, 1, 0, 'vllm', 'hello', NULL)"
            )
        )
    engine.dispose()
    env = {
        **os.environ,
        "FLOTILLA_DATABASE_URL": f"sqlite:///{db}",
        "FLOTILLA_DATA_DIR": str(tmp_path / "d"),
        "FLOTILLA_SECRET_KEY": "k" * 40,
    }
    for _ in range(2):
        res = subprocess.run(
            [sys.executable, "scripts/migrate_whatsapp.py"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr
    engine = create_engine(f"sqlite:///{db}")
    # the legacy table was imported then dropped; the per-kind views are gone (migration 0004)
    names = set(inspect(engine).get_view_names()) | set(inspect(engine).get_table_names())
    assert not {"whatsapp_instances", "whatsapp_instances_legacy"} & names
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, name, webhook_port FROM bot_instances WHERE kind = 'whatsapp'")
        ).all()
        raw = json.dumps(
            [list(r) for r in conn.execute(text("SELECT * FROM bot_instances"))], default=str
        )
    # 8003 is outside the default bot port range: dropped, allocated at start (434f7e3)
    assert [tuple(r) for r in rows] == [("old-bot", "Old Bot", None)]
    assert "legacy-SECRET-token" not in raw
