"""Fleet benchmark (issue 3): start N WhatsApp bots through the real orchestrator's admin API,
one at a time and then all at once; per-bot memory, idle CPU of the fleet, graceful stop and the
orchestrator's own memory — beside a bare aiohttp server process measured in the same run.

Start → ``running`` is timed from just before ``POST .../start`` to the supervisor's
``state starting -> running`` line in the bot's log (written when the bot first answers
``/control/health``), so status polling does not blur it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import (
    cpu_seconds,
    free_port,
    goal,
    kill_bots_under,
    mem_mb,
    pct,
    spawn_bare_server,
    stop_process,
    summary_ms,
    wait_listening,
)

#: Made-up channel secrets of the benchmark bots (nothing real is ever called).
FAKE_SECRETS = {
    "access_token": "bench-access-token",  # noqa: S105 - fake, local only
    "app_secret": "bench-app-secret",  # noqa: S105 - fake, local only
    "verify_token": "bench-verify",  # noqa: S105 - fake, local only
}


#: Start/stop requests in flight at once in the "all at once" phase: every one of them (the
#: start routes release their DB connection before awaiting the supervisor, so a burst of 100
#: no longer exhausts the pool).
API_CONCURRENCY = 100


def bare_baseline(samples: int, idle_s: float) -> dict[str, Any]:
    """Spawn → listening time, RSS/USS and idle CPU of a minimal aiohttp server process."""
    spawn_s: list[float] = []
    mems: list[dict[str, float]] = []
    procs = []
    try:
        for _ in range(samples):
            port = free_port()
            t0 = time.monotonic()
            proc = spawn_bare_server(port)
            procs.append(proc)
            wait_listening(port, proc)
            spawn_s.append(time.monotonic() - t0)
        time.sleep(1.0)
        mems = [mem_mb(p.pid) for p in procs]
        ps = [psutil.Process(p.pid) for p in procs]
        c0 = cpu_seconds(ps)
        time.sleep(idle_s)
        idle_pct = (cpu_seconds(ps) - c0) / idle_s * 100 / samples
    finally:
        for proc in procs:
            stop_process(proc)
    return {
        "what": "python -c '<aiohttp app with one POST route>' (same interpreter and aiohttp)",
        "samples": samples,
        "spawn_to_listening": summary_ms(spawn_s),
        "rss_mb_p50": round(pct([m["rss_mb"] for m in mems], 50), 2),
        "uss_mb_p50": round(pct([m["uss_mb"] for m in mems], 50), 2),
        "idle_cpu_pct_of_core_per_process": round(idle_pct, 3),
    }


def running_at(log: Path, after: float) -> float | None:
    """Wall time of the first ``state starting -> running`` line at or after ``after``."""
    if not log.exists():
        return None
    for line in log.read_text(errors="replace").splitlines():
        if '"state starting -> running"' not in line:
            continue
        with contextlib.suppress(ValueError, KeyError):
            ts = datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
            if ts >= after - 0.002:
                return ts
    return None


def run(quick: bool = False) -> dict[str, Any]:
    """Run the fleet benchmark; return the result body (goals included)."""
    from tests.support.orchestrator_proc import OrchestratorProcess

    n = 10 if quick else 100
    idle_s = 3.0 if quick else 10.0
    root = Path(tempfile.mkdtemp(prefix="flotilla-bench-fleet-"))
    port_start = 20000 + free_port() % 20000
    baseline = bare_baseline(3 if quick else 5, idle_s=min(idle_s, 5.0))
    print(f"fleet baseline: {baseline['rss_mb_p50']} MB RSS, "
          f"spawn p50 {baseline['spawn_to_listening']['p50_ms']} ms", flush=True)
    orch = OrchestratorProcess(
        root,
        FLOTILLA_PORT_RANGE_START=str(port_start),
        FLOTILLA_PORT_RANGE_END=str(port_start + n + 50),
        FLOTILLA_AUTO_START_BOTS="false",
        FLOTILLA_READY_TIMEOUT="90",
        FLOTILLA_RESPAWN_MIN_DELAY="0.5",
    )
    logs = root / "logs"
    out: dict[str, Any] = {}
    try:
        orch.start()
        assert orch.proc is not None
        orch_pid = orch.proc.pid
        orch_mem_empty = mem_mb(orch_pid)
        ids = []
        for i in range(n):
            bot = orch.create_bot(
                name=f"Fleet {i:03d}",
                phone_number_id=f"10654035224{i:04d}",
                **FAKE_SECRETS,
                graph_api_base_url="http://127.0.0.1:9/graph",
            )
            ids.append(bot["id"])

        # -- one at a time ------------------------------------------------------------------
        seq_ready: list[float] = []
        pids: dict[str, int] = {}
        for bot_id in ids:
            t_wall = time.time()
            res = orch.api("POST", f"/admin/whatsapp/instances/{bot_id}/start")
            res.raise_for_status()
            st = orch.wait_state("whatsapp", bot_id, ("running", "crashed", "stopped"),
                                 timeout=60)
            if st["state"] != "running":
                raise RuntimeError(f"{bot_id} did not start: {st}")
            pids[bot_id] = int(st["pid"])
            ts = running_at(logs / f"whatsapp_bot_{bot_id}.log", t_wall)
            seq_ready.append((ts if ts is not None else time.time()) - t_wall)
        print(f"fleet sequential start: p50 {pct(seq_ready, 50):.3f} s "
              f"p95 {pct(seq_ready, 95):.3f} s", flush=True)

        # -- memory and idle CPU with the whole fleet up ------------------------------------
        time.sleep(2.0)
        mems = {}
        for bot_id, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                mems[bot_id] = mem_mb(pid)
        orch_mem_full = mem_mb(orch_pid)
        procs = [psutil.Process(pid) for pid in pids.values()]
        oproc = psutil.Process(orch_pid)
        c0, o0 = cpu_seconds(procs), cpu_seconds([oproc])
        t0 = time.monotonic()
        time.sleep(idle_s)
        elapsed = time.monotonic() - t0
        fleet_cpu = (cpu_seconds(procs) - c0) / elapsed * 100
        orch_cpu = (cpu_seconds([oproc]) - o0) / elapsed * 100
        alive = sum(1 for p in procs if p.is_running())
        print(f"fleet idle CPU: {fleet_cpu:.1f} % of one core ({alive} bots)", flush=True)

        # -- graceful stop, one at a time ---------------------------------------------------
        stop_s: list[float] = []
        for bot_id in ids:
            t0 = time.monotonic()
            res = orch.api("POST", f"/admin/whatsapp/instances/{bot_id}/stop")
            res.raise_for_status()
            stop_s.append(time.monotonic() - t0)
        still = [b for b, pid in pids.items() if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        print(f"fleet graceful stop: p95 {pct(stop_s, 95):.3f} s", flush=True)

        # -- all at once --------------------------------------------------------------------
        async def all_at_once() -> dict[str, Any]:
            headers = orch.headers
            async with httpx.AsyncClient(base_url=orch.url, headers=headers,
                                         timeout=120) as client:
                slots = asyncio.Semaphore(API_CONCURRENCY)

                async def start(bot_id: str) -> httpx.Response:
                    async with slots:
                        return await client.post(f"/admin/whatsapp/instances/{bot_id}/start")

                async def stop(bot_id: str) -> httpx.Response:
                    async with slots:
                        return await client.post(f"/admin/whatsapp/instances/{bot_id}/stop")

                t_wall, t0 = time.time(), time.monotonic()
                answers = await asyncio.gather(*(start(b) for b in ids))
                accepted_s = time.monotonic() - t0
                bad = [r.text for r in answers if r.status_code != 200]
                states: dict[str, str] = {}
                deadline = t0 + 120
                while time.monotonic() < deadline:
                    fleet = (await client.get("/admin/fleet")).json()
                    states = {b["id"]: b["state"] for b in fleet}
                    if all(states.get(b) == "running" for b in ids):
                        break
                    await asyncio.sleep(0.25)
                polled_all_s = time.monotonic() - t0
                per_bot = [running_at(logs / f"whatsapp_bot_{b}.log", t_wall) for b in ids]
                ready = [ts - t_wall for ts in per_bot if ts is not None]
                t1 = time.monotonic()
                stops = await asyncio.gather(*(stop(b) for b in ids))
                stop_all_s = time.monotonic() - t1
            return {
                "api_concurrency": API_CONCURRENCY,
                "start_requests_answered_s": round(accepted_s, 3),
                "start_errors": bad,
                "running": sum(1 for b in ids if states.get(b) == "running"),
                "ready": summary_ms(ready),
                "all_ready_s": round(max(ready), 3) if len(ready) == n else None,
                "all_ready_polled_s": round(polled_all_s, 3),
                "stop_all_s": round(stop_all_s, 3),
                "stop_errors": [r.text for r in stops if r.status_code != 200],
            }

        together = asyncio.run(all_at_once())
        if together["start_errors"] or together["stop_errors"]:
            together["orchestrator_log_tail"] = orch.tail_log(20)
        print(f"fleet all at once: all {n} ready in {together['all_ready_s']} s", flush=True)
        orch_mem_end = mem_mb(orch_pid)

        rss = [m["rss_mb"] for m in mems.values()]
        uss = [m["uss_mb"] for m in mems.values()]
        out = {
            "setup": {
                "orchestrator": "real `python -m orchestrator serve` subprocess (SQLite)",
                "bots": f"{n} WhatsApp bots (`python -m whatsapp_bot`), created and started "
                        "through the admin API",
                "ready": "POST start → the supervisor's `starting -> running` log line "
                         "(first 200 from the bot's /control/health)",
                "all_at_once": f"all start requests issued at once ({API_CONCURRENCY} in "
                               "flight)",
                "memory": "psutil memory_full_info() of every bot process, 2 s after the last "
                          "one started (USS = memory unique to that process; PSS shares the "
                          "rest fairly)",
                "idle_cpu": f"sum of user+system CPU of all bot processes over {idle_s:g} s "
                            "with no traffic, in % of one core",
            },
            "parameters": {"bots": n, "idle_window_s": idle_s},
            "baseline": baseline,
            "one_at_a_time": {
                "ready": summary_ms(seq_ready),
                "ready_s_in_start_order": [round(x, 3) for x in seq_ready],
                "first_half_p50_s": round(pct(seq_ready[: n // 2], 50), 3),
                "second_half_p50_s": round(pct(seq_ready[n // 2:], 50), 3),
            },
            "all_at_once": together,
            "memory": {
                "bots_measured": len(mems),
                "rss_mb": {"p50": round(pct(rss, 50), 2), "p95": round(pct(rss, 95), 2),
                           "max": round(max(rss), 2)},
                "uss_mb": {"p50": round(pct(uss, 50), 2), "p95": round(pct(uss, 95), 2),
                           "max": round(max(uss), 2)},
                "pss_mb_p50": round(pct([m["pss_mb"] for m in mems.values()], 50), 2),
                "fleet_uss_total_mb": round(sum(uss), 1),
                "per_bot": mems,
            },
            "idle_cpu": {"fleet_pct_of_core": round(fleet_cpu, 2),
                         "per_bot_pct_of_core": round(fleet_cpu / max(alive, 1), 3),
                         "orchestrator_pct_of_core": round(orch_cpu, 2),
                         "bots_alive": alive, "window_s": round(elapsed, 2)},
            "graceful_stop": {**summary_ms(stop_s), "left_running": still,
                              "stop_s_in_order": [round(x, 3) for x in stop_s]},
            "orchestrator": {"empty": orch_mem_empty, "with_fleet": orch_mem_full,
                             "after_all_at_once": orch_mem_end},
        }
    finally:
        orch.close()
        killed = kill_bots_under(root / "data")
        if killed:
            print(f"fleet cleanup: killed {killed} leftover bot processes", flush=True)
        shutil.rmtree(root, ignore_errors=True)

    out["goals"] = [
        goal("start → running p95, one at a time",
             round(out["one_at_a_time"]["ready"]["p95_ms"] / 1000, 3), "<=", 1.5, "s"),
        goal(f"all {n} ready, started at once", out["all_at_once"]["all_ready_s"], "<=", 45, "s"),
        goal("RSS per bot (p95)", out["memory"]["rss_mb"]["p95"], "<=", 60, "MB"),
        goal("idle CPU of the whole fleet", out["idle_cpu"]["fleet_pct_of_core"], "<=", 20,
             "% of a core"),
        goal("graceful stop p95", round(out["graceful_stop"]["p95_ms"] / 1000, 3), "<=", 1.0,
             "s"),
    ]
    return out
