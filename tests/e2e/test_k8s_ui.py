"""Browser: with bots on Kubernetes (the API stand-in), the admin UI starts a bot from the Bots
page, shows it crashed with the cluster's reason when its image cannot be pulled, and the Logs
tab says why there is no log; a bot with a good image turns green."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login, running_orchestrator, shot
from tests.support.k8s_standin import KubeStandIn
from tests.support.orchestrator_proc import OrchestratorProcess

BAD_IMAGE = "registry.example/flotilla:missing"


@pytest.fixture(scope="module")
def standin() -> Iterator[KubeStandIn]:
    st = KubeStandIn().start()
    st.bad_images.add(BAD_IMAGE)
    yield st
    st.stop()


@pytest.fixture(scope="module")
def orch(
    tmp_path_factory: pytest.TempPathFactory, standin: KubeStandIn
) -> Iterator[OrchestratorProcess]:
    yield from running_orchestrator(
        tmp_path_factory,
        FLOTILLA_SPAWNER="kubernetes",
        FLOTILLA_K8S_API_URL=standin.url,
        FLOTILLA_K8S_IMAGE=BAD_IMAGE,
        FLOTILLA_K8S_WATCH_TIMEOUT_S="5",
    )


def test_a_cluster_bot_whose_image_cannot_be_pulled_shows_crashed_with_the_reason(
    new_page: Any, orch: OrchestratorProcess, standin: KubeStandIn
) -> None:
    bot = orch.create_bot("sms", name="Cluster Shop")
    page = new_page()
    login(page)
    item = page.locator(f"li.bot[data-bot={bot['id']}]")
    item.get_by_role("button", name=re.compile("Start")).click()
    expect(item).to_have_attribute("data-state", "crashed", timeout=30_000)
    expect(item).to_contain_text("ImagePullBackOff")
    page.goto(f"/bots/sms/{bot['id']}/logs")
    status = page.locator("#bot-status")
    expect(status.get_by_test_id("state")).to_have_text("crashed")
    expect(status.locator(".err")).to_contain_text(f'Back-off pulling image "{BAD_IMAGE}"')
    expect(page.locator("body")).to_contain_text("waiting to start")
    shot(page, "k8s-crashed")
    # The cluster holds the bot's objects; the pod is the StatefulSet's.
    assert any(n.startswith("bot-sms-cluster-shop-") for n in standin.names("statefulsets"))
