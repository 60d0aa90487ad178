"""KubernetesSpawner against the Kubernetes API stand-in (tests/support/k8s_standin.py), over
real HTTP with the official client: lifecycle, crash reasons, 409/404 paths, the watch's 410
re-list, adoption by a second orchestrator, and every manifest validated against the official
schema of a pinned Kubernetes version (kubernetes-validate, offline)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
from sqlmodel import Session, select

from orchestrator.db import make_engine, migrate
from orchestrator.models import AuditLog, BotInstance
from orchestrator.supervisor import SupervisorError
from orchestrator.supervisor.kubernetes import (
    ANN_GEN,
    KubernetesSpawner,
    build_manifests,
    object_name,
    pod_view,
    pvc_name,
)
from orchestrator.supervisor.spawner import SpawnSpec
from orchestrator.supervisor.supervisor import Supervisor, spawner_for
from tests.conftest import make_settings
from tests.support.k8s_standin import KubeStandIn

#: The Kubernetes version every manifest is checked against.
K8S_VERSION = "1.33.0"
NS = "flotilla"
RESOURCES = ("statefulsets", "services", "secrets", "persistentvolumeclaims", "pods")


@pytest.fixture
def standin() -> Iterator[KubeStandIn]:
    st = KubeStandIn().start()
    yield st
    st.stop()


def k8s_settings(tmp_path: Path, db_url: str, standin: KubeStandIn, **extra: Any) -> Any:
    return make_settings(
        tmp_path,
        db_url,
        spawner="kubernetes",
        k8s_api_url=standin.url,
        k8s_namespace=NS,
        k8s_watch_timeout_s=3,
        graceful_timeout=1.0,
        **extra,
    )


class Fleet:
    """A supervisor with a KubernetesSpawner on the stand-in, and a store to add bots to."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        migrate(settings.database_url)
        self.engine = make_engine(settings.database_url)
        self.sup = Supervisor(settings, self.engine)

    def add(self, instance_id: str, kind: str = "sms") -> None:
        with Session(self.engine) as session:
            session.add(BotInstance(id=instance_id, kind=kind, name=instance_id))
            session.commit()

    async def wait(
        self, instance_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.sup.status(instance_id, "sms")
            if pred(st):
                return st
            await asyncio.sleep(0.05)
        raise AssertionError(f"{instance_id}: condition not met; last status {st}")

    def audit_actions(self, instance_id: str) -> list[tuple[str, dict[str, Any]]]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(AuditLog).where(AuditLog.object_id == instance_id).order_by(AuditLog.id)
            ).all()
            return [(r.action, r.detail or {}) for r in rows]


@pytest.fixture
async def fleet(tmp_path: Path, sqlite_url: str, standin: KubeStandIn) -> AsyncIterator[Fleet]:
    f = Fleet(k8s_settings(tmp_path, sqlite_url, standin))
    assert isinstance(f.sup.spawner, KubernetesSpawner)
    await f.sup.startup()
    yield f
    await f.sup.shutdown()
    f.engine.dispose()


def running(st: dict[str, Any]) -> bool:
    return st["state"] == "running"


