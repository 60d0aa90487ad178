"""Fleet: real bot subprocesses under a real orchestrator process (issue: Fleet)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from orchestrator.security import create_control_token, create_internal_token
from tests.support.orchestrator_proc import REPO, SECRET_KEY, OrchestratorProcess

pytestmark = pytest.mark.slow

STUBBORN = [sys.executable, str(REPO / "tests" / "support" / "bots" / "stubborn.py")]
DIES = [sys.executable, "-c", "import sys; sys.exit(3)"]


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    root = tmp_path_factory.mktemp("fleet")
    proc = OrchestratorProcess(
        root,
        FLOTILLA_FLAPPING_ATTEMPTS="3",
        FLOTILLA_FLAPPING_WINDOW="30",
        FLOTILLA_RESPAWN_MIN_DELAY="0.5",
        FLOTILLA_READY_TIMEOUT="3",
        FLOTILLA_BOT_COMMAND_OVERRIDE=json.dumps({"stubborn": STUBBORN, "dies": DIES}),
    ).start()
    yield proc
    proc.close()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def bot_processes(bot_id: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["environ", "cmdline"]):
        try:
            env = p.info["environ"] or {}
        except psutil.Error:
            continue
        if env.get("BOT_INSTANCE_ID") == bot_id and p.status() != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def test_start_status_health_logs_stop(orch: OrchestratorProcess) -> None:
    bot = orch.create_bot(name="Life Cycle")
    assert bot["auto_start"] is False
    started = time.monotonic()
    res = orch.api("POST", "/admin/whatsapp/instances/life-cycle/start")
    assert res.status_code == 200, res.text
    st = orch.wait_state("whatsapp", "life-cycle", "running")
    ready_s = time.monotonic() - started
    assert st["pid"]
    assert st["port"]
    lo, hi = (int(orch.env[f"FLOTILLA_PORT_RANGE_{e}"]) for e in ("START", "END"))
    assert lo <= st["port"] <= hi  # allocated from the configured range
    assert st["rss_mb"] > 5
    assert st["restarts"] == 0
    assert orch.api("GET", "/admin/whatsapp/instances/life-cycle").json()["auto_start"] is True
    # its port answers /control/health, for the orchestrator's tokens only
    url = f"http://127.0.0.1:{st['port']}/control/health"
    assert httpx.get(url).status_code == 401
    gen = orch.spawn_generation("life-cycle")
    token = create_control_token(SECRET_KEY, instance_id="life-cycle", gen=gen)
    health = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert health.status_code == 200
    assert health.json()["instance_id"] == "life-cycle"
    stale = create_control_token(SECRET_KEY, instance_id="life-cycle", gen=gen - 1)
    assert httpx.get(url, headers={"Authorization": f"Bearer {stale}"}).status_code == 403
    # env as the seed names it
    (proc,) = bot_processes("life-cycle")
    env = proc.environ()
    assert env["WA_INSTANCE_ID"] == "life-cycle"
    assert env["WA_INTERNAL_TOKEN"] == env["BOT_INTERNAL_TOKEN"]
    # the orchestrator's own secrets and settings stay out of bot processes
    assert not [k for k in env if k.startswith("FLOTILLA_") or k == "DATABASE_URL"]
    assert SECRET_KEY not in "\n".join(env.values())
    assert proc.cmdline()[-2:] == ["-m", "whatsapp_bot"]
    assert os.getpgid(proc.pid) == proc.pid  # its own process group
    # logs
    logs = orch.api("GET", "/admin/whatsapp/instances/life-cycle/logs?lines=5").json()["lines"]
    assert 0 < len(logs) <= 5
    log_file = orch.root / "logs" / "whatsapp_bot_life-cycle.log"
    assert logs[-1] == log_file.read_text().splitlines()[-1]
    assert any("running" in line for line in log_file.read_text().splitlines())
    # fleet overview
    fleet = {b["id"]: b for b in orch.api("GET", "/admin/fleet").json()}
    assert fleet["life-cycle"]["state"] == "running"
    # stop
    pid = st["pid"]
    t0 = time.monotonic()
    res = orch.api("POST", "/admin/whatsapp/instances/life-cycle/stop")
    assert res.status_code == 200
    assert res.json()["state"] == "stopped"
    assert time.monotonic() - t0 < 6
    assert gone(pid)
    assert orch.api("GET", "/admin/whatsapp/instances/life-cycle").json()["auto_start"] is False
    assert ready_s < 15


def test_stubborn_bot_is_killed_within_6s(orch: OrchestratorProcess) -> None:
    orch.create_bot(name="Stubborn")
    orch.api("POST", "/admin/whatsapp/instances/stubborn/start")
    st = orch.wait_state("whatsapp", "stubborn", "starting")
    deadline = time.monotonic() + 5
    while not st["pid"] and time.monotonic() < deadline:
        st = orch.status("whatsapp", "stubborn")
    pid = st["pid"]
    assert pid
    time.sleep(0.5)  # let it install its SIGTERM handler
    t0 = time.monotonic()
    res = orch.api("POST", "/admin/whatsapp/instances/stubborn/stop")
    elapsed = time.monotonic() - t0
    assert res.json()["state"] == "stopped"
    assert gone(pid)
    assert 4.5 < elapsed < 6.5  # it waited for the graceful timeout, then SIGKILL


def test_kill9_respawns_within_5s(orch: OrchestratorProcess) -> None:
    orch.create_bot(name="Phoenix")
    orch.api("POST", "/admin/whatsapp/instances/phoenix/start")
    st = orch.wait_state("whatsapp", "phoenix", "running")
    old_pid = st["pid"]
    os.kill(old_pid, signal.SIGKILL)
    t0 = time.monotonic()
    deadline = t0 + 5
    while time.monotonic() < deadline:
        st = orch.status("whatsapp", "phoenix")
        if st["state"] == "running" and st["pid"] != old_pid:
            break
        time.sleep(0.05)
    assert st["state"] == "running", st
    assert st["pid"] != old_pid
    assert st["restarts"] == 1
    assert st["last_exit_code"] == -signal.SIGKILL
    assert len(bot_processes("phoenix")) == 1
    orch.api("POST", "/admin/whatsapp/instances/phoenix/stop")


def test_bot_that_dies_at_once_ends_crashed(orch: OrchestratorProcess) -> None:
    orch.create_bot(name="Dies")
    orch.api("POST", "/admin/whatsapp/instances/dies/start")
    st = orch.wait_state("whatsapp", "dies", "crashed", timeout=30)
    assert st["restarts"] == 3
    assert st["last_exit_code"] == 3
    assert "not restarting" in st["last_error"]
    time.sleep(2)
    assert orch.status("whatsapp", "dies")["restarts"] == 3  # no more respawns
    audit_actions = (orch.root / "logs" / "whatsapp_bot_dies.log").read_text()
    assert "backoff" in audit_actions
    assert "crashed" in audit_actions


def test_disabled_bot_and_taken_port_are_refused(orch: OrchestratorProcess) -> None:
    orch.create_bot(name="Off", enabled=False)
    res = orch.api("POST", "/admin/whatsapp/instances/off/start")
    assert res.status_code == 409
    assert "disabled" in res.json()["detail"]
    # A port in the bot port range (a user may only choose those), held by another program.
    with socket.socket() as squatter:
        port = int(orch.env["FLOTILLA_PORT_RANGE_END"])
        while True:
            try:
                squatter.bind(("127.0.0.1", port))
                break
            except OSError:
                port -= 1
        squatter.listen()
        orch.create_bot(name="Squatted", webhook_port=port)
        res = orch.api("POST", "/admin/whatsapp/instances/squatted/start")
        assert res.status_code == 409
        assert f"port {port} is already in use" in res.json()["detail"]
        st = orch.status("whatsapp", "squatted")
        assert st["state"] == "stopped"
        assert f"port {port}" in st["last_error"]
        assert st["restarts"] == 0


def test_internal_api_tokens(orch: OrchestratorProcess) -> None:
    orch.create_bot(name="Tok A", access_token="tok-a-SECRET-token-9999")
    orch.create_bot(name="Tok B")
    orch.api("POST", "/admin/whatsapp/instances/tok-a/start")
    orch.wait_state("whatsapp", "tok-a", "running")
    gen = orch.spawn_generation("tok-a")

    def tok(instance_id: str, g: int, minutes: int = 5, key: str = SECRET_KEY) -> dict[str, str]:
        t = create_internal_token(
            key, instance_id=instance_id, kind="whatsapp", gen=g, minutes=minutes
        )
        return {"Authorization": f"Bearer {t}"}

    ok = httpx.get(f"{orch.url}/internal/config", headers=tok("tok-a", gen))
    assert ok.status_code == 200
    assert ok.json()["access_token"] == "tok-a-SECRET-token-9999"  # in clear, for the bot only
    assert (
        httpx.get(
            f"{orch.url}/internal/instances/tok-a/config", headers=tok("tok-a", gen)
        ).status_code
        == 200
    )
    assert (
        httpx.get(
            f"{orch.url}/internal/instances/tok-b/config", headers=tok("tok-a", gen)
        ).status_code
        == 403
    )
    assert (
        httpx.get(f"{orch.url}/internal/config", headers=tok("tok-a", gen - 1)).status_code == 401
    )
    assert (
        httpx.get(f"{orch.url}/internal/config", headers=tok("tok-a", gen, minutes=-1)).status_code
        == 401
    )
    assert (
        httpx.get(
            f"{orch.url}/internal/config", headers=tok("tok-a", gen, key="wrong" * 10)
        ).status_code
        == 401
    )
    assert httpx.get(f"{orch.url}/internal/config").status_code == 401
    admin_as_bot = httpx.get(f"{orch.url}/internal/config", headers=orch.headers)
    assert admin_as_bot.status_code == 401
    refreshed = httpx.post(f"{orch.url}/internal/token/refresh", headers=tok("tok-a", gen))
    assert refreshed.status_code == 200
    new = {"Authorization": f"Bearer {refreshed.json()['token']}"}
    assert httpx.get(f"{orch.url}/internal/config", headers=new).status_code == 200
    ev = httpx.post(
        f"{orch.url}/internal/events", headers=new, json={"type": "error", "message": "test event"}
    )
    assert ev.status_code == 202
    # after a restart the old generation's token is refused
    orch.api("POST", "/admin/whatsapp/instances/tok-a/restart")
    orch.wait_state("whatsapp", "tok-a", "running")
    assert httpx.get(f"{orch.url}/internal/config", headers=new).status_code == 401
    orch.api("POST", "/admin/whatsapp/instances/tok-a/stop")


def test_delete_running_bot_stops_it(orch: OrchestratorProcess) -> None:
    orch.create_bot(name="Doomed")
    orch.api("POST", "/admin/whatsapp/instances/doomed/start")
    pid = orch.wait_state("whatsapp", "doomed", "running")["pid"]
    assert orch.api("DELETE", "/admin/whatsapp/instances/doomed").status_code == 204
    assert gone(pid)


def test_orchestrator_kill9_then_adopts(tmp_path: Path) -> None:
    orch = OrchestratorProcess(tmp_path).start()
    try:
        orch.create_bot(name="Survivor")
        orch.api("POST", "/admin/whatsapp/instances/survivor/start")
        pid = orch.wait_state("whatsapp", "survivor", "running")["pid"]
        orch.kill9()
        time.sleep(0.5)
        assert not gone(pid)  # the bot outlives the orchestrator
        orch.start()
        st = orch.wait_state("whatsapp", "survivor", "running")
        assert st["pid"] == pid  # adopted, not duplicated
        assert [p.pid for p in bot_processes("survivor")] == [pid]
        # adopted bots are still watched: kill -9 → respawn
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            st = orch.status("whatsapp", "survivor")
            if st["state"] == "running" and st["pid"] not in (None, pid):
                break
            time.sleep(0.05)
        assert st["state"] == "running"
        assert st["pid"] != pid
        # a graceful orchestrator shutdown stops its bots
        new_pid = st["pid"]
        orch.stop()
        assert gone(new_pid)
    finally:
        orch.close()


def test_many_starts_and_stops_at_once(orch: OrchestratorProcess) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ids = [orch.create_bot(name=f"Burst {n}")["id"] for n in range(16)]

    def call(action: str, bot_id: str) -> int:
        with httpx.Client(base_url=orch.url, timeout=60) as http:
            res = http.post(f"/admin/whatsapp/instances/{bot_id}/{action}", headers=orch.headers)
            return res.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(lambda i: call("start", i), ids)) == [200] * 16
    for bot_id in ids:
        orch.wait_state("whatsapp", bot_id, "running", timeout=60)
    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(lambda i: call("stop", i), ids)) == [200] * 16
    assert {orch.status("whatsapp", i)["state"] for i in ids} == {"stopped"}


def test_a_burst_of_100_start_requests_all_succeed(tmp_path: Path) -> None:
    """100 start requests at once used to starve the DB pool (threads blocked on it while the
    requests holding connections waited for a thread) and answer 500 after 30 s."""
    import asyncio

    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    ids = [f"burst-{n:03d}" for n in range(100)]
    orch = OrchestratorProcess(
        tmp_path,
        FLOTILLA_READY_TIMEOUT="1",
        FLOTILLA_BOT_COMMAND_OVERRIDE=json.dumps(dict.fromkeys(ids, sleeper)),
    ).start()
    try:
        for bot_id in ids:
            orch.create_bot(name=bot_id)

        async def burst(action: str) -> list[int]:
            async with httpx.AsyncClient(base_url=orch.url, headers=orch.headers,
                                         timeout=120) as http:
                res = await asyncio.gather(
                    *(http.post(f"/admin/whatsapp/instances/{i}/{action}") for i in ids))
            return [r.status_code for r in res]

        assert asyncio.run(burst("start")) == [200] * 100
        assert asyncio.run(burst("stop")) == [200] * 100
    finally:
        orch.close()
