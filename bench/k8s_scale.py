"""Orchestrator cost of N bots on Kubernetes, measured against the API stand-in
(tests/support/k8s_standin.py, in a process of its own so its CPU is not counted).

    python -m bench --only k8s          # (part of make bench) → bench/results/k8s.json

For each N: the orchestrator process's CPU seconds and RSS to start N bots (StatefulSet,
Service, Secret each) until the pod watch reports them all running; the CPU per watch event
while every pod is killed and replaced (≈4 events per bot); the time of one status read of the
whole fleet (the Bots page); idle CPU over 10 s with N bots running. What the stand-in cannot
show (kubelet, scheduler, etcd, real network) is not in these numbers.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from sqlmodel import Session

from bench.common import goal, write_result

REPO = Path(__file__).resolve().parents[1]

STANDIN = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.support.k8s_standin import KubeStandIn
st = KubeStandIn(history=100000, start_delay=0.05).start()
print(st.url, flush=True)
while True:
    time.sleep(3600)
"""


KILLER = """
import json, sys, httpx
url, names = sys.argv[1], json.loads(sys.argv[2])
with httpx.Client(base_url=url, timeout=30) as http:
    for name in names:
        http.delete(f"/api/v1/namespaces/flotilla/pods/{name}").raise_for_status()
"""


async def poll(done: Any, every: float = 0.1) -> None:
    """Wait until ``done()`` (the supervisor's states have no event to wait on)."""
    for _ in range(int(600 / every)):
        if done():
            return
        await asyncio.sleep(every)
    raise TimeoutError("not settled in 600 s")


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_mb() -> float:
    return round(psutil.Process().memory_info().rss / 2**20, 1)


async def measure(n: int) -> dict[str, Any]:
    from orchestrator.db import make_engine, migrate
    from orchestrator.models import BotInstance
    from orchestrator.settings import Settings
    from orchestrator.supervisor.kubernetes import KubernetesSpawner, object_name
    from orchestrator.supervisor.supervisor import Supervisor

    proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own stand-in, before any bot
        [sys.executable, "-c", STANDIN.format(repo=str(REPO))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    tmp = Path(tempfile.mkdtemp(prefix="k8s-scale-"))
    db = f"sqlite:///{tmp / 'o.db'}"
    settings = Settings(
        data_dir=tmp / "data",
        logs_dir=tmp / "logs",
        database_url=db,
        secret_key="bench-secret-key-0123456789abcdefghijklmnop",  # noqa: S106 - a bench
        spawner="kubernetes",
        k8s_api_url=url,
        auto_start_bots=False,
        port_range_start=20000,
        port_range_end=21999,
        graceful_timeout=1.0,
    )
    migrate(db)
    engine = make_engine(db)
    with Session(engine) as session:
        for i in range(n):
            session.add(BotInstance(id=f"b{i:04d}", kind="sms", name=f"b{i}"))
        session.commit()
    sup = Supervisor(settings, engine)
    spawner = sup.spawner
    assert isinstance(spawner, KubernetesSpawner)
    try:
        await sup.startup()
        base_cpu, base_rss = cpu_s(), rss_mb()
        t0 = time.monotonic()
        sem = asyncio.Semaphore(16)

        async def start(i: int) -> None:
            async with sem:
                await sup.start(f"b{i:04d}", "sms")

        await asyncio.gather(*(start(i) for i in range(n)))

        def all_running() -> bool:
            return all(sup.status(f"b{i:04d}", "sms")["state"] == "running" for i in range(n))

        await poll(all_running)
        start_s = time.monotonic() - t0
        start_cpu = cpu_s() - base_cpu
        running_rss = rss_mb()

        # Idle: nothing changes; the watch is quiet.
        idle0 = cpu_s()
        await asyncio.sleep(10)
        idle_cpu_pct = round((cpu_s() - idle0) / 10 * 100, 2)

        # One fleet status read (what the Bots page and /admin/fleet do).
        t1 = time.perf_counter()
        for i in range(n):
            sup.status(f"b{i:04d}", "sms")
        status_ms = round((time.perf_counter() - t1) * 1000, 2)

        # Every pod killed and replaced (by another process, so only the orchestrator's work
        # on the watch events and state changes is counted).
        names = [f"{object_name('sms', f'b{i:04d}')}-0" for i in range(n)]
        events0, cpu0 = spawner.events, cpu_s()
        t2 = time.monotonic()
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", KILLER, url, json.dumps(names)],
            check=True,
        )

        def settled() -> bool:
            views = [sup.status(f"b{i:04d}", "sms") for i in range(n)]
            return all(v["restarts"] >= 1 and v["state"] == "running" for v in views)

        await poll(settled)
        events = spawner.events - events0
        churn_cpu = cpu_s() - cpu0
        churn_s = time.monotonic() - t2
        return {
            "bots": n,
            "start_all_s": round(start_s, 2),
            "start_cpu_s": round(start_cpu, 2),
            "start_cpu_ms_per_bot": round(start_cpu / n * 1000, 2),
            "rss_mb_before": base_rss,
            "rss_mb_running": running_rss,
            "rss_kb_per_bot": round((running_rss - base_rss) * 1024 / n, 1),
            "idle_cpu_pct_of_core": idle_cpu_pct,
            "fleet_status_read_ms": status_ms,
            "churn_watch_events": events,
            "churn_s": round(churn_s, 2),
            "churn_cpu_s": round(churn_cpu, 2),
            "cpu_us_per_watch_event": round(churn_cpu / max(events, 1) * 1e6, 1),
        }
    finally:
        await sup.shutdown()
        engine.dispose()
        proc.kill()
        proc.wait()


def run(quick: bool) -> dict[str, Any]:
    """``python -m bench --only k8s``: 100 and 1,000 bots (quick: 20 and 100)."""
    sizes = [20, 100] if quick else [100, 1000]
    results = []
    for n in sizes:
        results.append(asyncio.run(measure(n)))
        print(f"   {json.dumps(results[-1])}", flush=True)  # noqa: T201
    big = results[-1]
    per_1000 = 1000 / big["bots"]
    rss_growth = round((big["rss_mb_running"] - big["rss_mb_before"]) * per_1000, 1)
    return {
        "setup": {
            "what": __doc__,
            "note": "the stand-in runs in its own process; the numbers are the orchestrator's",
        },
        "parameters": {"bots": sizes},
        "results": results,
        "goals": [
            goal("orchestrator memory per 1,000 bots", rss_growth, "<=", 100.0, "MB"),
            goal(
                f"orchestrator idle CPU with {big['bots']} bots",
                big["idle_cpu_pct_of_core"],
                "<=",
                5.0,
                "%",
            ),
            goal(
                "orchestrator CPU per watch event",
                big["cpu_us_per_watch_event"] / 1000,
                "<=",
                5.0,
                "ms",
            ),
        ],
    }


def main(argv: list[str]) -> int:
    """``python -m bench.k8s_scale [--quick]``: run and write ``bench/results/k8s.json``."""
    quick = "--quick" in argv
    started = time.monotonic()
    path = write_result("k8s", run(quick), quick=quick, started=started)
    print(f"wrote {path.relative_to(REPO)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