async def test_lifecycle_create_start_kill_stop_keeps_volume_start_delete(
    fleet: Fleet, standin: KubeStandIn
) -> None:
    fleet.add("shop")
    name = object_name("sms", "shop")
    st = await fleet.sup.start("shop", "sms")
    assert st["state"] in ("starting", "running")
    st = await fleet.wait("shop", running)
    assert st["pod"] == f"{name}-0"
    assert st["node"] == "standin-node-1"
    assert st["restarts"] == 0
    sts = standin.get("statefulsets", name)
    assert sts is not None
    assert sts["spec"]["replicas"] == 1
    labels = sts["metadata"]["labels"]
    assert labels["flotilla.dev/kind"] == "sms"
    assert labels["flotilla.dev/bot-id"] == "shop"
    assert labels["flotilla.dev/organization"] == ""
    assert standin.names("services") == [name]
    assert standin.names("secrets") == [name]
    pvc = standin.get("persistentvolumeclaims", pvc_name("sms", "shop"))
    assert pvc is not None
    first_pod = standin.get("pods", f"{name}-0")
    assert first_pod is not None

    # The orchestrator reaches the bot by its Service's DNS name.
    assert fleet.sup.bot_host("sms", "shop") == f"{name}.{NS}.svc"
    # Logs come from the pod log API.
    assert any("bot listening" in line for line in fleet.sup.tail("sms", "shop", 10))

    # Kill the pod: the StatefulSet controller makes a new one; the watch sees it.
    standin.kill_pod(f"{name}-0")
    st = await fleet.wait("shop", lambda s: running(s) and s["restarts"] == 1)
    second_pod = standin.get("pods", f"{name}-0")
    assert second_pod is not None
    assert second_pod["metadata"]["uid"] != first_pod["metadata"]["uid"]

    # Stop: replicas 0, the pod goes, the volume stays.
    st = await fleet.sup.stop("shop", "sms")
    assert st["state"] == "stopped"
    assert st["pod"] is None
    assert standin.get("statefulsets", name)["spec"]["replicas"] == 0  # type: ignore[index]
    assert standin.names("pods") == []
    kept = standin.get("persistentvolumeclaims", pvc_name("sms", "shop"))
    assert kept is not None
    assert kept["metadata"]["uid"] == pvc["metadata"]["uid"]

    # Start again: the same volume, a new generation of tokens in the Secret.
    gen_before = int(sts["spec"]["template"]["metadata"]["annotations"][ANN_GEN])
    await fleet.sup.start("shop", "sms")
    st = await fleet.wait("shop", running)
    assert st["restarts"] == 1  # a start after a stop is not a restart
    again = standin.get("persistentvolumeclaims", pvc_name("sms", "shop"))
    assert again is not None
    assert again["metadata"]["uid"] == pvc["metadata"]["uid"]
    sts2 = standin.get("statefulsets", name)
    assert int(sts2["spec"]["template"]["metadata"]["annotations"][ANN_GEN]) > gen_before  # type: ignore[index]

    # Restart = a rollout: a new pod, still one replica, not counted as a crash restart.
    pod_before = standin.get("pods", f"{name}-0")
    await fleet.sup.restart("shop", "sms")
    await fleet.wait(
        "shop",
        lambda s: (
            running(s)
            and (standin.get("pods", f"{name}-0") or {}).get("metadata", {}).get("uid")
            not in (None, pod_before["metadata"]["uid"])
        ),  # type: ignore[index]
    )
    assert fleet.sup.status("shop", "sms")["restarts"] == 1

    # Delete: nothing is left, the volume included.
    await fleet.sup.forget("shop")
    for _ in range(100):
        if not any(standin.names(r) for r in RESOURCES):
            break
        await asyncio.sleep(0.05)
    assert {r: standin.names(r) for r in RESOURCES} == {r: [] for r in RESOURCES}
    assert fleet.sup.status("shop", "sms")["state"] == "stopped"

    # State changes were logged and audited like a local bot's.
    actions = [a for a, _ in fleet.audit_actions("shop")]
    assert "bot.running" in actions
    assert "bot.stopped" in actions


