"""What every benchmark shares: machine facts, percentiles, result files, process cleanup and
the bare aiohttp baseline server."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"

#: The baseline server: the same aiohttp app setup as the bot runtime (default asyncio loop,
#: ``access_log=None``, backlog 1024, ``reuse_address``), with one handler that reads the body
#: and answers 200 — no signature, no parsing, no database.
BARE_SERVER = """
import asyncio, sys
from aiohttp import web

async def ok(request):
    await request.read()
    return web.Response(text="ok")

async def main(port):
    app = web.Application(client_max_size=3 * 1024 * 1024)
    app.router.add_post("/webhook", ok)
    app.router.add_get("/health", lambda r: ok(r))
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True, backlog=1024)
    await site.start()
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def spawn_bare_server(port: int) -> subprocess.Popen[bytes]:
    """Start the bare aiohttp baseline server in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-c", BARE_SERVER, str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> float:
    """Poll until ``port`` accepts connections; return seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        if port_open(port):
            return time.monotonic() - started
        time.sleep(0.005)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5) -> None:
    """SIGTERM a process group we started, then SIGKILL it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_bots_under(data_dir: Path) -> int:
    """SIGKILL every bot process whose ``BOT_DATA_DIR`` is ``data_dir`` (cleanup after failure).

    Only processes this benchmark's orchestrator spawned match: the data dir is a fresh temp dir.
    """
    target = str(data_dir.resolve())
    killed = 0
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("BOT_DATA_DIR") != target:
                continue
            proc.kill()
            killed += 1
        except psutil.Error:
            continue
    return killed


def mem_mb(pid: int) -> dict[str, float]:
    """RSS, USS and PSS of one process in MiB (``psutil.memory_full_info``)."""
    info = psutil.Process(pid).memory_full_info()
    return {
        "rss_mb": round(info.rss / 2**20, 2),
        "uss_mb": round(info.uss / 2**20, 2),
        "pss_mb": round(getattr(info, "pss", 0) / 2**20, 2),
    }


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds used so far by ``procs`` (gone processes count 0)."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def pct(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; NaN-free for empty input."""
    if not samples:
        return 0.0
    data = sorted(samples)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean in milliseconds of samples given in seconds."""
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 2),
        "p95_ms": round(pct(ms, 95), 2),
        "p99_ms": round(pct(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else 0.0,
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else 0.0,
    }


def git_commit() -> str:
    """The current commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, fixed args
            cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607 - as above
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """Facts about where the numbers came from."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def goal(name: str, value: float | None, op: str, target: float, unit: str) -> dict[str, Any]:
    """One goal with its verdict; ``op`` is ``<=`` or ``>=``; a missing value fails."""
    if value is None:
        passed = False
    elif op == "<=":
        passed = value <= target
    elif op == ">=":
        passed = value >= target
    else:
        raise ValueError(op)
    return {"name": name, "value": value, "op": op, "target": target, "unit": unit,
            "passed": passed}


def write_result(name: str, body: dict[str, Any], *, quick: bool, started: float) -> Path:
    """Write ``bench/results/<name>.json`` with the common header."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "quick": quick,
        "machine": machine_info(),
        "runtime_s": round(time.monotonic() - started, 1),
        **body,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
