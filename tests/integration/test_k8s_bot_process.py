"""A real bot as a Kubernetes workload: a real orchestrator (``FLOTILLA_SPAWNER=kubernetes``)
and the API stand-in in kubelet mode, which runs each pod's container (``python -m sms_bot``
with the env and Secret the spawner wrote) as a local process with its volume as a directory,
and plays the cluster network as an HTTP proxy for ``{service}.{namespace}.svc``.

create → start → running → a customer writes → kill the pod → restarted → stop → the volume
is kept → start → the same customer's row (funnel state and session data) is still there →
delete → nothing left, the volume's files included."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.supervisor.kubernetes import object_name, pvc_name
from tests.support.k8s_standin import KubeStandIn
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = pytest.mark.slow
CUSTOMER = "+14155550123"
RESOURCES = ("statefulsets", "services", "secrets", "persistentvolumeclaims", "pods")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeStandIn]:
    st = KubeStandIn(run_pods=tmp_path / "cluster").start()
    yield st
    st.stop()


def wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def customer_row(db_dir: Path) -> tuple[Any, ...] | None:
    files = sorted(db_dir.glob("*.db"))
    if not files:
        return None
    con = sqlite3.connect(f"file:{files[0]}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT id, funnel_state, segment, answers, data, first_seen FROM users "
            "ORDER BY id LIMIT 1"
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()


def test_a_real_bot_keeps_its_customer_across_pod_kill_stop_and_start(
    tmp_path: Path, cluster: KubeStandIn
) -> None:
    (tmp_path / "orch").mkdir()
    orch = OrchestratorProcess(
        tmp_path / "orch",
        FLOTILLA_SPAWNER="kubernetes",
        FLOTILLA_K8S_API_URL=cluster.url,
        FLOTILLA_K8S_WATCH_TIMEOUT_S="5",
        FLOTILLA_GRACEFUL_TIMEOUT="3",
        FLOTILLA_AI_EMBEDDING_MODEL_PATH=str(tmp_path / "no-model"),
        # The orchestrator reaches Services through the cluster network (the stand-in's proxy).
        HTTP_PROXY=cluster.proxy_url,
        NO_PROXY="127.0.0.1,localhost",
    )
    orch.env["FLOTILLA_K8S_ORCHESTRATOR_URL"] = orch.url  # how the bot calls back
    orch.start(timeout=60)
    try:
        bot = orch.create_bot("sms", name="Pod Shop", template="sales")  # a funnel with steps
        bot_id = bot["id"]
        pod = f"{object_name('sms', bot_id)}-0"
        volume = tmp_path / "cluster" / "pvc" / "flotilla" / pvc_name("sms", bot_id)
        assert orch.api("POST", f"/admin/sms/instances/{bot_id}/start").status_code == 200
        st = orch.wait_state("sms", bot_id, "running", timeout=60)
        assert st["pod"] == pod

        # A customer writes (the test chat: the orchestrator → the bot's Service).
        res = orch.api(
            "POST",
            f"/admin/sms/instances/{bot_id}/simulate",
            json={"from": CUSTOMER, "text": "hi"},
        )
        assert res.status_code == 202, res.text
        # The welcome step stores the customer and where they are in the funnel (its menu
        # view, in ``data``) on the volume.
        wait(lambda: '"view"' in str((customer_row(volume) or ())[4:5]), 30, "the customer")
        before = customer_row(volume)

        # Kill the pod: a new one, the same volume.
        cluster.kill_pod(pod)
        wait(lambda: orch.status("sms", bot_id)["restarts"] >= 1, 30, "the pod is replaced")
        orch.wait_state("sms", bot_id, "running", timeout=60)
        # The Logs tab reads the pod's log: the replaced process started again on it.
        lines = orch.api("GET", f"/admin/sms/instances/{bot_id}/logs").json()["lines"]
        assert sum('"bot started"' in line for line in lines) >= 2

        # Stop: the process ends, the volume stays.
        assert orch.api("POST", f"/admin/sms/instances/{bot_id}/stop").status_code == 200
        orch.wait_state("sms", bot_id, "stopped", timeout=30)
        assert cluster.procs == {}
        assert cluster.get("persistentvolumeclaims", pvc_name("sms", bot_id)) is not None

        # Start again: the same customer, funnel state and all.
        assert orch.api("POST", f"/admin/sms/instances/{bot_id}/start").status_code == 200
        orch.wait_state("sms", bot_id, "running", timeout=60)
        assert customer_row(volume) == before
        res = orch.api(
            "POST",
            f"/admin/sms/instances/{bot_id}/simulate",
            json={"from": CUSTOMER, "text": "again"},
        )
        assert res.status_code == 202, res.text

        # Delete: nothing left, the volume's files included.
        assert orch.api("DELETE", f"/admin/sms/instances/{bot_id}").status_code == 204
        wait(lambda: not any(cluster.names(r) for r in RESOURCES), 30, "everything deleted")
        assert not volume.exists()
    finally:
        orch.close()