async def test_secret_holds_the_tokens_and_the_pod_spec_does_not(
    fleet: Fleet, standin: KubeStandIn
) -> None:
    fleet.add("tok")
    await fleet.sup.start("tok", "sms")
    await fleet.wait("tok", running)
    name = object_name("sms", "tok")
    secret = standin.get("secrets", name)
    assert secret is not None
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(values) == {"BOT_INTERNAL_TOKEN", "BOT_CONTROL_KEY"}
    sts_text = json.dumps(standin.get("statefulsets", name))
    for value in values.values():
        assert len(value) > 20
        assert value not in sts_text
    assert fleet.settings.secret_key not in sts_text
    env = standin.get("statefulsets", name)["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    by_name = {e["name"]: e for e in env}
    assert by_name["BOT_CONTROL_KEY"]["valueFrom"]["secretKeyRef"]["name"] == name
    assert by_name["BOT_DATA_DIR"]["value"] == "/data"
    assert by_name["BOT_HOST"]["value"] == "0.0.0.0"


async def test_an_image_that_cannot_be_pulled_is_crashed_with_the_reason(
    tmp_path: Path, sqlite_url: str, standin: KubeStandIn
) -> None:
    standin.bad_images.add("registry.example/flotilla:missing")
    f = Fleet(
        k8s_settings(tmp_path, sqlite_url, standin, k8s_image="registry.example/flotilla:missing")
    )
    await f.sup.startup()
    try:
        f.add("nopull")
        await f.sup.start("nopull", "sms")
        st = await f.wait("nopull", lambda s: s["state"] == "crashed")
        assert st["last_error"].startswith("ImagePullBackOff: Back-off pulling image")
        assert "registry.example/flotilla:missing" in st["last_error"]
        # The Logs tab explains why there is no log rather than failing.
        lines = f.sup.tail("sms", "nopull", 10)
        assert len(lines) == 1
        assert "waiting to start" in lines[0]
        reasons = [d.get("reason", "") for a, d in f.audit_actions("nopull") if a == "bot.crashed"]
        assert any("ImagePullBackOff" in r for r in reasons)
    finally:
        await f.sup.shutdown()
        f.engine.dispose()


async def test_a_crash_loop_is_crashed_with_restarts_and_exit_code(
    tmp_path: Path, sqlite_url: str, standin: KubeStandIn
) -> None:
    standin.crash_images.add("flotilla:broken")
    f = Fleet(k8s_settings(tmp_path, sqlite_url, standin, k8s_image="flotilla:broken"))
    await f.sup.startup()
    try:
        f.add("loop")
        await f.sup.start("loop", "sms")
        st = await f.wait("loop", lambda s: s["state"] == "crashed" and s["restarts"] >= 2)
        assert st["last_error"].startswith("CrashLoopBackOff: back-off")
        assert st["last_exit_code"] == 1
        assert any("cannot start" in line for line in f.sup.tail("sms", "loop", 5))
    finally:
        await f.sup.shutdown()
        f.engine.dispose()


async def _k8s_post(standin: KubeStandIn, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=standin.url) as http:
        return await http.post(path, json=body)


async def test_objects_left_from_before_are_updated_409_and_gone_ones_are_fine_404(
    fleet: Fleet, standin: KubeStandIn
) -> None:
    fleet.add("old")
    name = object_name("sms", "old")
    # A previous orchestrator left the bot's objects behind (stopped, with stale tokens).
    spec = SpawnSpec(
        instance_id="old",
        kind="sms",
        env={"BOT_CONTROL_KEY": "stale-key"},
        log_path=Path("/nonexistent"),
    )
    stale = build_manifests(fleet.settings, spec, port=8100, gen=1, replicas=0)
    for res, path in (
        ("secret", f"/api/v1/namespaces/{NS}/secrets"),
        ("service", f"/api/v1/namespaces/{NS}/services"),
        ("statefulset", f"/apis/apps/v1/namespaces/{NS}/statefulsets"),
    ):
        assert (await _k8s_post(standin, path, stale[res])).status_code == 201
        again = await _k8s_post(standin, path, stale[res])
        assert again.status_code == 409
        assert again.json()["reason"] == "AlreadyExists"

    # Starting over them updates them (create → 409 → replace / patch) and runs the bot.
    await fleet.sup.start("old", "sms")
    await fleet.wait("old", running)
    secret = standin.get("secrets", name)
    assert secret is not None
    assert base64.b64decode(secret["data"]["BOT_CONTROL_KEY"]).decode() != "stale-key"

    # Someone deletes the StatefulSet by hand: stop and delete still succeed (404 = gone).
    async with httpx.AsyncClient(base_url=standin.url) as http:
        res = await http.delete(f"/apis/apps/v1/namespaces/{NS}/statefulsets/{name}")
        assert res.status_code == 200
        gone = await http.get(f"/apis/apps/v1/namespaces/{NS}/statefulsets/{name}")
        assert gone.status_code == 404
        assert gone.json()["reason"] == "NotFound"
    await fleet.wait("old", lambda s: s["pod"] is None)
    st = await fleet.sup.stop("old", "sms")
    assert st["state"] == "stopped"
    assert fleet.sup.tail("sms", "old", 5) == []  # no pod: no log, no error
    await fleet.sup.forget("old")
    assert {r: standin.names(r) for r in RESOURCES} == {r: [] for r in RESOURCES}


async def test_a_start_the_api_refuses_is_a_clear_error(
    fleet: Fleet, standin: KubeStandIn
) -> None:
    fleet.add("refused")
    standin.stop()  # the API server is unreachable
    with pytest.raises(SupervisorError) as err:
        await fleet.sup.start("refused", "sms")
    assert err.value.status == 503
    assert "unreachable" in err.value.message
    assert fleet.sup.status("refused", "sms")["state"] == "stopped"


async def test_watch_relists_after_410_gone_and_keeps_following(
    fleet: Fleet, standin: KubeStandIn
) -> None:
    spawner = fleet.sup.spawner
    assert isinstance(spawner, KubernetesSpawner)
    fleet.add("w410")
    await fleet.sup.start("w410", "sms")
    await fleet.wait("w410", running)
    relists = spawner.relists
    # etcd compacted past our resourceVersion and the watch connection dropped.
    standin.compact()
    standin.drop_watches()
    for _ in range(100):
        if spawner.relists != relists:
            break
        await asyncio.sleep(0.05)
    assert spawner.relists == relists + 1
    standin.kill_pod(f"{object_name('sms', 'w410')}-0")
    await fleet.wait("w410", lambda s: running(s) and s["restarts"] == 1)


async def test_a_second_orchestrator_adopts_the_running_bots(
    tmp_path: Path, fleet: Fleet, standin: KubeStandIn
) -> None:
    fleet.add("keep")
    await fleet.sup.start("keep", "sms")
    await fleet.wait("keep", running)
    other = Supervisor(fleet.settings, fleet.engine, spawner_for(fleet.settings))
    await other.startup()
    try:
        st = other.status("keep", "sms")
        assert st["state"] == "running"
        assert st["port"] == fleet.sup.status("keep", "sms")["port"]
        assert other.watchers["keep"].want_running
        # Its start is a no-op (already running): no rollout, the same pod.
        uid = standin.get("pods", f"{object_name('sms', 'keep')}-0")["metadata"]["uid"]  # type: ignore[index]
        await other.start("keep", "sms")
        assert standin.get("pods", f"{object_name('sms', 'keep')}-0")["metadata"]["uid"] == uid  # type: ignore[index]
    finally:
        await other.shutdown()
    # Shutting an orchestrator down leaves the cluster's bots running.
    assert standin.get("statefulsets", object_name("sms", "keep"))["spec"]["replicas"] == 1  # type: ignore[index]


def test_object_names_are_dns_labels_and_unique() -> None:
    long_id = "A_very-Long_Bot_Id_" * 4
    names = {
        object_name("whatsapp", long_id[:64]),
        object_name("whatsapp", long_id[:63]),
        object_name("sms", "shop"),
        object_name("whatsapp", "shop"),
    }
    assert len(names) == 4
    for name in names:
        assert len(name) <= 47
        assert name == name.lower()
        assert name[0].isalnum()
        assert name[-1].isalnum()


def _spec(kind: str = "whatsapp", instance_id: str = "Shop_1") -> SpawnSpec:
    return SpawnSpec(
        instance_id=instance_id,
        kind=kind,
        env={
            "BOT_INSTANCE_ID": instance_id,
            "BOT_KIND": kind,
            "BOT_INTERNAL_TOKEN": "t" * 30,
            "BOT_CONTROL_KEY": "k" * 30,
            "WA_INTERNAL_TOKEN": "t" * 30,
            "BOT_PORT": "8100",
        },
        log_path=Path("/nonexistent"),
    )


@pytest.mark.parametrize("storage_class", ["", "fast-ssd"])
def test_every_spawner_manifest_validates_against_the_pinned_schema(
    tmp_path: Path, sqlite_url: str, storage_class: str
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        spawner="kubernetes",
        k8s_api_url="http://127.0.0.1:1",
        k8s_storage_class=storage_class,
        k8s_organization="acme",
    )
    manifests = build_manifests(settings, _spec(), port=8123, gen=3)
    assert set(manifests) == {"secret", "service", "statefulset"}
    for manifest in manifests.values():
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    # The validator really checks (offline): a wrong field and a wrong type are refused.
    broken = json.loads(json.dumps(manifests["statefulset"]))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = json.loads(json.dumps(manifests["service"]))
    broken["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_pod_view_reads_the_states_the_supervisor_shows() -> None:
    def pod(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": "p-0", "uid": "u", **meta},
            "spec": {"nodeName": "n1"},
            "status": status,
        }

    pending = pod(
        {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "bot",
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }
            ],
        }
    )
    assert pod_view(pending)["state"] == "starting"
    ready = pod(
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "bot",
                    "restartCount": 2,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    "lastState": {"terminated": {"exitCode": 137}},
                }
            ],
        }
    )
    view = pod_view(ready)
    assert (view["state"], view["restarts"], view["last_exit_code"], view["node"]) == (
        "running",
        2,
        137,
        "n1",
    )
    unready = pod(
        {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "bot", "restartCount": 0, "state": {"running": {}}}],
        }
    )
    assert pod_view(unready)["state"] == "starting"
    config_error = pod(
        {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "bot",
                    "restartCount": 0,
                    "state": {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": 'secret "x" not found',
                        }
                    },
                }
            ],
        }
    )
    assert pod_view(config_error)["reason"] == 'CreateContainerConfigError: secret "x" not found'
    going = pod({"phase": "Running"}, deletionTimestamp="2026-01-01T00:00:00Z")
    assert pod_view(going)["state"] == "stopping"
    evicted = pod({"phase": "Failed", "reason": "Evicted", "message": "low on memory"})
    assert pod_view(evicted)["state"] == "crashed"
    assert pod_view(evicted)["reason"] == "Evicted: low on memory"


