"""The load generator: a separate process, so it never shares the server's event loop.

    echo '<spec json>' | python -m bench.loadgen      # prints the result JSON on stdout

A small HTTP/1.1 keep-alive client on raw asyncio protocols (uvloop when installed) — much
cheaper per request than a general-purpose client, so on two cores the client is less likely to
be what limits the server. Two modes:

* ``closed``: ``concurrency`` connections, each sends its next request when the previous answer
  arrives, for ``duration_s`` (after ``warmup_s``) or until ``count`` requests were sent;
* ``open``: requests start on a fixed schedule (``rate`` per second) whatever the answers do;
  latency is measured from the *scheduled* start, so a stalled server cannot hide its queueing
  (no coordinated omission). Up to ``concurrency`` connections are opened as needed.

Every request is a WhatsApp Cloud API text-message webhook, signed with ``app_secret``
(``X-Hub-Signature-256``). Message ``i`` has id ``wamid.<id_prefix>.<i % unique>`` and comes from
``senders[i % len(senders)]`` when ``senders`` is given, else from ``sender_base + i`` (one new
customer per message).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import resource
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from bench.common import summary_ms


class HttpConn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time; Content-Length bodies only."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._complete()

    def _complete(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        del self.buf[:total]
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class Requests:
    """Builds signed webhook requests."""

    def __init__(self, url: str, payload: dict[str, Any]) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.secret = str(payload["app_secret"]).encode()
        self.prefix = str(payload.get("id_prefix", "m"))
        self.unique = int(payload.get("unique") or 0)
        self.senders: list[str] = list(payload.get("senders") or [])
        self.sender_base = int(payload.get("sender_base", 15550100000))
        self.text = str(payload.get("text", "hi"))
        self.phone_number_id = str(payload.get("phone_number_id", "106540352242922"))
        self.head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()

    def sender(self, i: int) -> str:
        return self.senders[i % len(self.senders)] if self.senders else str(self.sender_base + i)

    def build(self, i: int) -> tuple[bytes, str]:
        n = i % self.unique if self.unique else i
        sender = self.sender(n)
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881",
                                 "phone_number_id": self.phone_number_id},
                    "contacts": [{"profile": {"name": f"Bench {n}"}, "wa_id": sender}],
                    "messages": [{"from": sender, "id": f"wamid.{self.prefix}.{n}",
                                  "timestamp": str(int(time.time())), "type": "text",
                                  "text": {"body": self.text}}],
                }}]}],
            },
            separators=(",", ":"),
        ).encode()
        sig = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        return (
            self.head
            + f"X-Hub-Signature-256: sha256={sig}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body,
            sender,
        )


async def connect(req: Requests) -> HttpConn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(HttpConn, req.host, req.port)
    return conn


async def run_closed(spec: dict[str, Any], req: Requests) -> dict[str, Any]:
    concurrency = int(spec.get("concurrency", 32))
    duration = float(spec.get("duration_s", 5))
    warmup = float(spec.get("warmup_s", 0))
    count = int(spec.get("count") or 0)
    conns = [await connect(req) for _ in range(concurrency)]
    counter = iter(range(10**12))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    t0 = time.perf_counter()
    measure_from = t0 + warmup
    stop_at = measure_from + duration
    measured = 0

    async def worker(conn: HttpConn) -> None:
        nonlocal errors, measured
        while True:
            i = next(counter)
            if count and i >= count:
                return
            data, _ = req.build(i)
            start = time.perf_counter()
            if not count and start >= stop_at:
                return
            try:
                status = await conn.request(data)
            except ConnectionError:
                errors += 1
                conn = await connect(req)
                continue
            end = time.perf_counter()
            if count or start >= measure_from:
                latencies.append(end - start)
                statuses[status] += 1
                measured += 1

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - (t0 if count else measure_from)
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return {
        "mode": "closed",
        "concurrency": concurrency,
        "requests": measured,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "elapsed_s": round(elapsed, 3),
        "throughput_rps": round(measured / elapsed, 1) if elapsed > 0 else 0.0,
        "latency": summary_ms(latencies),
    }


async def run_open(spec: dict[str, Any], req: Requests) -> dict[str, Any]:
    rate = float(spec["rate"])
    duration = float(spec.get("duration_s", 5))
    max_conns = int(spec.get("concurrency", 64))
    record = bool(spec.get("record", False))
    total = int(rate * duration)
    idle: list[HttpConn] = [await connect(req) for _ in range(min(8, max_conns))]
    opened = len(idle)
    slots = asyncio.Semaphore(max_conns)
    latencies: list[float] = []
    service: list[float] = []
    statuses: Counter[int] = Counter()
    records: list[list[Any]] = []
    errors = 0
    late = 0
    prepared = [req.build(i) for i in range(total)]
    t0 = time.perf_counter() + 0.05
    wall0 = time.time() - time.perf_counter()  # perf_counter → wall clock

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors, opened
        data, sender = prepared[i]
        async with slots:
            conn = idle.pop() if idle else None
            if conn is None or conn.closed:
                conn = await connect(req)
                opened += 1
            started = time.perf_counter()
            try:
                status = await conn.request(data)
            except ConnectionError:
                errors += 1
                return
            end = time.perf_counter()
            idle.append(conn)
        latencies.append(end - scheduled)
        service.append(end - started)
        statuses[status] += 1
        if record:
            records.append([round(wall0 + scheduled, 6), round(end - scheduled, 6), status,
                            sender])

    tasks = []
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.001:
            late += 1
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    for c in idle:
        if c.transport is not None:
            c.transport.close()
    out: dict[str, Any] = {
        "mode": "open",
        "rate": rate,
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors,
        "connections_opened": opened,
        "late_starts": late,
        "elapsed_s": round(elapsed, 3),
        "throughput_rps": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "latency": summary_ms(latencies),
        "service_time": summary_ms(service),
    }
    if record:
        out["records"] = records
    return out


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    req = Requests(spec["url"], spec["payload"])
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    if spec.get("mode", "closed") == "open":
        out = await run_open(spec, req)
    else:
        out = await run_closed(spec, req)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out["loadgen_cpu_s"] = round(
        cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime, 3
    )
    return out


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
