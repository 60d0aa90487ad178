"""Supervisor: watches one subprocess per bot, respawns with backoff, gives up when flapping,
adopts bots an earlier orchestrator left running, and rotates their log files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator import crud
from orchestrator.models import BotInstance
from orchestrator.security import create_control_token, create_internal_token
from orchestrator.settings import Settings
from orchestrator.supervisor.errors import SupervisorError
from orchestrator.supervisor.leader import LeaderElector
from orchestrator.supervisor.spawner import (
    AdoptedHandle,
    ClusterSpawner,
    LocalProcessSpawner,
    ProcessHandle,
    Spawner,
    SpawnSpec,
)
from orchestrator.supervisor.watcher import Watcher
from shared.tokens import control_key

logger = logging.getLogger(__name__)

STATES = ("stopped", "starting", "running", "stopping", "backoff", "crashed")


def log_path(settings: Settings, kind: str, instance_id: str) -> Path:
    """``logs/{kind}_bot_{id}.log``."""
    return settings.logs_dir / f"{kind}_bot_{instance_id}.log"


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` (SO_REUSEADDR, as the bot binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def spawner_for(settings: Settings) -> Spawner:
    """The spawner ``FLOTILLA_SPAWNER`` names: local processes (default) or Kubernetes."""
    if settings.spawner == "kubernetes":
        from orchestrator.supervisor.kubernetes import KubernetesSpawner

        return KubernetesSpawner(settings)
    return LocalProcessSpawner()


class Supervisor:
    """Owns every bot watcher."""

    def __init__(self, settings: Settings, engine: Engine, spawner: Spawner | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.spawner = spawner or spawner_for(settings)
        #: Set when a cluster (Kubernetes) runs the bots: start, stop, restart, delete, states
        #: and logs go to it (the ``_cluster_*`` methods); the local path is the rest.
        self.cluster = self.spawner if isinstance(self.spawner, ClusterSpawner) else None
        self._syncs: set[asyncio.Task[None]] = set()
        #: The replica election (set by create_app); ``None``: a lone orchestrator.
        self.leader: LeaderElector | None = None
        self._leader_jobs: list[asyncio.Task[None]] = []
        self.watchers: dict[str, Watcher] = {}
        self.secret_key = settings.resolved_secret_key()
        self.run_dir = settings.data_dir / "run"
        self._http: httpx.AsyncClient | None = None
        self._rotator: asyncio.Task[None] | None = None
        self._prepare_lock = threading.Lock()

    # ------------------------------------------------------------ helpers

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        return self._http

    def bot_log(
        self, kind: str, instance_id: str, msg: str, level: str = "INFO", **extra: Any
    ) -> None:
        """Append a supervisor line to the bot's own log file (and the orchestrator log)."""
        line = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": "flotilla.supervisor",
            "msg": msg,
            "bot_id": instance_id,
            **extra,
        }
        path = log_path(self.settings, kind, instance_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, default=str) + "\n")
        except OSError:
            logger.warning("cannot write bot log", extra={"bot_id": instance_id})
        logger.log(logging.getLevelName(level), msg, extra={"bot_id": instance_id, **extra})

    async def audit(
        self, instance_id: str, kind: str, action: str, detail: dict[str, Any]
    ) -> None:
        def write() -> None:
            with Session(self.engine) as session:
                crud.audit(
                    session=session,
                    actor=None,
                    action=action,
                    object_type=kind,
                    object_id=instance_id,
                    detail=detail,
                )

        try:
            await asyncio.to_thread(write)
        except Exception:
            logger.exception("audit write failed", extra={"bot_id": instance_id})

    def watcher(self, instance_id: str, kind: str) -> Watcher:
        w = self.watchers.get(instance_id)
        if w is None or w.kind != kind:
            w = Watcher(self, instance_id, kind)
            self.watchers[instance_id] = w
        return w

    def pidfile(self, kind: str, instance_id: str) -> Path:
        return self.run_dir / f"{kind}_bot_{instance_id}.json"

    def remove_pidfile(self, kind: str, instance_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pidfile(kind, instance_id).unlink()

    def write_pidfile(self, w: Watcher, handle: ProcessHandle, cmdline: list[str]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "pid": handle.pid,
            "create_time": handle.create_time,
            "cmdline": cmdline,
            "gen": w.gen,
            "port": w.port,
            "kind": w.kind,
            "instance_id": w.instance_id,
        }
        tmp = self.pidfile(w.kind, w.instance_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.pidfile(w.kind, w.instance_id))

    async def control_get(
        self, w: Watcher, path: str, timeout: float = 2.0
    ) -> dict[str, Any] | None:
        """GET a bot's control API with a fresh token; ``None`` when it does not answer 200."""
        return await self.control_call(w, "GET", path, timeout=timeout)

    async def control_call(
        self,
        w: Watcher,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any] | None:
        """Call a bot's control API; ``None`` when it does not answer 2xx."""
        if w.port is None:
            return None
        token = create_control_token(self.secret_key, instance_id=w.instance_id, gen=w.gen)
        try:
            res = await self.http.request(
                method,
                f"http://{self.bot_host(w.kind, w.instance_id)}:{w.port}{path}",
                headers={"Authorization": f"Bearer {token}"},
                json=json_body,
                timeout=timeout,
            )
        except httpx.HTTPError:
            return None
        if res.status_code // 100 != 2:
            return None
        try:
            body = res.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {"data": body}

    # ------------------------------------------------------------ spawning

    def _allocate_port(self, session: Session, instance: BotInstance) -> int:
        used = crud.used_ports(session=session)
        reserved = {self.settings.port, self.settings.sandbox_port}
        for port in range(self.settings.port_range_start, self.settings.port_range_end + 1):
            if port in used or port in reserved:
                continue
            if port_is_free(self.settings.bot_host, port):
                return port
        raise SupervisorError(
            409,
            f"no free port in {self.settings.port_range_start}-{self.settings.port_range_end}",
        )

    def _startable(self, session: Session, instance_id: str) -> tuple[BotInstance, bool]:
        """The instance if it may start, and whether it needs a port allocated.

        Raises:
            SupervisorError: missing (404), disabled or its chosen port taken (409).
        """
        instance = session.get(BotInstance, instance_id)
        if instance is None:
            raise SupervisorError(404, "bot not found")
        if not instance.enabled:
            raise SupervisorError(409, "bot is disabled; enable it before starting")
        from orchestrator.crud import InstanceRules, start_refusal

        refusal = start_refusal(instance, InstanceRules.from_settings(self.settings))
        if refusal:
            raise SupervisorError(409, refusal)
        port = instance.webhook_port
        if port is None:
            return instance, True
        if port_is_free(self.settings.bot_host, port):
            return instance, False
        if (instance.config or {}).get("port_auto"):
            return instance, True  # ours was allocated and something else took it: move
        raise SupervisorError(
            409, f"port {port} is already in use by another program; choose another port"
        )

    def _prepare(self, w: Watcher) -> tuple[BotInstance, int, int]:
        # One at a time: two bots starting together must not both pick the same free port.
        with self._prepare_lock, Session(self.engine) as session:
            instance, allocate = self._startable(session, w.instance_id)
            if allocate:
                instance.webhook_port = self._allocate_port(session, instance)
                instance.config = {**(instance.config or {}), "port_auto": True}
            port = int(instance.webhook_port or 0)
            instance.spawn_generation += 1
            session.add(instance)
            session.commit()
            return instance, port, instance.spawn_generation

    def bot_host(self, kind: str, instance_id: str) -> str:
        """Where the orchestrator reaches a bot: ``bot_host``, or its Service's DNS name."""
        if self.cluster is not None:
            return self.cluster.bot_host(kind, instance_id)
        return self.settings.bot_host

    async def spawn(self, w: Watcher) -> ProcessHandle:
        """Allocate, mint tokens and start the bot's process."""
        instance, port, gen = await asyncio.to_thread(self._prepare, w)
        w.port, w.gen = port, gen
        spec = self.spawn_spec(w, port, gen)
        w.bot_error = None
        w.attention = None
        handle = await self.spawner.spawn(spec)
        w.started_at = time.time()
        w._ps = None
        try:
            self.write_pidfile(w, handle, spec.command())
        except OSError as exc:
            # Only adoption after an orchestrator crash needs it; the bot itself may still run
            # (or report why it cannot, e.g. the same read-only data directory).
            self.bot_log(w.kind, w.instance_id, "cannot write pid file", level="WARNING",
                         error=str(exc))
        self.bot_log(w.kind, w.instance_id, "spawned", pid=handle.pid, port=port, gen=gen)
        return handle

    def spawn_spec(self, w: Watcher, port: int, gen: int) -> SpawnSpec:
        """The bot's module, environment (fresh tokens for ``gen``) and log file."""
        token = create_internal_token(
            self.secret_key,
            instance_id=w.instance_id,
            kind=w.kind,
            gen=gen,
            minutes=self.settings.internal_token_minutes,
        )
        env = {
            "BOT_INSTANCE_ID": w.instance_id,
            "BOT_KIND": w.kind,
            "BOT_INTERNAL_TOKEN": token,
            "BOT_CONTROL_KEY": control_key(self.secret_key, w.instance_id, gen),
            "ORCHESTRATOR_URL": self.settings.orchestrator_url,
            "BOT_DATA_DIR": str(self.settings.data_dir.resolve()),
            "BOT_PORT": str(port),
            "BOT_HOST": self.settings.bot_host,
        }
        if self.settings.public_url:
            env["BOT_PUBLIC_URL"] = self.settings.public_url
        if w.kind == "whatsapp":
            env["WA_INSTANCE_ID"] = w.instance_id
            env["WA_INTERNAL_TOKEN"] = token
        return SpawnSpec(
            instance_id=w.instance_id,
            kind=w.kind,
            env=env,
            log_path=log_path(self.settings, w.kind, w.instance_id),
            argv=list(self.settings.bot_command_override.get(w.instance_id, [])),
        )

    # ------------------------------------------------------------ public API

    async def start(self, instance_id: str, kind: str) -> dict[str, Any]:
        """Start a bot (no-op when it already runs). Raises :class:`SupervisorError`."""
        w = self.watcher(instance_id, kind)
        if self.cluster is not None:
            return await self._cluster_start(w)
        async with w.lock:
            if w.task is not None and not w.task.done():
                return w.status()
            w.flapping.reset()
            w.want_running = True
            w.last_error = None
            w.handle = None
            # Check port and enabled now so the caller gets the reason in its answer.
            try:
                await asyncio.to_thread(self._precheck, w)
            except SupervisorError as exc:
                w.want_running = False
                w.last_error = exc.message
                self.bot_log(
                    kind, instance_id, "start refused", level="WARNING", reason=exc.message
                )
                raise
            w.task = asyncio.create_task(w.run(), name=f"watcher:{instance_id}")
            await asyncio.sleep(0)
        return w.status()

    def _precheck(self, w: Watcher) -> None:
        with Session(self.engine) as session:
            self._startable(session, w.instance_id)

    async def stop(self, instance_id: str, kind: str) -> dict[str, Any]:
        """Stop a bot gracefully (SIGTERM, ``graceful_timeout``, SIGKILL)."""
        w = self.watcher(instance_id, kind)
        if self.cluster is not None:
            return await self._cluster_stop(w)
        async with w.lock:
            w.want_running = False
            w.wake.set()
            await w.terminate()
            if w.task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(w.task), timeout=10)
                if not w.task.done():
                    w.task.cancel()
            await w.terminate()  # a spawn that raced with this stop
            w.task = None
            self.remove_pidfile(kind, instance_id)
            if w.state != "stopped":
                await w.set_state("stopped")
            w.started_at = None
        return w.status()

    async def restart(self, instance_id: str, kind: str) -> dict[str, Any]:
        """Stop, then start (in a cluster: a rollout, the volume stays attached)."""
        if self.cluster is not None:
            return await self._cluster_start(self.watcher(instance_id, kind), restart=True)
        await self.stop(instance_id, kind)
        return await self.start(instance_id, kind)

    def note_bot_event(self, instance_id: str, type_: str, message: str) -> None:
        """Remember a running bot's ``error`` event (it explains the exit that usually follows)
        and its ``attention`` / ``attention_cleared`` events (the "needs attention" state of a
        bot that runs but refuses its provider's updates; see shared.botkit.attention)."""
        w = self.watchers.get(instance_id)
        if w is None:
            return
        if type_ == "error" and message:
            w.bot_error = message[:500]
        elif type_ == "attention":
            w.attention = (message or "the bot reports a problem")[:500]
        elif type_ == "attention_cleared":
            w.attention = None

    def status(self, instance_id: str, kind: str) -> dict[str, Any]:
        """The bot's state, pid, port, uptime, memory, CPU, restarts and last error."""
        w = self.watchers.get(instance_id)
        if self.cluster is not None:
            return self._cluster_status(instance_id, kind, w)
        if w is None:
            return Watcher(self, instance_id, kind).status()
        return w.status()

    async def forget(self, instance_id: str) -> None:
        """Stop a bot that is being deleted and drop its watcher."""
        w = self.watchers.get(instance_id)
        if self.cluster is not None:
            await self._cluster_delete(instance_id, w)
            return
        if w is not None:
            await self.stop(instance_id, w.kind)
            self.watchers.pop(instance_id, None)

    async def reload(self, instance_id: str) -> bool:
        """Tell a running bot to fetch its config again."""
        w = self.watchers.get(instance_id)
        if w is None or w.state != "running":
            return False
        return await self.control_call(w, "POST", "/control/reload") is not None

    def tail(self, kind: str, instance_id: str, lines: int) -> list[str]:
        """The last ``lines`` lines of the bot's log file (in a cluster: of its pod's log)."""
        if self.cluster is not None:
            return self.cluster.logs(kind, instance_id, lines)
        path = log_path(self.settings, kind, instance_id)
        if not path.exists():
            return []
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block = 64 * 1024
            data = b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                fh.seek(size)
                data = fh.read(step) + data
        out = deque(data.decode("utf-8", "replace").splitlines(), maxlen=lines)
        return list(out)

    # ------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        """Adopt bots an earlier orchestrator left running, then start ``auto_start`` bots."""
        adopted = await (self._cluster_adopt() if self.cluster is not None else self._adopt())
        if self.cluster is not None and self.leader is not None:
            # Replicas share the cluster's bots: only the elected one starts them.
            self.leader.on_elected(self._elected)
            self.leader.on_demoted(self._demoted)
        elif self.settings.auto_start_bots:
            await self._auto_start(adopted)
        self._rotator = asyncio.create_task(self._rotate_logs_forever(), name="log-rotator")

    async def _auto_start(self, adopted: set[str]) -> list[str]:
        """Start the enabled ``auto_start`` bots that do not run yet; return their ids."""
        with Session(self.engine) as session:
            autos = [
                (b.id, b.kind)
                for b in crud.list_instances(session=session)
                if b.auto_start and b.enabled
            ]
        started: list[str] = []
        for instance_id, kind in autos:
            if instance_id in adopted:
                continue
            if self.cluster is not None and (self.cluster.view(instance_id) or {}).get(
                "replicas"
            ):
                continue  # the cluster runs it already
            try:
                await self.start(instance_id, kind)
                started.append(instance_id)
            except SupervisorError as exc:
                logger.warning(
                    "auto-start failed", extra={"bot_id": instance_id, "reason": exc.message}
                )
        return started

    async def _elected(self) -> None:
        """This replica now leads: note it, and (in the background, so the replica serves at
        once) start the ``auto_start`` bots not running and keep the bots' Secrets fresh."""
        replica = self.leader.identity if self.leader is not None else ""
        await self.audit("", "orchestrator", "leader.elected", {"replica": replica})
        self._leader_jobs = [
            asyncio.create_task(self._leader_auto_start(replica), name="leader:auto-start"),
            asyncio.create_task(self._refresh_secrets_forever(), name="leader:secrets"),
        ]

    async def _demoted(self) -> None:
        for task in self._leader_jobs:
            task.cancel()
        self._leader_jobs = []

    async def _leader_auto_start(self, replica: str) -> None:
        if not self.settings.auto_start_bots:
            return
        started = await self._auto_start(set())
        if started:
            await self.audit(
                "", "orchestrator", "fleet.auto_start", {"replica": replica, "bots": started}
            )

    async def refresh_cluster_secrets(self) -> int:
        """Put fresh internal tokens (same generation) in the Secret of every bot the cluster
        runs: a container the kubelet restarts reads its token from there, and the one it was
        started with may have expired (``internal_token_minutes``). Returns how many."""
        cluster = self._cluster_spawner()
        done = 0
        for w in list(self.watchers.values()):
            if not w.want_running or not w.port or not w.gen:
                continue
            try:
                await cluster.refresh_secret(self.spawn_spec(w, w.port, w.gen))
                done += 1
            except SupervisorError as exc:
                logger.warning(
                    "cannot refresh a bot's Secret",
                    extra={"bot_id": w.instance_id, "reason": exc.message},
                )
        return done

    async def _refresh_secrets_forever(self) -> None:
        """A third of the token lifetime apart: a token in a Secret is never near expiry."""
        every = max(60.0, self.settings.internal_token_minutes * 60 / 3)
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh_cluster_secrets()
            except Exception:
                logger.exception("secret refresh failed")

    async def _adopt(self) -> set[str]:
        adopted: set[str] = set()
        if not self.run_dir.exists():
            return adopted
        for path in sorted(self.run_dir.glob("*.json")):
            try:
                info = json.loads(path.read_text())
                pid, ctime = int(info["pid"]), float(info["create_time"])
                instance_id, kind = str(info["instance_id"]), str(info["kind"])
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
                continue
            alive = False
            try:
                proc = psutil.Process(pid)
                alive = (
                    abs(proc.create_time() - ctime) < 0.05
                    and proc.cmdline() == list(info.get("cmdline", []))
                    and proc.status() != psutil.STATUS_ZOMBIE
                )
            except psutil.Error:
                alive = False
            if not alive:
                path.unlink(missing_ok=True)
                continue
            with Session(self.engine) as session:
                instance = session.get(BotInstance, instance_id)
                known = instance is not None and instance.spawn_generation == int(
                    info.get("gen", -1)
                )
            if not known:
                logger.warning("killing an orphan bot", extra={"bot_id": instance_id, "pid": pid})
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
                path.unlink(missing_ok=True)
                continue
            w = self.watcher(instance_id, kind)
            w.port, w.gen = info.get("port"), int(info["gen"])
            w.started_at = ctime
            w.want_running = True
            handle = AdoptedHandle(pid, ctime)
            w.handle = handle
            self.bot_log(kind, instance_id, "adopted from an earlier orchestrator", pid=pid)
            w.task = asyncio.create_task(w.run(adopted=handle), name=f"watcher:{instance_id}")
            adopted.add(instance_id)
        return adopted

    async def shutdown(self) -> None:
        """Stop every bot gracefully (in parallel)."""
        if self._rotator is not None:
            self._rotator.cancel()
        if self.cluster is not None:
            # The bots are the cluster's: they keep running for the next orchestrator.
            await self._demoted()
            await self.cluster.shutdown()
            if self._http is not None:
                await self._http.aclose()
            return
        running = [(w.instance_id, w.kind) for w in self.watchers.values()]
        await asyncio.gather(*(self.stop(i, k) for i, k in running), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    # ------------------------------------------------------------ in a cluster

    def _cluster_spawner(self) -> ClusterSpawner:
        if self.cluster is None:
            raise RuntimeError("not running bots in a cluster")
        return self.cluster

    async def _cluster_adopt(self) -> set[str]:
        """Watch the cluster's pods; the bots whose StatefulSet runs are ours again."""
        cluster = self._cluster_spawner()
        known = await cluster.startup(self._cluster_changed)
        running: set[str] = set()
        for instance_id, info in known.items():
            w = self.watcher(instance_id, str(info["kind"]))
            w.port, w.gen = info.get("port"), int(info.get("gen") or 0)
            w.want_running = int(info.get("replicas") or 0) > 0
            if w.want_running:
                running.add(instance_id)
                self.bot_log(w.kind, instance_id, "adopted from the cluster")
            await self._cluster_sync(w)
        return running

    def _cluster_changed(self, instance_id: str, kind: str) -> None:
        task = asyncio.create_task(self._cluster_sync(self.watcher(instance_id, kind)))
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def _cluster_sync(self, w: Watcher) -> None:
        """Bring the watcher's state (logged and audited on change) to what the watch saw."""
        cluster = self._cluster_spawner()
        view = cluster.view(w.instance_id)
        state = view["state"] if view else "stopped"
        reason = (view or {}).get("reason") or ""
        if state == "crashed":
            w.last_error = reason
        elif state == "running":
            w.last_error = None
        await w.set_state(state, reason)

    async def _cluster_start(self, w: Watcher, restart: bool = False) -> dict[str, Any]:
        cluster = self._cluster_spawner()
        async with w.lock:
            view = cluster.view(w.instance_id)
            runs = bool(view and view.get("replicas"))
            if runs and not restart:
                return self.status(w.instance_id, w.kind)
            try:
                _instance, port, gen = await asyncio.to_thread(self._prepare, w)
            except SupervisorError as exc:
                w.last_error = exc.message
                self.bot_log(
                    w.kind, w.instance_id, "start refused", level="WARNING", reason=exc.message
                )
                raise
            w.port, w.gen = port, gen
            w.bot_error = w.attention = w.last_error = None
            spec = self.spawn_spec(w, port, gen)
            if runs:
                await cluster.rollout(spec, port, gen)
            else:
                await cluster.apply(spec, port, gen)
            w.want_running = True
            w.started_at = time.time()
            self.bot_log(w.kind, w.instance_id, "rolled out" if runs else "scaled to 1",
                         port=port, gen=gen)
            await self._cluster_sync(w)
        return self.status(w.instance_id, w.kind)

    async def _cluster_stop(self, w: Watcher) -> dict[str, Any]:
        """Scale to 0 and wait (``graceful_timeout`` + 10 s at most) until the pod is gone."""
        cluster = self._cluster_spawner()
        async with w.lock:
            w.want_running = False
            await cluster.scale_down(w.kind, w.instance_id)
            deadline = time.monotonic() + self.settings.graceful_timeout + 10
            while time.monotonic() < deadline:
                view = cluster.view(w.instance_id)
                if view is None or view.get("pod") is None:
                    break
                await asyncio.sleep(0.05)
            await self._cluster_sync(w)
            w.started_at = None
        return self.status(w.instance_id, w.kind)

    async def _cluster_delete(self, instance_id: str, w: Watcher | None) -> None:
        """Every object of the bot, its volume included."""
        cluster = self._cluster_spawner()
        kind = w.kind if w is not None else None
        if kind is None:
            with Session(self.engine) as session:
                instance = session.get(BotInstance, instance_id)
                kind = instance.kind if instance is not None else None
        if kind is None:
            return
        if w is not None:
            w.want_running = False
        await cluster.delete(kind, instance_id)
        self.watchers.pop(instance_id, None)
        self.bot_log(kind, instance_id, "deleted from the cluster (volume included)")

    def _cluster_status(self, instance_id: str, kind: str, w: Watcher | None) -> dict[str, Any]:
        cluster = self._cluster_spawner()
        view = cluster.view(instance_id) or {}
        state = view.get("state", "stopped")
        started = view.get("started_at")
        reason = view.get("reason")
        return {
            "id": instance_id,
            "kind": kind,
            "state": state,
            "pid": None,
            "port": w.port if w is not None else None,
            "uptime_s": round(time.time() - started, 1)
            if started and state == "running"
            else 0.0,
            "rss_mb": None,
            "cpu_percent": None,
            "restarts": int(view.get("restarts") or 0),
            "last_exit_code": view.get("last_exit_code"),
            "last_error": reason if state == "crashed" else (w.last_error if w else None),
            "attention": w.attention if w is not None and state == "running" else None,
            "pod": view.get("pod"),
            "node": view.get("node"),
        }

    async def _rotate_logs_forever(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                await asyncio.to_thread(self.rotate_logs)
            except Exception:
                logger.exception("log rotation failed")

    def rotate_logs(self) -> None:
        """Copy-and-truncate every bot log over ``log_max_bytes`` (bots write with O_APPEND)."""
        for w in list(self.watchers.values()):
            path = log_path(self.settings, w.kind, w.instance_id)
            try:
                if path.stat().st_size <= self.settings.log_max_bytes:
                    continue
            except FileNotFoundError:
                continue
            for n in range(self.settings.log_backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{n}")
                if older.exists():
                    older.replace(path.with_name(f"{path.name}.{n + 1}"))
            shutil.copyfile(path, path.with_name(f"{path.name}.1"))
            with path.open("r+b") as fh:
                fh.truncate(0)