def test_the_api_shows_cluster_states_reasons_and_pod_logs(
    tmp_path: Path, sqlite_url: str, standin: KubeStandIn
) -> None:
    """Through the real routes the Bots page and Logs tab use: status (crashed with the
    reason, pod and node) and logs (the pod log API); delete removes the bot's objects."""
    from fastapi.testclient import TestClient

    from orchestrator.main import create_app
    from tests.conftest import Actors

    standin.bad_images.add("flotilla:nope")
    settings = k8s_settings(
        tmp_path,
        sqlite_url,
        standin,
        k8s_image="flotilla:nope",
        ai_embedding_model_path=tmp_path / "no-model",  # no knowledge base here: no warm-up
    )
    with TestClient(create_app(settings)) as client:
        h = Actors(client).add("admin", "admin")
        bot = client.post("/admin/sms/instances", json={"name": "Shop"}, headers=h).json()
        base = f"/admin/sms/instances/{bot['id']}"
        assert client.post(f"{base}/start", headers=h).status_code == 200
        st: dict[str, Any] = {}
        for _ in range(200):
            st = client.get(f"{base}/status", headers=h).json()
            if st["state"] == "crashed":
                break
            time.sleep(0.05)
        assert st["state"] == "crashed"
        assert st["last_error"].startswith("ImagePullBackOff")
        assert st["pod"] == f"{object_name('sms', bot['id'])}-0"
        assert st["node"] == "standin-node-1"
        logs = client.get(f"{base}/logs", params={"lines": 5}, headers=h).json()
        assert len(logs["lines"]) == 1
        assert "waiting to start" in logs["lines"][0]
        fleet_rows = client.get("/admin/fleet", headers=h).json()
        assert [r["state"] for r in fleet_rows if r["id"] == bot["id"]] == ["crashed"]
        assert client.delete(base, headers=h).status_code == 204
        for _ in range(100):
            if not any(standin.names(r) for r in RESOURCES):
                break
            time.sleep(0.05)
        assert {r: standin.names(r) for r in RESOURCES} == {r: [] for r in RESOURCES}


