"""Webhook benchmark (issue 4): one WhatsApp bot process's acknowledgement throughput and
latency beside a bare aiohttp endpoint, duplicate rejection, and inbound → reply on the funnel
path, all in one run.

Processes (each its own): the real orchestrator (``python -m orchestrator serve``), the bot it
spawns (``python -m whatsapp_bot``), the sandbox Graph API (``python -m shared.sandbox``), the
bare baseline servers, and the load generator (``python -m bench.loadgen``).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import (
    REPO,
    free_port,
    goal,
    kill_bots_under,
    pct,
    spawn_bare_server,
    stop_process,
    summary_ms,
    wait_listening,
)

APP_SECRET = "bench-app-secret-0123456789"  # noqa: S105 - fake, signs local requests only
PHONE_NUMBER_ID = "106540352242922"
BLOCKED_SENDER = "15550000000"
BOT_ID = "bench-webhook"

#: Baseline for inbound → reply: the least any bot must do — answer the webhook, then POST one
#: text message to the Graph API (the sandbox) — with no persistence, routing or outbox.
RELAY_SERVER = """
import asyncio, json, sys
import aiohttp
from aiohttp import web

async def main(port, graph):
    session = aiohttp.ClientSession()
    tasks = set()

    async def send(to):
        async with session.post(graph, json={"messaging_product": "whatsapp", "to": to,
                                "type": "text", "text": {"body": "hello"}},
                                headers={"Authorization": "Bearer relay"}) as r:
            await r.read()

    async def hook(request):
        data = json.loads(await request.read())
        to = data["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
        task = asyncio.create_task(send(to))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load-generator process and return its JSON."""
    res = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=300,
    )
    if res.returncode != 0:
        raise RuntimeError(f"loadgen failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def measured(pid: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator against ``pid``'s server and add the server's CPU per request."""
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    out = loadgen(spec)
    after = proc.cpu_times()
    cpu = (after.user - before.user) + (after.system - before.system)
    out["server_cpu_s"] = round(cpu, 3)
    if out["requests"]:
        out["server_cpu_ms_per_request"] = round(cpu * 1000 / out["requests"], 3)
    if not spec.get("keep_records"):
        out.pop("records", None)
    return out


class Bench:
    """Everything one webhook benchmark run starts, and its cleanup."""

    def __init__(self, root: Path) -> None:
        from tests.support.orchestrator_proc import OrchestratorProcess

        self.root = root
        self.sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.bare: subprocess.Popen[bytes] | None = None
        self.relay: subprocess.Popen[bytes] | None = None
        start = 20000 + free_port() % 20000
        self.orch = OrchestratorProcess(
            root,
            FLOTILLA_PORT_RANGE_START=str(start),
            FLOTILLA_PORT_RANGE_END=str(start + 50),
            FLOTILLA_AUTO_START_BOTS="false",
        )
        self.http = httpx.Client(timeout=30)
        self.bot_port = 0
        self.bot_pid = 0

    def start(self) -> None:
        log = (self.root / "sandbox.log").open("ab")
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", "shared.sandbox", "--port", str(self.sandbox_port),
             "--max-requests", "300000", "--log-level", "WARNING"],
            cwd=REPO, stdout=log, stderr=log, start_new_session=True,
        )
        wait_listening(self.sandbox_port, self.sandbox)
        self.orch.start()
        self.orch.create_bot(
            name="Bench Webhook",
            phone_number_id=PHONE_NUMBER_ID,
            access_token="bench-access-token",  # noqa: S106 - fake, local sandbox only
            app_secret=APP_SECRET,
            verify_token="bench-verify",  # noqa: S106 - fake, local only
            graph_api_base_url=f"{self.sandbox_url}/graph",
            blocked_phones=[f"+{BLOCKED_SENDER}"],
            rate_limit_count=0,
        )
        res = self.orch.api("POST", f"/admin/whatsapp/instances/{BOT_ID}/start")
        res.raise_for_status()
        st = self.orch.wait_state("whatsapp", BOT_ID, "running", timeout=30)
        self.bot_port, self.bot_pid = int(st["port"]), int(st["pid"])
        bare_port = free_port()
        self.bare = spawn_bare_server(bare_port)
        wait_listening(bare_port, self.bare)
        self.bare_port = bare_port
        relay_port = free_port()
        self.relay = subprocess.Popen(
            [sys.executable, "-c", RELAY_SERVER, str(relay_port),
             f"{self.sandbox_url}/graph/v21.0/{PHONE_NUMBER_ID}/messages"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_listening(relay_port, self.relay)
        self.relay_port = relay_port

    def close(self) -> None:
        try:
            self.orch.close()
        finally:
            for proc in (self.bare, self.relay, self.sandbox):
                stop_process(proc)
            kill_bots_under(self.root / "data")
            self.http.close()

    # -- helpers ------------------------------------------------------------------------

    def control_token(self) -> str:
        from orchestrator.security import create_control_token
        from tests.support.orchestrator_proc import SECRET_KEY

        return create_control_token(
            SECRET_KEY, instance_id=BOT_ID, gen=self.orch.spawn_generation(BOT_ID)
        )

    def drain(self, timeout: float = 180) -> float:
        """Wait until the bot's inbox and outbox are empty; return seconds waited."""
        headers = {"Authorization": f"Bearer {self.control_token()}"}
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            h = self.http.get(
                f"http://127.0.0.1:{self.bot_port}/control/health", headers=headers
            ).json()
            if not h["inbox_pending"] and not h["outbox_pending"]:
                return round(time.monotonic() - started, 2)
            time.sleep(0.2)
        raise RuntimeError(f"bot did not drain in {timeout} s")

    def inbox_rows(self, prefix: str) -> int:
        db = self.root / "data" / f"wa_sales_{BOT_ID}.db"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute(
                "SELECT COUNT(*) FROM inbox WHERE provider_message_id LIKE ?",
                (f"wamid.{prefix}.%",),
            ).fetchone()
        finally:
            con.close()
        return int(row[0])

    def sandbox_reset(self) -> None:
        self.http.post(f"{self.sandbox_url}/_sandbox/reset").raise_for_status()

    def sandbox_first_reply(self) -> dict[str, float]:
        """``to`` (digits only) → wall time of the first message the sandbox accepted for it."""
        msgs = self.http.get(
            f"{self.sandbox_url}/_sandbox/messages", params={"provider": "graph"}
        ).json()["messages"]
        first: dict[str, float] = {}
        for m in msgs:
            to = str(m["to"]).lstrip("+")
            if to not in first or m["ts"] < first[to]:
                first[to] = float(m["ts"])
        return first


def reply_latencies(records: list[list[Any]], first: dict[str, float]) -> tuple[list[float], int]:
    """POST start (scheduled) → the sandbox recording the first reply to that sender."""
    out: list[float] = []
    missing = 0
    for start, _, _, sender in records:
        ts = first.get(str(sender))
        if ts is None:
            missing += 1
        else:
            out.append(ts - start)
    return out, missing


def wait_replies(b: Bench, senders: set[str], timeout: float = 60) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    first = b.sandbox_first_reply()
    while time.monotonic() < deadline and not senders <= first.keys():
        time.sleep(0.25)
        first = b.sandbox_first_reply()
    return first


def run(quick: bool = False) -> dict[str, Any]:
    """Run the webhook benchmark; return the result body (goals included)."""
    duration = 3.0 if quick else 8.0
    rounds = 1 if quick else 2
    open_s = 4.0 if quick else 10.0
    funnel_s = 5.0 if quick else 15.0
    dup_unique = 300 if quick else 1000
    root = Path(tempfile.mkdtemp(prefix="flotilla-bench-webhook-"))
    b = Bench(root)
    try:
        b.start()
        bot_url = f"http://127.0.0.1:{b.bot_port}/webhook"
        bare_url = f"http://127.0.0.1:{b.bare_port}/webhook"
        relay_url = f"http://127.0.0.1:{b.relay_port}/webhook"
        ack_payload = {"app_secret": APP_SECRET, "senders": [BLOCKED_SENDER]}
        closed = {"mode": "closed", "concurrency": 32, "duration_s": duration, "warmup_s": 1.0}
        throughput: list[dict[str, Any]] = []
        for r in range(rounds):
            bare = measured(b.bare.pid if b.bare else 0, {
                **closed, "url": bare_url, "payload": {**ack_payload, "id_prefix": f"bare{r}"}})
            bot = measured(b.bot_pid, {
                **closed, "url": bot_url, "payload": {**ack_payload, "id_prefix": f"ack{r}"}})
            bot["drain_s"] = b.drain()
            bot["inbox_rows"] = b.inbox_rows(f"ack{r}")
            throughput.append({"round": r + 1, "bare": bare, "bot": bot,
                               "ratio": round(bot["throughput_rps"] / bare["throughput_rps"], 3)})
            print(f"webhook round {r + 1}: bot {bot['throughput_rps']} rps, "
                  f"bare {bare['throughput_rps']} rps", flush=True)
        bot_rps = sum(t["bot"]["throughput_rps"] for t in throughput) / rounds
        bare_rps = sum(t["bare"]["throughput_rps"] for t in throughput) / rounds

        dup_spec = {"mode": "closed", "concurrency": 32, "count": 3 * dup_unique,
                    "url": bot_url,
                    "payload": {**ack_payload, "id_prefix": "dup", "unique": dup_unique}}
        dup = measured(b.bot_pid, dup_spec)
        b.drain()
        dup_rows = b.inbox_rows("dup")
        duplicates = {"unique_messages": dup_unique, "deliveries": 3 * dup_unique,
                      "acknowledged_200": dup["statuses"].get("200", 0),
                      "inbox_rows": dup_rows, "rejected_as_duplicate": 3 * dup_unique - dup_rows,
                      "run": dup,
                      "how": "each id sent 3 times (ids cycle 0..N-1 three times, 32 in "
                             "flight); the inbox's UNIQUE(provider_message_id) with INSERT OR "
                             "IGNORE keeps one row"}
        print(f"webhook duplicates: {3 * dup_unique} deliveries -> {dup_rows} inbox rows",
              flush=True)

        open_spec = {"mode": "open", "rate": 200, "duration_s": open_s, "concurrency": 64}
        open_rounds: list[dict[str, Any]] = []
        for r in range(rounds + 1 if not quick else 1):
            open_bare = measured(b.bare.pid if b.bare else 0, {
                **open_spec, "url": bare_url,
                "payload": {**ack_payload, "id_prefix": f"obare{r}"}})
            open_bot = measured(b.bot_pid, {
                **open_spec, "url": bot_url,
                "payload": {"app_secret": APP_SECRET, "id_prefix": f"open{r}", "text": "hi",
                            "sender_base": 15551000000 + r * 100000}})
            open_bot["drain_s"] = b.drain()
            open_rounds.append({"round": r + 1, "bare": open_bare, "bot": open_bot})
            print(f"webhook open 200/s round {r + 1}: bot p99 {open_bot['latency']['p99_ms']} "
                  f"ms, bare p99 {open_bare['latency']['p99_ms']} ms", flush=True)
        open_bot_p99 = round(pct([o["bot"]["latency"]["p99_ms"] for o in open_rounds], 50), 2)
        open_bare_p99 = round(pct([o["bare"]["latency"]["p99_ms"] for o in open_rounds], 50), 2)

        funnel_spec = {"mode": "open", "rate": 20, "duration_s": funnel_s, "concurrency": 16,
                       "record": True, "keep_records": True}
        funnel: dict[str, Any] = {}
        for name, url, base in (("relay", relay_url, 15552000000), ("bot", bot_url, 15553000000)):
            b.sandbox_reset()
            pid = (b.relay.pid if b.relay else 0) if name == "relay" else b.bot_pid
            res = measured(pid, {**funnel_spec, "url": url, "payload": {
                "app_secret": APP_SECRET, "id_prefix": f"funnel-{name}", "text": "hi",
                "sender_base": base}})
            records = res.pop("records")
            first = wait_replies(b, {str(r[3]) for r in records})
            lat, missing = reply_latencies(records, first)
            funnel[name] = {"messages": len(records), "replies_missing": missing,
                            "ack": res["latency"], "inbound_to_reply": summary_ms(lat),
                            "server_cpu_ms_per_request": res.get("server_cpu_ms_per_request")}
            print(f"webhook funnel {name}: p50 {funnel[name]['inbound_to_reply']['p50_ms']} ms "
                  f"p99 {funnel[name]['inbound_to_reply']['p99_ms']} ms", flush=True)
        b.drain()
    finally:
        b.close()
        shutil.rmtree(root, ignore_errors=True)

    ratio = round(bot_rps / bare_rps, 3) if bare_rps else None
    goals = [
        goal("ack throughput vs bare aiohttp", ratio, ">=", 0.5, "x"),
        goal("ack p99 at 200 req/s (open loop; median of rounds)", open_bot_p99, "<=", 20, "ms"),
        goal("inbound → reply p50 at 20 msg/s", funnel["bot"]["inbound_to_reply"]["p50_ms"],
             "<=", 15, "ms"),
        goal("inbound → reply p99 at 20 msg/s", funnel["bot"]["inbound_to_reply"]["p99_ms"],
             "<=", 50, "ms"),
        goal("duplicate deliveries stored once", float(dup_rows), "<=", float(dup_unique),
             "rows"),
        goal("replies missing on the funnel path", float(funnel["bot"]["replies_missing"]), "<=",
             0, "messages"),
    ]
    return {
        "setup": {
            "bot": "real `python -m whatsapp_bot` subprocess spawned by a real orchestrator "
                   "(`python -m orchestrator serve`), sandbox Graph API in its own process",
            "baseline": "bare aiohttp endpoint (same aiohttp, same loop, access log off) that "
                        "reads the body and answers 200; for inbound → reply a bare relay that "
                        "answers 200 and POSTs one text to the sandbox",
            "load_generator": "bench/loadgen.py, its own process (raw asyncio HTTP/1.1 "
                              "keep-alive client on uvloop)",
            "ack_senders": "throughput and duplicate runs come from one sender on the bot's "
                           "blocked list: the acknowledgement path (verify, parse, INSERT, "
                           "200) is the same as for anyone, and the work after the 200 is only "
                           "an inbox update, so the backlog drains. The 200 req/s run and the "
                           "funnel run use a new customer per message and the full pipeline "
                           "(routing, outbox, send to the sandbox).",
            "funnel_text": "hi (a greeting: welcome reply buttons)",
        },
        "parameters": {"closed_concurrency": 32, "closed_duration_s": duration,
                       "rounds": rounds, "open_rounds": len(open_rounds), "open_rate": 200,
                       "open_duration_s": open_s,
                       "funnel_rate": 20, "funnel_duration_s": funnel_s,
                       "duplicate_unique": dup_unique},
        "ack_throughput": {"bot_rps": round(bot_rps, 1), "bare_rps": round(bare_rps, 1),
                           "ratio": ratio, "rounds": throughput},
        "duplicates": duplicates,
        "open_loop_200": {"bot_p99_ms_median": open_bot_p99, "bare_p99_ms_median": open_bare_p99,
                          "rounds": open_rounds},
        "inbound_to_reply": funnel,
        "goals": goals,
    }
