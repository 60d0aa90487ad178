"""Fixtures of the fault suite: one sandbox and one orchestrator process per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.fleet import SandboxProcess, scan_for_secrets
from tests.support.orchestrator_proc import OrchestratorProcess

#: Supervisor knobs: respawn fast so a kill -9 costs well under a second of downtime.
ORCHESTRATOR_ENV = {
    "FLOTILLA_RESPAWN_MIN_DELAY": "0.2",
    "FLOTILLA_RESPAWN_MAX_DELAY": "2",
    "FLOTILLA_FLAPPING_ATTEMPTS": "4",
    "FLOTILLA_FLAPPING_WINDOW": "30",
    "FLOTILLA_READY_TIMEOUT": "20",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """The sandbox Graph API in its own process."""
    box = SandboxProcess(tmp_path_factory.mktemp("sandbox")).start()
    yield box
    box.close()


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    """A real orchestrator process with fast respawns."""
    proc = OrchestratorProcess(tmp_path_factory.mktemp("orch"), **ORCHESTRATOR_ENV).start()
    yield proc
    proc.close()
    # Every log the module's orchestrator and bots wrote: no configured secret in clear.
    logs = [proc.root / "orchestrator.log", *(proc.root / "logs").glob("*.log*")]
    leaked = scan_for_secrets(logs)
    assert not leaked, leaked