class ForwardProxy:
    """A real HTTP forward proxy (as a cluster's egress proxy would be) that records the host
    each request was addressed to and delivers it to one local server instead."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[tuple[str, int | None, str]] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ForwardProxy:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def _run(self) -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            self.seen.append((request.url.host or "", request.url.port, request.path_qs))
            async with httpx.AsyncClient() as http:
                res = await http.request(
                    request.method,
                    self.target + request.path_qs,
                    content=await request.read(),
                    headers={"content-type": request.headers.get("content-type", "")},
                )
            return web.Response(body=res.content, status=res.status_code)

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(serve())
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def test_hooks_forward_to_the_bots_service_dns_name(
    tmp_path: Path, sqlite_url: str, standin: KubeStandIn
) -> None:
    """/hooks/{kind}/{id} addresses the bot's Service (``{svc}.{ns}.svc:{port}``); the request
    reaches a real server through a forward proxy, since no cluster DNS resolves here."""
    from aiohttp import web
    from fastapi.testclient import TestClient

    from orchestrator.main import create_app
    from tests.conftest import Actors

    received: list[tuple[str, bytes]] = []
    loop = asyncio.new_event_loop()

    async def bot_webhook(request: web.Request) -> web.Response:
        received.append((request.path, await request.read()))
        return web.Response(text="<Response/>", content_type="text/xml")

    async def serve_bot() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/webhook", bot_webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, bot_port = loop.run_until_complete(serve_bot())
    bot_thread = threading.Thread(target=loop.run_forever, daemon=True)
    bot_thread.start()
    proxy = ForwardProxy(f"http://127.0.0.1:{bot_port}").start()
    try:
        settings = k8s_settings(
            tmp_path, sqlite_url, standin, ai_embedding_model_path=tmp_path / "no-model"
        )
        with TestClient(create_app(settings)) as client:
            h = Actors(client).add("admin", "admin")
            bot = client.post("/admin/sms/instances", json={"name": "Hook"}, headers=h).json()
            assert client.post(f"/admin/sms/instances/{bot['id']}/start", headers=h).status_code
            port = client.get(f"/admin/sms/instances/{bot['id']}", headers=h).json()[
                "webhook_port"
            ]
            sup = client.app.state.supervisor  # type: ignore[attr-defined]
            sup._http = httpx.AsyncClient(proxy=proxy.url, timeout=5.0)
            res = client.post(
                f"/hooks/sms/{bot['id']}/webhook",
                content=b"From=%2B15550001111&Body=hi",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert res.status_code == 200, res.text
            assert res.text == "<Response/>"
            # Outside the channel's public routes nothing is forwarded (as locally).
            assert client.post(f"/hooks/sms/{bot['id']}/control/reload").status_code == 404
    finally:
        proxy.stop()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        bot_thread.join(5)
    assert proxy.seen == [(f"{object_name('sms', bot['id'])}.{NS}.svc", port, "/webhook")]
    assert received == [("/webhook", b"From=%2B15550001111&Body=hi")]


async def test_tokens_in_the_secrets_are_kept_fresh_without_touching_the_pods(
    fleet: Fleet, standin: KubeStandIn
) -> None:
    """A container the kubelet restarts reads its token from the Secret: the leader replaces
    it before it expires (same generation, so the running pod is left alone)."""
    from shared.tokens import unverified_expiry

    fleet.add("fresh")
    await fleet.sup.start("fresh", "sms")
    await fleet.wait("fresh", running)
    name = object_name("sms", "fresh")

    def secret_values() -> dict[str, str]:
        data = standin.get("secrets", name)["data"]  # type: ignore[index]
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    before = secret_values()
    uid = standin.get("pods", f"{name}-0")["metadata"]["uid"]  # type: ignore[index]
    await asyncio.sleep(1.1)  # JWT expiry has one-second resolution
    assert await fleet.sup.refresh_cluster_secrets() == 1
    after = secret_values()
    assert after["BOT_INTERNAL_TOKEN"] != before["BOT_INTERNAL_TOKEN"]
    assert unverified_expiry(after["BOT_INTERNAL_TOKEN"]) > unverified_expiry(  # type: ignore[operator]
        before["BOT_INTERNAL_TOKEN"]
    )
    assert after["BOT_CONTROL_KEY"] == before["BOT_CONTROL_KEY"]
    await asyncio.sleep(0.3)
    assert standin.get("pods", f"{name}-0")["metadata"]["uid"] == uid  # type: ignore[index]
    await fleet.sup.stop("fresh", "sms")
    assert await fleet.sup.refresh_cluster_secrets() == 0  # a stopped bot needs none


def test_an_unreachable_kubernetes_api_is_a_503_with_the_reason_not_a_500(
    tmp_path: Path, sqlite_url: str, standin: KubeStandIn
) -> None:
    from fastapi.testclient import TestClient

    from orchestrator.main import create_app
    from tests.conftest import Actors

    settings = k8s_settings(
        tmp_path, sqlite_url, standin, ai_embedding_model_path=tmp_path / "no-model"
    )
    with TestClient(create_app(settings)) as client:
        h = Actors(client).add("admin", "admin")
        bot = client.post("/admin/sms/instances", json={"name": "Down"}, headers=h).json()
        base = f"/admin/sms/instances/{bot['id']}"
        assert client.post(f"{base}/start", headers=h).status_code == 200
        standin.stop()
        for method, path in (
            ("POST", f"{base}/stop"),
            ("POST", f"{base}/restart"),
            ("DELETE", base),
        ):
            res = client.request(method, path, headers=h)
            assert res.status_code == 503, (path, res.text)
            assert res.json()["detail"].startswith("Kubernetes API unreachable")
        # The bot was not deleted from the store while its objects may still exist.
        assert client.get(base, headers=h).status_code == 200
        # Logs explain instead of failing.
        logs = client.get(f"{base}/logs", headers=h).json()["lines"]
        assert logs == ["(Kubernetes API unreachable: MaxRetryError)"]
