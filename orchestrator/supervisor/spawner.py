"""Starting bot processes. ``LocalProcessSpawner`` runs them on this machine;
``ClusterSpawner`` is the interface of a spawner whose scheduler runs and restarts them
(``orchestrator.supervisor.kubernetes.KubernetesSpawner``: one StatefulSet per bot)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from shared.channels import registry

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(slots=True)
class SpawnSpec:
    """What a bot process needs: its module, environment and log file."""

    instance_id: str
    kind: str
    env: dict[str, str]
    log_path: Path
    argv: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        """``python -m {module}`` (the channel manifest's module, e.g. ``whatsapp_bot``) unless
        ``argv`` overrides it (tests)."""
        return self.argv or [sys.executable, "-m", registry.get(self.kind).module]


class ProcessHandle(ABC):
    """A running bot process, spawned by us or adopted from an earlier orchestrator."""

    pid: int
    create_time: float

    @abstractmethod
    async def wait(self) -> int | None:
        """Wait for the process to end; return its exit code (``None`` when unknowable)."""

    def alive(self) -> bool:
        """Whether the process still runs (and is the one we started)."""
        try:
            proc = psutil.Process(self.pid)
            return (
                proc.is_running()
                and abs(proc.create_time() - self.create_time) < 0.05
                and (proc.status() != psutil.STATUS_ZOMBIE)
            )
        except psutil.Error:
            return False

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the bot's process group (it runs in its own session)."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class ChildHandle(ProcessHandle):
    """A process this orchestrator spawned (``asyncio`` knows its exit at once)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid
        try:
            self.create_time = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            self.create_time = time.time()

    async def wait(self) -> int | None:
        return await self.proc.wait()

    def alive(self) -> bool:
        return self.proc.returncode is None


class AdoptedHandle(ProcessHandle):
    """A bot left running by an earlier orchestrator; not our child, so its exit is polled."""

    def __init__(self, pid: int, create_time: float, poll: float = 0.1) -> None:
        self.pid = pid
        self.create_time = create_time
        self.poll = poll

    async def wait(self) -> int | None:
        while self.alive():
            await asyncio.sleep(self.poll)
        return None


class Spawner(ABC):
    """Starts bot processes."""

    @abstractmethod
    async def spawn(self, spec: SpawnSpec) -> ProcessHandle:
        """Start the bot described by ``spec``."""


class ClusterSpawner(Spawner):
    """Bots as workloads of a cluster scheduler (Kubernetes), which restarts them itself: the
    supervisor hands start, stop, restart and delete to it and shows the states it reports
    (from one watch), instead of watching a local process.

    ``on_change(instance_id, kind)`` is called on the event loop whenever a bot's
    :meth:`view` may have changed."""

    async def spawn(self, spec: SpawnSpec) -> ProcessHandle:
        raise NotImplementedError("a cluster spawner runs bots with apply(), not spawn()")

    @abstractmethod
    async def startup(self, on_change: Callable[[str, str], None]) -> dict[str, dict[str, Any]]:
        """Start watching; return the bots the cluster already runs (id → their ``view``)."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Stop watching (the bots keep running: they are the cluster's)."""

    @abstractmethod
    async def apply(self, spec: SpawnSpec, port: int, gen: int) -> None:
        """Create or update the bot's objects and run it (one replica)."""

    @abstractmethod
    async def refresh_secret(self, spec: SpawnSpec) -> None:
        """Replace the tokens in the bot's Secret (its pod keeps running)."""

    @abstractmethod
    async def scale_down(self, kind: str, instance_id: str) -> None:
        """Stop the bot; its volume stays."""

    @abstractmethod
    async def rollout(self, spec: SpawnSpec, port: int, gen: int) -> None:
        """Replace the running bot's pod (new tokens, same volume)."""

    @abstractmethod
    async def delete(self, kind: str, instance_id: str) -> None:
        """Remove every object of the bot, its volume included."""

    @abstractmethod
    def view(self, instance_id: str) -> dict[str, Any] | None:
        """The bot's last known state: ``state``, ``reason``, ``restarts``, ``pod``, ``node``,
        ``last_exit_code``, ``started_at``, ``replicas`` (``None`` when it has no objects)."""

    @abstractmethod
    def bot_host(self, kind: str, instance_id: str) -> str:
        """The host name the orchestrator reaches the bot at."""

    @abstractmethod
    def logs(self, kind: str, instance_id: str, lines: int) -> list[str]:
        """The last ``lines`` lines the bot wrote (blocking: call from a thread)."""


#: Orchestrator settings a bot must never see (it gets its own config through the internal API).
_PRIVATE_PREFIXES = ("FLOTILLA_", "DATABASE_URL")
#: ... except these, which a bot needs too: the plugin channels (a plugin bot's manifest).
_SHARED_NAMES = frozenset({registry.PLUGINS_ENV})


def bot_safe_environ() -> dict[str, str]:
    """The orchestrator's environment without its own secrets and settings
    (``FLOTILLA_SECRET_KEY`` signs every token; AI API keys; the database URL); the plugin
    channel list (``FLOTILLA_CHANNEL_PLUGINS``) is passed on."""
    return {
        k: v
        for k, v in os.environ.items()
        if k in _SHARED_NAMES or not k.startswith(_PRIVATE_PREFIXES)
    }


class LocalProcessSpawner(Spawner):
    """``python -m {module}`` in its own process group, output appended to its log file."""

    async def spawn(self, spec: SpawnSpec) -> ProcessHandle:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND so the supervisor can rotate by copy-and-truncate while the bot writes.
        fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            env = {**bot_safe_environ(), **spec.env}
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            )
            env["PYTHONUNBUFFERED"] = "1"
            proc = await asyncio.create_subprocess_exec(
                *spec.command(),
                cwd=str(REPO_ROOT),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
            )
        finally:
            os.close(fd)
        return ChildHandle(proc)


def terminate_group(pid: int) -> None:
    """SIGKILL a process group if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
