"""Request limits on a real orchestrator process: huge bodies are refused before they are read
(its memory is watched while they are sent), large-body routes want a writer's token first,
and slow bodies and slow headers are cut off.

Bodies are sent over raw sockets, generated on the fly: the test never holds them either.
"""

from __future__ import annotations

import secrets
import select
import socket
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = pytest.mark.slow

MB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)
#: How much the orchestrator's resident memory may grow while a huge body is thrown at it.
MAX_GROWTH = 10 * MB
IDLE_TIMEOUT = 1.5
HEADER_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorProcess]:
    proc = OrchestratorProcess(
        tmp_path_factory.mktemp("limits"),
        FLOTILLA_BODY_IDLE_TIMEOUT_S=str(IDLE_TIMEOUT),
        FLOTILLA_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT),
        FLOTILLA_AUTO_START_BOTS="false",
    ).start()
    # The models load in the background after start (hundreds of MB): wait for that, so the
    # memory watched below is the requests', not the warm-up's.
    deadline = time.monotonic() + 180
    while proc.http.get("/health").json().get("models") != "ready":
        assert time.monotonic() < deadline, "the orchestrator never finished warming up"
        time.sleep(0.5)
    yield proc
    proc.close()


def _guest_token(orch: OrchestratorProcess) -> str:
    password = secrets.token_urlsafe(18)
    name = "guest" + secrets.token_hex(3)
    res = orch.api(
        "POST", "/admin/users", json={"username": name, "password": password, "role": "guest"}
    )
    assert res.status_code == 201, res.text
    res = orch.http.post("/auth/token", data={"username": name, "password": password})
    assert res.status_code == 200, res.text
    return str(res.json()["access_token"])


class MemoryWatch:
    """Samples a process's RSS every few milliseconds; ``growth`` is peak minus the start."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let a late allocation show
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def _connect(orch: OrchestratorProcess, timeout: float = 20.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", orch.port), timeout=timeout)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status code and raw bytes of the answer (until the server closes or 5 s pass)."""
    data = b""
    sock.settimeout(5)
    try:
        while b"\r\n\r\n" not in data or len(data) < 64 * 1024:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    except (TimeoutError, ConnectionResetError):
        pass
    assert data.startswith(b"HTTP/1.1 "), f"no HTTP answer: {data[:200]!r}"
    return int(data.split(b" ", 2)[1]), data


def send_declared(
    orch: OrchestratorProcess, path: str, size: int, headers: dict[str, str] | None = None
) -> tuple[int, bytes, float]:
    """Announce a ``size`` byte body, then send it while the server has not answered."""
    sent = 0
    started = time.monotonic()
    with _connect(orch) as sock:
        head = {"Content-Length": str(size), "Content-Type": "application/json", **(headers or {})}
        sock.sendall(_head("POST", path, head))
        while sent < size:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(CHUNK)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(CHUNK)
        status, data = _read_response(sock)
    return status, data, time.monotonic() - started


def send_chunked(
    orch: OrchestratorProcess, path: str, size: int, headers: dict[str, str] | None = None
) -> tuple[int, bytes, int]:
    """Stream up to ``size`` bytes chunked (no Content-Length) until the server answers."""
    sent = 0
    with _connect(orch) as sock:
        head = {
            "Transfer-Encoding": "chunked",
            "Content-Type": "application/json",
            **(headers or {}),
        }
        sock.sendall(_head("POST", path, head))
        frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
        while sent < size:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(CHUNK)
        status, data = _read_response(sock)
    return status, data, sent


def warm_up(orch: OrchestratorProcess, path: str, limit: int, headers: dict[str, str]) -> None:
    """Take the first-use costs of a route (imports, caches, error paths) before measuring:
    one body just under its limit, one refused just over it."""
    send_declared(orch, path, limit - 64 * 1024, headers)
    assert send_chunked(orch, path, limit + 2 * MB, headers)[0] == 413


def test_300mb_to_an_admin_route_is_refused_before_it_is_read(orch: OrchestratorProcess) -> None:
    auth = orch.headers
    warm_up(orch, "/admin/users", MB, auth)
    with MemoryWatch(orch.proc.pid) as watch:  # type: ignore[union-attr]
        status, data, took = send_declared(orch, "/admin/users", 300 * MB, auth)
    assert status == 413, data[:300]
    assert b"1048576 byte limit" in data
    assert took < 5
    assert watch.growth < MAX_GROWTH, f"orchestrator grew by {watch.growth / MB:.1f} MB"

    # Without a Content-Length: counted while it arrives, cut off just past the 1 MiB limit.
    with MemoryWatch(orch.proc.pid) as watch:  # type: ignore[union-attr]
        status, data, sent = send_chunked(orch, "/admin/users", 300 * MB, auth)
    assert status == 413, data[:300]
    assert sent < 64 * MB, f"the server kept reading ({sent / MB:.0f} MB)"
    assert watch.growth < MAX_GROWTH, f"orchestrator grew by {watch.growth / MB:.1f} MB"
    # The server is fine afterwards.
    assert orch.http.get("/health").status_code == 200


