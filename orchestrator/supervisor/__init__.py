"""The supervisor: one watcher per bot subprocess (circus vocabulary)."""

from orchestrator.supervisor.spawner import LocalProcessSpawner, ProcessHandle, Spawner, SpawnSpec
from orchestrator.supervisor.supervisor import Supervisor, SupervisorError

__all__ = [
    "LocalProcessSpawner",
    "ProcessHandle",
    "SpawnSpec",
    "Spawner",
    "Supervisor",
    "SupervisorError",
]
