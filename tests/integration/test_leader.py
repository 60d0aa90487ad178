"""Leader election (orchestrator/supervisor/leader.py) for real: PostgreSQL advisory locks held
by separate sessions, then orchestrator processes on one PostgreSQL running their bots on the
Kubernetes API stand-in: kill -9 the leader, the follower leads within 10 s, and the job that
must run once (starting the ``auto_start`` bots) ran once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from orchestrator.supervisor.leader import LeaderElector, lock_key
from tests.conftest import POSTGRES_URL, _reset_postgres
from tests.support.k8s_standin import KubeStandIn
from tests.support.orchestrator_proc import OrchestratorProcess

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="FLOTILLA_TEST_POSTGRES_URL is not set (.ci/run sets it)"
)


async def test_sqlite_is_a_single_instance_and_always_leads(tmp_path: Path) -> None:
    elected: list[str] = []
    leader = LeaderElector(f"sqlite:///{tmp_path / 'o.db'}")

    async def note() -> None:
        elected.append("yes")

    leader.on_elected(note)
    await leader.start()
    assert leader.is_leader
    assert elected == ["yes"]
    await leader.stop()
    assert not leader.is_leader


def test_lock_keys_are_stable_and_distinct() -> None:
    assert lock_key("orchestrator") == lock_key("orchestrator")
    assert lock_key("orchestrator") != lock_key("other")
    assert -(2**63) <= lock_key("orchestrator") < 2**63


@needs_postgres
async def test_one_session_leads_and_the_next_takes_over_when_it_goes() -> None:
    url = _reset_postgres(POSTGRES_URL)
    events: list[tuple[str, str]] = []

    def elector(name: str) -> LeaderElector:
        e = LeaderElector(url, name="unit-test", poll_s=0.1)

        async def up() -> None:
            events.append((name, "elected"))

        async def down() -> None:
            events.append((name, "demoted"))

        e.on_elected(up)
        e.on_demoted(down)
        return e

    a, b = elector("a"), elector("b")
    await a.start()
    await b.start()
    try:
        await asyncio.sleep(0.5)
        assert (a.is_leader, b.is_leader) == (True, False)
        # The leader's session ends (as when its process dies): the follower takes over.
        await a._conn.close()
        for _ in range(50):
            if b.is_leader:
                break
            await asyncio.sleep(0.1)
        assert b.is_leader
        for _ in range(50):
            if not a.is_leader:
                break
            await asyncio.sleep(0.1)
        # a noticed it lost its session and stepped down, and did not win the lock back.
        assert not a.is_leader
        await asyncio.sleep(0.5)
        assert (a.is_leader, b.is_leader) == (False, True)
        assert events[:1] == [("a", "elected")]
        assert ("b", "elected") in events
        assert ("a", "demoted") in events
        assert events.count(("b", "elected")) == 1
    finally:
        await a.stop()
        await b.stop()


def _health(orch: OrchestratorProcess) -> dict[str, Any]:
    return orch.http.get("/health").json()  # type: ignore[no-any-return]


def _wait(pred: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def standin() -> Iterator[KubeStandIn]:
    st = KubeStandIn().start()
    yield st
    st.stop()


@needs_postgres
@pytest.mark.slow
def test_two_orchestrators_kill9_the_leader_the_other_leads_and_jobs_ran_once(
    tmp_path: Path, standin: KubeStandIn
) -> None:
    url = _reset_postgres(POSTGRES_URL)
    procs: list[OrchestratorProcess] = []

    def orchestrator(name: str) -> OrchestratorProcess:
        (tmp_path / name).mkdir()
        proc = OrchestratorProcess(
            tmp_path / name,
            FLOTILLA_SPAWNER="kubernetes",
            FLOTILLA_K8S_API_URL=standin.url,
            FLOTILLA_K8S_WATCH_TIMEOUT_S="5",
            FLOTILLA_LEADER_POLL_S="0.5",
            # No embedding model: these replicas never answer a knowledge-base question.
            FLOTILLA_AI_EMBEDDING_MODEL_PATH=str(tmp_path / "no-model"),
        )
        proc.env["FLOTILLA_DATABASE_URL"] = url
        procs.append(proc)
        return proc.start(timeout=60)

    try:
        first = orchestrator("a")
        assert _health(first)["leader"] is True
        second = orchestrator("b")
        time.sleep(1.5)  # three election rounds
        assert _health(second)["leader"] is False
        # Both serve the API on the same store.
        bot = first.create_bot("sms", name="Shop", auto_start=True)
        assert second.api("GET", f"/admin/sms/instances/{bot['id']}").status_code == 200
        assert standin.names("statefulsets") == []  # auto_start applies at election

        first.kill9()
        took = _wait(lambda: _health(second)["leader"] is True, 10, "the follower leads")
        assert took < 10
        # The new leader started the auto_start bot, and both see it run.
        _wait(lambda: second.status("sms", bot["id"])["state"] == "running", 10, "bot runs")

        # A third replica joins as a follower and runs nothing.
        third = orchestrator("c")
        time.sleep(1.5)
        assert _health(third)["leader"] is False
        assert _health(second)["leader"] is True
        assert third.status("sms", bot["id"])["state"] == "running"

        creates = [p for m, p in standin.requests if m == "POST" and p.endswith("/statefulsets")]
        assert len(creates) == 1
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT action, detail FROM audit_log WHERE object_type = 'orchestrator'")
                ).all()
                gen = conn.execute(
                    text("SELECT spawn_generation FROM bot_instances WHERE id = :id"),
                    {"id": bot["id"]},
                ).scalar_one()
        finally:
            engine.dispose()
        actions = [r[0] for r in rows]
        assert actions.count("leader.elected") == 2  # a at its start, b after the kill
        assert actions.count("fleet.auto_start") == 1
        assert gen == 1  # one start, never a second one racing it
    finally:
        for proc in procs:
            proc.close()