def test_400mb_through_hooks_is_refused_before_it_is_read(orch: OrchestratorProcess) -> None:
    # A registered bot with a port, so the route itself would read and forward the body.
    port = int(orch.env["FLOTILLA_PORT_RANGE_START"]) + 7
    bot = orch.create_bot(name="Hooked " + secrets.token_hex(2), enabled=False, webhook_port=port)
    path = f"/hooks/whatsapp/{bot['id']}/webhook"
    warm_up(orch, path, 3 * MB, {})
    with MemoryWatch(orch.proc.pid) as watch:  # type: ignore[union-attr]
        status, data, _took = send_declared(orch, path, 400 * MB)
    assert status == 413, data[:300]
    assert watch.growth < MAX_GROWTH, f"orchestrator grew by {watch.growth / MB:.1f} MB"
    with MemoryWatch(orch.proc.pid) as watch:  # type: ignore[union-attr]
        status, data, sent = send_chunked(orch, path, 400 * MB)
    assert status == 413, data[:300]
    assert b"3145728 byte limit" in data
    assert sent < 64 * MB, f"the server kept reading ({sent / MB:.0f} MB)"
    assert watch.growth < MAX_GROWTH, f"orchestrator grew by {watch.growth / MB:.1f} MB"


def test_large_body_routes_want_a_writers_token_before_reading(orch: OrchestratorProcess) -> None:
    guest = {"Authorization": f"Bearer {_guest_token(orch)}"}
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    routes = ["/admin/knowledge/import", "/admin/knowledge/abc/documents"]
    for path in routes:
        # No token, a bad token, a guest: refused at once, before a byte of the body.
        status, data, took = send_declared(orch, path, 100 * MB, multipart)
        assert status == 401, (path, data[:300])
        assert took < 5
        bad = {**multipart, "Authorization": "Bearer not-a-token"}
        assert send_declared(orch, path, 100 * MB, bad)[0] == 401
        status, data, _ = send_declared(orch, path, 100 * MB, {**multipart, **guest})
        assert status == 403, (path, data[:300])
        assert b"read-only" in data
    # A bot's voice note (up to 25 MiB) wants that bot's token; an admin's is not one.
    for headers in ({}, {"Authorization": "Bearer nope"}, orch.headers):
        status, data, took = send_declared(
            orch, "/internal/stt", 20 * MB, {**multipart, **headers}
        )
        assert status == 401, data[:300]
        assert took < 5
    # The admin UI's upload, with a guest's session cookie: refused before reading, too.
    cookie = {**multipart, "Cookie": f"flotilla_session={guest['Authorization'][7:]}"}
    status, data, _ = send_declared(orch, "/ui/knowledge/abc/upload", 100 * MB, cookie)
    assert status == 403, data[:300]
    # An admin may send more than 1 MiB there (the route answers: no such base) ...
    admin = {**multipart, **orch.headers}
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
    body += b"a" * (2 * MB) + b"\r\n--b--\r\n"
    res = orch.http.post("/admin/knowledge/abc/documents", content=body, headers=admin)
    assert res.status_code == 404, res.text
    # ... but not more than the upload limit (50 MiB by default).
    status, data, _ = send_declared(orch, "/admin/knowledge/abc/documents", 300 * MB, admin)
    assert status == 413, data[:300]
    # Everywhere else 1 MiB is the limit, for admins too.
    res = orch.http.post(
        "/admin/users", content=b"{" + b" " * (2 * MB) + b"}", headers=orch.headers
    )
    assert res.status_code == 413
    assert "byte limit" in res.json()["detail"]


def test_a_stalled_body_is_timed_out(orch: OrchestratorProcess) -> None:
    with _connect(orch) as sock:
        head = {"Content-Length": "1000", "Content-Type": "application/json", **orch.headers}
        sock.sendall(_head("POST", "/admin/users", head) + b'{"user')
        started = time.monotonic()
        status, data = _read_response(sock)
        waited = time.monotonic() - started
    assert status == 408, data[:300]
    assert b"no request body bytes" in data
    assert IDLE_TIMEOUT - 0.2 < waited < IDLE_TIMEOUT + 3


def test_headers_sent_a_byte_at_a_time_are_cut_off(orch: OrchestratorProcess) -> None:
    started = time.monotonic()
    closed_after = None
    with _connect(orch) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(40):  # up to 10 s of trickling, each byte well within keep-alive
            try:
                sock.sendall(b"X")
                readable, _, _ = select.select([sock], [], [], 0.25)
                if readable and sock.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "the server kept waiting for the headers"
    assert closed_after < HEADER_TIMEOUT + 2


def test_keep_alive_clients_are_not_disturbed_by_the_header_deadline(
    orch: OrchestratorProcess,
) -> None:
    for _ in range(3):
        assert orch.http.get("/health").status_code == 200
        time.sleep(HEADER_TIMEOUT / 2)
    assert orch.http.get("/health").status_code == 200
