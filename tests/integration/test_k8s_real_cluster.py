"""Opt-in: the stand-in scenarios against a real cluster (kind, k3d, minikube...).

Runs only when ``KUBECONFIG`` is set and ``FLOTILLA_TEST_K8S_NAMESPACE`` names an existing,
disposable namespace (everything the tests make is deleted again):

    kind create cluster
    kubectl create namespace flotilla-test
    FLOTILLA_TEST_K8S_NAMESPACE=flotilla-test KUBECONFIG=~/.kube/config \\
        .venv/bin/pytest -q tests/integration/test_k8s_real_cluster.py

The bot's command is ``python -m http.server`` on its port (``bot_command_override``), so any
image with Python works (``FLOTILLA_TEST_K8S_IMAGE``, default ``python:3.11-slim``) and no
orchestrator needs to be reachable from the cluster; the cluster's default storage class
provides the volumes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import client, config

from orchestrator.supervisor.kubernetes import KubernetesSpawner, object_name, pvc_name
from tests.conftest import make_settings
from tests.integration.test_k8s_spawner import Fleet, running

NAMESPACE = os.environ.get("FLOTILLA_TEST_K8S_NAMESPACE", "")
IMAGE = os.environ.get("FLOTILLA_TEST_K8S_IMAGE", "python:3.11-slim")

pytestmark = [
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and NAMESPACE),
        reason="set KUBECONFIG and FLOTILLA_TEST_K8S_NAMESPACE to run against a real cluster",
    ),
    pytest.mark.slow,
]


@pytest.fixture
async def real(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[Fleet, client.CoreV1Api]]:
    ids = ("real-life", "real-nopull")
    settings = make_settings(
        tmp_path,
        sqlite_url,
        spawner="kubernetes",
        k8s_namespace=NAMESPACE,
        k8s_image=IMAGE,
        k8s_memory_request="32Mi",
        k8s_cpu_request="10m",
        port_range_start=18100,
        port_range_end=18199,
        bot_command_override={i: ["python", "-m", "http.server", "18100"] for i in ids},
    )
    fleet = Fleet(settings)
    assert isinstance(fleet.sup.spawner, KubernetesSpawner)
    await fleet.sup.startup()
    config.load_kube_config()
    core = client.CoreV1Api()
    try:
        yield fleet, core
    finally:
        for instance_id in ids:
            await fleet.sup.forget(instance_id)
        await fleet.sup.shutdown()
        fleet.engine.dispose()


async def test_real_cluster_lifecycle(real: tuple[Fleet, client.CoreV1Api]) -> None:
    fleet, core = real
    fleet.add("real-life")
    await fleet.sup.start("real-life", "sms")
    st = await fleet.wait("real-life", running, timeout=180)
    pod = st["pod"]
    assert pod == f"{object_name('sms', 'real-life')}-0"
    core.delete_namespaced_pod(pod, NAMESPACE)
    await fleet.wait("real-life", lambda s: running(s) and s["restarts"] >= 1, timeout=180)
    await fleet.sup.stop("real-life", "sms")
    claim = core.read_namespaced_persistent_volume_claim(pvc_name("sms", "real-life"), NAMESPACE)
    assert claim.metadata.name == pvc_name("sms", "real-life")
    await fleet.sup.start("real-life", "sms")
    await fleet.wait("real-life", running, timeout=180)
    await fleet.sup.forget("real-life")
    name = object_name("sms", "real-life")
    deadline = time.monotonic() + 120
    left: list[str] = ["?"]
    while time.monotonic() < deadline and left:
        selector = f"flotilla.dev/bot={name}"
        left = [
            p.metadata.name
            for p in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        ]
        left += [
            c.metadata.name
            for c in core.list_namespaced_persistent_volume_claim(
                NAMESPACE, label_selector=selector
            ).items
            if c.metadata.deletion_timestamp is None
        ]
        await asyncio.sleep(1)
    assert left == []


async def test_real_cluster_image_that_cannot_be_pulled(
    real: tuple[Fleet, client.CoreV1Api],
) -> None:
    fleet, _core = real
    fleet.sup.settings.k8s_image = "registry.invalid/flotilla:none"
    fleet.add("real-nopull")
    await fleet.sup.start("real-nopull", "sms")
    st = await fleet.wait("real-nopull", lambda s: s["state"] == "crashed", timeout=180)
    assert st["last_error"].startswith(("ErrImagePull", "ImagePullBackOff"))
