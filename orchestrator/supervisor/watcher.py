"""A watcher: one bot's process and its state machine (starting, running, backoff, crashed,
stopping, stopped). The :class:`~orchestrator.supervisor.supervisor.Supervisor` owns one per bot
and does the spawning, logging and auditing the watcher asks for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

import psutil

from orchestrator.supervisor.backoff import FlappingDetector, respawn_delay
from orchestrator.supervisor.errors import SupervisorError
from orchestrator.supervisor.spawner import ProcessHandle, terminate_group

if TYPE_CHECKING:
    from orchestrator.supervisor.supervisor import Supervisor

logger = logging.getLogger(__name__)


class Watcher:
    """One bot's process and its state machine."""

    def __init__(self, sup: Supervisor, instance_id: str, kind: str) -> None:
        self.sup = sup
        self.instance_id = instance_id
        self.kind = kind
        self.state = "stopped"
        self.handle: ProcessHandle | None = None
        self.port: int | None = None
        self.gen = 0
        self.started_at: float | None = None
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_error: str | None = None
        #: the last ``error`` event the current process reported (why it is about to exit).
        self.bot_error: str | None = None
        #: why the running bot needs attention (it refuses every update), from its events.
        self.attention: str | None = None
        self.want_running = False
        self.flapping = FlappingDetector(
            sup.settings.flapping_attempts, sup.settings.flapping_window
        )
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self._ps: psutil.Process | None = None

    # ------------------------------------------------------------ state

    async def set_state(self, state: str, reason: str = "") -> None:
        old, self.state = self.state, state
        if old == state:
            return
        detail = {"from": old, "to": state}
        if reason:
            detail["reason"] = reason
        self.sup.bot_log(self.kind, self.instance_id, f"state {old} -> {state}", **detail)
        await self.sup.audit(self.instance_id, self.kind, f"bot.{state}", detail)

    def status(self) -> dict[str, Any]:
        pid = self.handle.pid if self.handle and self.state != "stopped" else None
        rss_mb = cpu = None
        if pid and self.handle and self.handle.alive():
            try:
                if self._ps is None or self._ps.pid != pid:
                    self._ps = psutil.Process(pid)
                    self._ps.cpu_percent(None)
                rss_mb = round(self._ps.memory_info().rss / 2**20, 1)
                cpu = self._ps.cpu_percent(None)
            except psutil.Error:
                pass
        uptime = (
            round(time.time() - self.started_at, 1)
            if self.started_at and self.state in ("running", "starting")
            else 0.0
        )
        return {
            "id": self.instance_id,
            "kind": self.kind,
            "state": self.state,
            "pid": pid,
            "port": self.port,
            "uptime_s": uptime,
            "rss_mb": rss_mb,
            "cpu_percent": cpu,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "last_error": self.last_error,
            "attention": self.attention if self.state in ("running", "starting") else None,
        }

    # ------------------------------------------------------------ run loop

    async def run(self, adopted: ProcessHandle | None = None) -> None:
        """Keep the bot running until ``want_running`` is cleared.

        A supervisor fault (not the bot's) ends in ``crashed`` with the reason, never in a
        watcher that died silently and a bot shown as ``starting`` forever.
        """
        try:
            await self._run(adopted)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("watcher failed", extra={"bot_id": self.instance_id})
            self.want_running = False
            self.last_error = f"supervisor error: {type(exc).__name__}: {exc}"
            await self.terminate()
            await self.set_state("crashed", self.last_error)

    async def _run(self, adopted: ProcessHandle | None) -> None:
        handle = adopted
        while self.want_running:
            if handle is None:
                await self.set_state("starting")
                try:
                    handle = await self.sup.spawn(self)
                except SupervisorError as exc:
                    self.last_error = exc.message
                    self.want_running = False
                    await self.set_state("stopped", exc.message)
                    return
            self.handle = handle
            if not self.want_running:  # stopped while we were spawning
                await self.terminate()
                await handle.wait()
                self.sup.remove_pidfile(self.kind, self.instance_id)
                return
            wait_task = asyncio.create_task(handle.wait())
            if adopted is None or handle is not adopted:
                await self._await_ready(wait_task)
            else:
                self.started_at = self.started_at or time.time()
                await self.set_state("running", "adopted")
            adopted = None
            code = await wait_task
            self.sup.remove_pidfile(self.kind, self.instance_id)
            self.sup.bot_log(self.kind, self.instance_id, "process exited", exit_code=code)
            if not self.want_running:
                self.last_exit_code = code
                return
            self.last_exit_code = code
            self.restarts += 1
            handle = None
            said = f": {self.bot_error}" if self.bot_error else ""
            if self.flapping.record_death():
                self.want_running = False
                self.last_error = (
                    f"exited {self.flapping.recent} times within "
                    f"{self.sup.settings.flapping_window:g} s (last exit code {code}{said}); "
                    "not restarting until started again"
                )
                await self.set_state("crashed", self.last_error)
                return
            delay = respawn_delay(
                self.flapping.recent,
                base=self.sup.settings.respawn_min_delay,
                cap=self.sup.settings.respawn_max_delay,
            )
            self.last_error = f"exited with code {code}{said}; respawning in {delay:.1f} s"
            await self.set_state("backoff", self.last_error)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)

    async def _await_ready(self, wait_task: asyncio.Task[int | None]) -> None:
        """Poll ``/control/health`` until the bot answers (→ ``running``) or exits. Past
        ``ready_timeout`` the bot is reported as slow in ``last_error`` and polled less often,
        so a bot that was only slow (a loaded machine) still becomes ``running``."""
        deadline = time.monotonic() + self.sup.settings.ready_timeout
        warned = False
        while not wait_task.done() and self.want_running:
            if await self.sup.control_get(self, "/control/health", timeout=1.0) is not None:
                self.last_error = None
                await self.set_state("running")
                return
            if time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                continue
            if not warned:
                warned = True
                self.last_error = "bot started but does not answer /control/health yet"
                self.sup.bot_log(self.kind, self.instance_id, self.last_error, level="WARNING")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(wait_task), timeout=1.0)

    # ------------------------------------------------------------ stop

    async def terminate(self) -> None:
        """SIGTERM, wait ``graceful_timeout``, then SIGKILL."""
        handle = self.handle
        if handle is None or not handle.alive():
            return
        await self.set_state("stopping")
        handle.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.sup.settings.graceful_timeout
        while handle.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if handle.alive():
            self.sup.bot_log(
                self.kind, self.instance_id, "did not stop after SIGTERM; SIGKILL", level="WARNING"
            )
            terminate_group(handle.pid)
            while handle.alive():
                await asyncio.sleep(0.02)
