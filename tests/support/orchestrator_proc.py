"""A real orchestrator (`python -m orchestrator serve`) in a subprocess, for tests and benches."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "admin-test-password-123"
SECRET_KEY = "fleet-test-secret-key-0123456789abcdefghij"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OrchestratorProcess:
    """A real orchestrator process on a free port with its own data and logs dirs."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.port = free_port()
        base = random.randrange(20000, 40000, 300)  # noqa: S311 - not security
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "FLOTILLA_DATA_DIR": str(root / "data"),
            "FLOTILLA_LOGS_DIR": str(root / "logs"),
            "FLOTILLA_PORT": str(self.port),
            "FLOTILLA_SECRET_KEY": SECRET_KEY,
            "FLOTILLA_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # A port range of its own, so parallel runs on one machine do not collide.
            "FLOTILLA_PORT_RANGE_START": str(base),
            "FLOTILLA_PORT_RANGE_END": str(base + 299),
            # Test sandboxes and fake providers listen on 127.0.0.1 ports picked at run time.
            "FLOTILLA_ALLOWED_PROVIDER_URLS": "127.0.0.1",
            "PYTHONPATH": str(REPO),
            **env,
        }
        self.env.pop("FLOTILLA_DATABASE_URL", None)
        self.env.pop("DATABASE_URL", None)
        self.proc: subprocess.Popen[bytes] | None = None
        self._token: str | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self, timeout: float = 30) -> OrchestratorProcess:
        log = (self.root / "orchestrator.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "orchestrator", "serve"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orchestrator exited: {self.tail_log()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/health").status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"orchestrator did not start: {self.tail_log()}")

    def tail_log(self, n: int = 40) -> str:
        path = self.root / "orchestrator.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        """SIGKILL the orchestrator only (its bots run in their own sessions and live on)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self._token = None

    @property
    def headers(self) -> dict[str, str]:
        if self._token is None:
            res = self.http.post(
                "/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
            )
            res.raise_for_status()
            self._token = res.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        res = self.http.request(method, path, headers=self.headers, **kw)
        if res.status_code == 401:
            # A test signed the admin out (that revokes every admin token): sign in again.
            self._token = None
            res = self.http.request(method, path, headers=self.headers, **kw)
        return res

    def create_bot(self, kind: str = "whatsapp", **fields: Any) -> dict[str, Any]:
        res = self.api("POST", f"/admin/{kind}/instances", json=fields)
        assert res.status_code == 201, res.text
        return res.json()  # type: ignore[no-any-return]

    def status(self, kind: str, bot_id: str) -> dict[str, Any]:
        return self.api("GET", f"/admin/{kind}/instances/{bot_id}/status").json()  # type: ignore[no-any-return]

    def wait_state(
        self, kind: str, bot_id: str, states: str | tuple[str, ...], timeout: float = 20
    ) -> dict[str, Any]:
        states = (states,) if isinstance(states, str) else states
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status(kind, bot_id)
            if st["state"] in states:
                return st
            time.sleep(0.05)
        raise AssertionError(f"{bot_id} not in {states} after {timeout}s: {json.dumps(st)}")

    def spawn_generation(self, bot_id: str) -> int:
        import sqlite3

        con = sqlite3.connect(self.root / "data" / "orchestrator.db")
        try:
            row = con.execute(
                "SELECT spawn_generation FROM bot_instances WHERE id = ?", (bot_id,)
            ).fetchone()
        finally:
            con.close()
        return int(row[0])

    def close(self) -> None:
        self.stop()
        self.http.close()
