"""A Kubernetes API stand-in: exactly the endpoints ``KubernetesSpawner`` uses, with the request
and response shapes of the API reference, and a little controller (StatefulSet → pod, volume
claims from ``volumeClaimTemplates``, pods that start, crash-loop or cannot pull their image).

Endpoints (namespaced; ``{res}`` is ``secrets``, ``services`` or ``persistentvolumeclaims``
under ``/api/v1``, ``statefulsets`` under ``/apis/apps/v1``):

* ``POST {res}`` → 201 with the stored object (``uid``, ``resourceVersion``,
  ``creationTimestamp`` filled in); 409 ``AlreadyExists`` Status when the name is taken;
* ``GET {res}`` → a ``{Kind}List`` (``labelSelector`` with ``k=v`` terms);
  ``GET/PUT/PATCH/DELETE {res}/{name}`` (PATCH: JSON merge patch, RFC 7386) → 404 ``NotFound``
  Status when it is not there; DELETE answers a ``Success`` Status;
* ``GET pods`` (list) and ``GET pods?watch=true&resourceVersion=N`` → chunked JSON lines
  ``{"type": "ADDED|MODIFIED|DELETED", "object": Pod}``; a ``resourceVersion`` older than the
  kept history → one ``ERROR`` event with a 410 ``Expired`` Status, then the stream ends;
* ``DELETE pods/{name}`` ("kill the pod": the controller makes a new one), ``GET
  pods/{name}/log`` (``tailLines``; 400 while the container waits, as the API server says).

With ``run_pods`` (kubelet mode) each pod's container runs as a local process: env values and
``secretKeyRef`` resolved from the stored Secret, volume mounts as directories under
``run_pods`` (a claim's directory lives until the claim is deleted), a TCP readiness probe on
its port, restarts when it exits; ``proxy_url`` is the cluster network, an HTTP proxy that
delivers ``{service}.{namespace}.svc:{port}`` to the pod's process.

The stand-in runs its own event loop in a thread, so tests may call into it from anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[2]

GROUPS = {
    "secrets": ("v1", "Secret", ""),
    "services": ("v1", "Service", ""),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim", ""),
    "pods": ("v1", "Pod", ""),
    "statefulsets": ("apps/v1", "StatefulSet", "apps"),
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, name: str = "", res: str = "") -> dict:
    group = GROUPS.get(res, ("", "", ""))[2]
    details: dict[str, Any] = {"name": name, "kind": res} if name else {}
    if group and details:
        details["group"] = group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


class KubeStandIn:
    """The stand-in's state and HTTP server."""

    def __init__(
        self, history: int = 1000, start_delay: float = 0.15, run_pods: Path | None = None
    ) -> None:
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in GROUPS}
        self.rv = 100
        self.history: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=history)
        self.watchers: set[asyncio.Queue[tuple[int, str, dict[str, Any]] | None]] = set()
        self.start_delay = start_delay
        #: images whose pull fails (ImagePullBackOff) and that exit at once (CrashLoopBackOff).
        self.bad_images: set[str] = set()
        self.crash_images: set[str] = set()
        self.logs: dict[str, list[str]] = {}
        #: (method, path with query) of every request: what RBAC must allow.
        self.requests: list[tuple[str, str]] = []
        self.watch_requests = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        #: Kubelet mode: run each pod's container as a local process, its volumes as
        #: directories under ``run_pods``, and serve the cluster network as an HTTP proxy
        #: (``proxy_url``: ``{service}.{namespace}.svc:{port}`` → the pod's process).
        self.run_pods = run_pods
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.proxy_url = ""

    # ------------------------------------------------------------ running

    def start(self) -> KubeStandIn:
        self._thread = threading.Thread(target=self._run, name="k8s-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stand-in did not start")
        return self

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._serve())
        self._ready.set()
        self.loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        if self.run_pods is not None:
            proxy = web.Application(client_max_size=8 * 1024 * 1024)
            proxy.router.add_route("*", "/{tail:.*}", self._proxy)
            self._proxy_runner = web.AppRunner(proxy, shutdown_timeout=0.5)
            await self._proxy_runner.setup()
            psite = web.TCPSite(self._proxy_runner, "127.0.0.1", 0)
            await psite.start()
            pport = psite._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.proxy_url = f"http://127.0.0.1:{pport}"

    def stop(self) -> None:
        if self.loop is None or not self.loop.is_running():
            return

        async def down() -> None:
            for proc in list(self.procs.values()):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            for task in list(self._tasks):
                task.cancel()
            for q in list(self.watchers):
                q.put_nowait(None)
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(down(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the stand-in's loop (thread-safe access for tests)."""
        assert self.loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    # ------------------------------------------------------------ test controls

    def kill_pod(self, name: str, ns: str = "flotilla") -> None:
        """Delete a pod as ``kubectl delete pod`` would: its StatefulSet makes a new one."""
        self.call(self._delete_pod, ns, name)

    def compact(self) -> None:
        """Forget the event history (etcd compaction): older resourceVersions get 410."""
        self.call(self.history.clear)
        self.call(self._bump)

    def drop_watches(self) -> None:
        """End every open watch stream (an API server restart)."""
        self.call(lambda: [q.put_nowait(None) for q in list(self.watchers)])

    def verbs(self) -> set[tuple[str, str, str]]:
        """The (API group, resource, RBAC verb) of every request so far."""
        out: set[tuple[str, str, str]] = set()
        for method, path_qs in list(self.requests):
            path, _, query = path_qs.partition("?")
            parts = path.strip("/").split("/")
            rest = parts[2:] if parts[0] == "api" else parts[3:]
            if len(rest) < 3:
                continue
            res = rest[2]
            group = GROUPS.get(res, ("", "", ""))[2]
            named = len(rest) > 3
            if len(rest) > 4:
                res = f"{res}/{rest[4]}"
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                method, "get" if named else ("watch" if "watch=true" in query else "list")
            )
            out.add((group, res, verb))
        return out

    def get(self, res: str, name: str, ns: str = "flotilla") -> dict[str, Any] | None:
        return self.call(lambda: copy.deepcopy(self.objects[res].get((ns, name))))

    def names(self, res: str, ns: str = "flotilla") -> list[str]:
        return self.call(lambda: sorted(n for (s, n) in self.objects[res] if s == ns))

    def append_log(self, pod: str, line: str) -> None:
        self.call(lambda: self.logs.setdefault(pod, []).append(line))

    # ------------------------------------------------------------ store

    def _bump(self) -> int:
        self.rv += 1
        return self.rv

    def _store(self, res: str, obj: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._bump())
        self.objects[res][(meta["namespace"], meta["name"])] = obj
        if res == "pods":
            self._emit(event or "MODIFIED", obj)
        return obj

    def _emit(self, type_: str, pod: dict[str, Any]) -> None:
        entry = (int(pod["metadata"]["resourceVersion"]), type_, copy.deepcopy(pod))
        self.history.append(entry)
        for q in list(self.watchers):
            q.put_nowait(entry)

    def _remove(self, res: str, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects[res].pop((ns, name), None)
        if obj is not None and res == "pods":
            obj["metadata"]["resourceVersion"] = str(self._bump())
            self._emit("DELETED", obj)
        return obj

    def _new_meta(self, body: dict[str, Any], ns: str) -> dict[str, Any]:
        meta = dict(body.get("metadata") or {})
        meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        return meta

    # ------------------------------------------------------------ controller

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            result = fn(*args)
            if asyncio.iscoroutine(result):
                await result

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reconcile(self, ns: str, name: str) -> None:
        sts = self.objects["statefulsets"].get((ns, name))
        pod_name = f"{name}-0"
        pod = self.objects["pods"].get((ns, pod_name))
        if sts is None or int(sts["spec"].get("replicas") or 0) == 0:
            if pod is not None and not pod["metadata"].get("deletionTimestamp"):
                self._terminate_pod(ns, pod_name)
            return
        template = sts["spec"]["template"]
        if pod is not None:
            if pod["metadata"].get("deletionTimestamp"):
                return  # the new pod comes when this one is gone
            if pod["metadata"].get("annotations") != template["metadata"].get("annotations"):
                self._terminate_pod(ns, pod_name)  # a rollout: replace the pod
            return
        for claim in sts["spec"].get("volumeClaimTemplates") or []:
            claim_name = f"{claim['metadata']['name']}-{pod_name}"
            if (ns, claim_name) not in self.objects["persistentvolumeclaims"]:
                self._store(
                    "persistentvolumeclaims",
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {
                            **self._new_meta({"metadata": claim["metadata"]}, ns),
                            "name": claim_name,
                        },
                        "spec": copy.deepcopy(claim["spec"]),
                        "status": {"phase": "Bound"},
                    },
                )
        new = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **self._new_meta({"metadata": copy.deepcopy(template["metadata"])}, ns),
                "name": pod_name,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": name,
                        "uid": sts["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                **copy.deepcopy(template["spec"]),
                "nodeName": "standin-node-1",
                "hostname": pod_name,
                "subdomain": sts["spec"].get("serviceName"),
            },
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": template["spec"]["containers"][0]["name"],
                        "image": template["spec"]["containers"][0]["image"],
                        "imageID": "",
                        "started": False,
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                ],
            },
        }
        self._store("pods", new, "ADDED")
        self.logs[pod_name] = []
        self._later(self.start_delay, self._start_container, ns, pod_name, new["metadata"]["uid"])

    def _pod(self, ns: str, name: str, uid: str) -> dict[str, Any] | None:
        pod = self.objects["pods"].get((ns, name))
        if (
            pod is None
            or pod["metadata"]["uid"] != uid
            or pod["metadata"].get("deletionTimestamp")
        ):
            return None
        return pod

    def _start_container(self, ns: str, name: str, uid: str) -> None:
        pod = self._pod(ns, name, uid)
        if pod is None:
            return
        pod = copy.deepcopy(pod)
        cs = pod["status"]["containerStatuses"][0]
        image = cs["image"]
        if image in self.bad_images:
            cs["state"] = {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image}"',
                }
            }
            self._store("pods", pod)
            return
        if self.run_pods is not None:
            self._later(0, self._spawn_container, ns, name, uid)
            return
        pod["status"]["phase"] = "Running"
        started = _now()
        if image in self.crash_images:
            cs["restartCount"] += 1
            cs["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": started,
                    "finishedAt": started,
                }
            }
            cs["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off 10s restarting failed container={cs['name']} pod={name}"
                        f"_{ns}({uid})"
                    ),
                }
            }
            pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
            self._store("pods", pod)
            self.logs.setdefault(name, []).append("Traceback: the bot cannot start")
            self._later(self.start_delay * 2, self._start_container, ns, name, uid)
            return
        cs["state"] = {"running": {"startedAt": started}}
        cs["ready"] = cs["started"] = True
        cs["imageID"] = f"{image}@sha256:{uuid.uuid5(uuid.NAMESPACE_URL, image).hex * 2}"
        pod["status"]["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": "True"},
            {"type": "Ready", "status": "True"},
        ]
        pod["status"]["podIP"] = "10.244.0.10"
        self._store("pods", pod)
        self.logs.setdefault(name, []).append(
            json.dumps({"level": "INFO", "msg": "bot listening", "pod": name})
        )

    def _terminate_pod(self, ns: str, name: str) -> None:
        pod = self.objects["pods"].get((ns, name))
        if pod is None:
            return
        pod = copy.deepcopy(pod)
        pod["metadata"]["deletionTimestamp"] = _now()
        pod["metadata"]["deletionGracePeriodSeconds"] = 1
        self._store("pods", pod)
        uid = pod["metadata"]["uid"]
        if uid in self.procs:
            grace = float(pod["spec"].get("terminationGracePeriodSeconds") or 30)
            task = asyncio.get_running_loop().create_task(self._kill(ns, name, uid, grace))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._later(self.start_delay, self._gone, ns, name, uid)

    def _gone(self, ns: str, name: str, uid: str) -> None:
        pod = self.objects["pods"].get((ns, name))
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        self._remove("pods", ns, name)
        owner = (pod["metadata"].get("ownerReferences") or [{}])[0].get("name")
        if owner:
            self._reconcile(ns, owner)

    # ------------------------------------------------------------ kubelet mode

    def _volume_dir(self, ns: str, pod: dict[str, Any], volume: str) -> Path:
        assert self.run_pods is not None
        empty = {v["name"] for v in pod["spec"].get("volumes") or [] if "emptyDir" in v}
        if volume in empty:
            path = self.run_pods / "emptydir" / pod["metadata"]["uid"] / volume
        else:  # from volumeClaimTemplates: the claim {template}-{pod}
            path = self.run_pods / "pvc" / ns / f"{volume}-{pod['metadata']['name']}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _set_state(
        self, ns: str, name: str, uid: str, state: dict[str, Any], ready: bool, **extra: Any
    ) -> None:
        pod = self._pod(ns, name, uid)
        if pod is None:
            return
        pod = copy.deepcopy(pod)
        cs = pod["status"]["containerStatuses"][0]
        cs["state"] = state
        cs["ready"] = ready
        cs.update(extra)
        pod["status"]["phase"] = "Running"
        pod["status"]["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True" if ready else "False"},
        ]
        self._store("pods", pod)

    async def _spawn_container(self, ns: str, name: str, uid: str) -> None:
        """Run the pod's container as a local process (env and secrets resolved, volumes as
        directories), probe its port for readiness, and restart it when it exits."""
        pod = self._pod(ns, name, uid)
        if pod is None:
            return
        container = pod["spec"]["containers"][0]
        mounts = {
            m["mountPath"]: self._volume_dir(ns, pod, m["name"])
            for m in container.get("volumeMounts") or []
        }
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
        for item in container.get("env") or []:
            if "value" in item:
                value = str(item["value"])
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                secret = self.objects["secrets"].get((ns, ref["name"]))
                if secret is None or ref["key"] not in (secret.get("data") or {}):
                    self._set_state(
                        ns,
                        name,
                        uid,
                        {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": f'secret "{ref["name"]}" not found',
                            }
                        },
                        False,
                    )
                    self._later(self.start_delay * 4, self._start_container, ns, name, uid)
                    return
                value = base64.b64decode(secret["data"][ref["key"]]).decode()
            for mount, local in mounts.items():
                if value == mount or value.startswith(mount + "/"):
                    value = str(local) + value[len(mount) :]
                    break
            env[item["name"]] = value
        env.setdefault("HOME", str(mounts.get("/tmp", self.run_pods)))  # noqa: S108
        command = list(container["command"])
        if command[0] == "python":
            command[0] = sys.executable
        port = int(container["ports"][0]["containerPort"])
        assert self.run_pods is not None
        log_path = self.run_pods / "logs" / f"{ns}_{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                cwd=str(REPO),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.procs[uid] = proc
        self._set_state(ns, name, uid, {"running": {"startedAt": _now()}}, False, started=True)
        while proc.returncode is None and self._pod(ns, name, uid) is not None:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            writer.close()
            self._set_state(ns, name, uid, {"running": {"startedAt": _now()}}, True)
            break
        code = await proc.wait()
        self.procs.pop(uid, None)
        pod = self._pod(ns, name, uid)
        if pod is None:
            return  # stopped on purpose
        restarts = int(pod["status"]["containerStatuses"][0].get("restartCount") or 0) + 1
        self._set_state(
            ns,
            name,
            uid,
            {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container={container['name']}",
                }
            },
            False,
            restartCount=restarts,
            lastState={"terminated": {"exitCode": code, "reason": "Error"}},
        )
        self._later(self.start_delay * 4, self._start_container, ns, name, uid)

    async def _kill(self, ns: str, name: str, uid: str, grace: float) -> None:
        proc = self.procs.get(uid)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self._gone(ns, name, uid)

    async def _proxy(self, request: web.Request) -> web.Response:
        """The cluster network: ``{service}.{namespace}.svc:{port}`` → the pod's process."""
        host, port = request.url.host or "", request.url.port
        parts = host.split(".")
        if (
            len(parts) != 3
            or parts[2] != "svc"
            or (parts[1], parts[0]) not in self.objects["services"]
        ):
            return web.Response(status=502, text=f"no service {host}")
        import httpx

        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "proxy-connection", "connection", "content-length")
        }
        async with httpx.AsyncClient(timeout=30) as http:
            try:
                res = await http.request(
                    request.method,
                    f"http://127.0.0.1:{port}{request.path_qs}",
                    headers=headers,
                    content=await request.read(),
                )
            except httpx.HTTPError as exc:
                return web.Response(status=502, text=f"pod unreachable: {exc!r}")
        keep = {k: v for k, v in res.headers.items() if k.lower() in ("content-type",)}
        return web.Response(status=res.status_code, body=res.content, headers=keep)

    def _delete_pod(self, ns: str, name: str) -> dict[str, Any] | None:
        pod = self.objects["pods"].get((ns, name))
        if pod is None:
            return None
        self._terminate_pod(ns, name)
        return pod

    # ------------------------------------------------------------ HTTP

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        parts = request.path.strip("/").split("/")
        # /api/v1/namespaces/{ns}/{res}[/{name}[/log]]  or  /apis/apps/v1/namespaces/...
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:3] == ["apis", "apps", "v1"]:
            rest = parts[3:]
        else:
            return web.json_response(
                status_body(404, "NotFound", "the server could not find the requested resource"),
                status=404,
            )
        if len(rest) < 3 or rest[0] != "namespaces" or rest[2] not in GROUPS:
            return web.json_response(
                status_body(404, "NotFound", "the server could not find the requested resource"),
                status=404,
            )
        ns, res = rest[1], rest[2]
        api_version = GROUPS[res][0]
        if (api_version == "apps/v1") != (parts[0] == "apis"):
            return web.json_response(status_body(404, "NotFound", "wrong group"), status=404)
        name = rest[3] if len(rest) > 3 else None
        sub = rest[4] if len(rest) > 4 else None
        if name is None:
            if request.method == "POST":
                return await self._create(request, ns, res)
            if request.method == "GET":
                if request.query.get("watch") in ("true", "1"):
                    return await self._watch(request, ns, res)
                return self._list(request, ns, res)
            return web.json_response(status_body(405, "MethodNotAllowed", "no"), status=405)
        if sub == "log" and res == "pods" and request.method == "GET":
            return self._log(request, ns, name)
        current = self.objects[res].get((ns, name))
        if current is None:
            return self._not_found(res, name)
        if request.method == "GET":
            return web.json_response(current)
        if request.method == "DELETE":
            return self._delete(ns, res, name, current)
        if request.method in ("PUT", "PATCH"):
            return await self._update(request, ns, res, name, current)
        return web.json_response(status_body(405, "MethodNotAllowed", "no"), status=405)

    def _not_found(self, res: str, name: str) -> web.Response:
        group = GROUPS[res][2]
        what = f"{res}.{group}" if group else res
        return web.json_response(
            status_body(404, "NotFound", f'{what} "{name}" not found', name, res), status=404
        )

    async def _create(self, request: web.Request, ns: str, res: str) -> web.Response:
        body = await request.json()
        name = (body.get("metadata") or {}).get("name")
        if not name:
            return web.json_response(
                status_body(422, "Invalid", "metadata.name: Required value"), status=422
            )
        if (ns, name) in self.objects[res]:
            group = GROUPS[res][2]
            what = f"{res}.{group}" if group else res
            return web.json_response(
                status_body(409, "AlreadyExists", f'{what} "{name}" already exists', name, res),
                status=409,
            )
        api_version, kind, _ = GROUPS[res]
        obj = {
            **body,
            "apiVersion": api_version,
            "kind": kind,
            "metadata": self._new_meta(body, ns),
        }
        if res == "services":
            obj["spec"] = {**obj.get("spec", {}), "clusterIP": "10.96.0.42"}
        if res == "statefulsets":
            obj["status"] = {"replicas": 0, "availableReplicas": 0}
        self._store(res, obj)
        if res == "statefulsets":
            self._reconcile(ns, name)
        return web.json_response(obj, status=201)

    async def _update(
        self, request: web.Request, ns: str, res: str, name: str, current: dict[str, Any]
    ) -> web.Response:
        body = await request.json()
        if request.method == "PATCH":
            ctype = request.headers.get("Content-Type", "")
            if "merge-patch" not in ctype:
                return web.json_response(
                    status_body(
                        415,
                        "UnsupportedMediaType",
                        f"the body of the request was in an unknown format: {ctype}",
                    ),
                    status=415,
                )
            updated = merge_patch(current, body)
        else:
            updated = {**body, "status": current.get("status")}
        meta = updated.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "namespace", "name"):
            meta[key] = current["metadata"][key]
        if res == "statefulsets":
            if updated["spec"].get("template") != current["spec"].get("template"):
                meta["generation"] = int(current["metadata"].get("generation") or 1) + 1
            for immutable in ("selector", "serviceName", "volumeClaimTemplates"):
                if updated["spec"].get(immutable) != current["spec"].get(immutable):
                    return web.json_response(
                        status_body(
                            422,
                            "Invalid",
                            "StatefulSet.apps is invalid: spec: "
                            "Forbidden: updates to statefulset spec for fields other "
                            "than 'replicas', 'ordinals', 'template', 'updateStrategy',"
                            " 'persistentVolumeClaimRetentionPolicy' and "
                            "'minReadySeconds' are forbidden",
                            name,
                            res,
                        ),
                        status=422,
                    )
        self._store(res, updated)
        if res == "statefulsets":
            self._reconcile(ns, name)
        return web.json_response(updated)

    def _delete(self, ns: str, res: str, name: str, current: dict[str, Any]) -> web.Response:
        if res == "pods":
            self._delete_pod(ns, name)
            return web.json_response(self.objects["pods"].get((ns, name), current))
        self._remove(res, ns, name)
        if res == "persistentvolumeclaims" and self.run_pods is not None:
            shutil.rmtree(self.run_pods / "pvc" / ns / name, ignore_errors=True)
        if res in ("services", "persistentvolumeclaims"):  # the API answers the object
            gone = copy.deepcopy(current)
            if res == "persistentvolumeclaims":
                gone["metadata"]["deletionTimestamp"] = _now()
                gone["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection"]
            return web.json_response(gone)
        if res == "statefulsets":
            pod = self.objects["pods"].get((ns, f"{name}-0"))
            if pod is not None:  # background propagation: its pod goes too (its PVC stays)
                pod["metadata"]["ownerReferences"] = []
                self._terminate_pod(ns, f"{name}-0")
        group = GROUPS[res][2]
        details: dict[str, Any] = {"name": name, "kind": res, "uid": current["metadata"]["uid"]}
        if group:
            details["group"] = group
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        )

    def _list(self, request: web.Request, ns: str, res: str) -> web.Response:
        selector = request.query.get("labelSelector", "")
        items = [
            o
            for (s, _n), o in sorted(self.objects[res].items())
            if s == ns and matches((o["metadata"].get("labels") or {}), selector)
        ]
        api_version, kind, _ = GROUPS[res]
        return web.json_response(
            {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self.rv)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, ns: str, res: str) -> web.StreamResponse:
        self.watch_requests += 1
        selector = request.query.get("labelSelector", "")
        since = request.query.get("resourceVersion")
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        def line(type_: str, obj: dict[str, Any]) -> bytes:
            return (json.dumps({"type": type_, "object": obj}) + "\n").encode()

        queue: asyncio.Queue[tuple[int, str, dict[str, Any]] | None] = asyncio.Queue()
        backlog: list[tuple[int, str, dict[str, Any]]] = []
        if since in (None, "", "0"):
            backlog = [
                (0, "ADDED", o) for (s, _n), o in sorted(self.objects[res].items()) if s == ns
            ]
        else:
            oldest = self.history[0][0] if self.history else self.rv + 1
            if int(since) < oldest - 1 and int(since) < self.rv:
                await resp.write(
                    line(
                        "ERROR",
                        status_body(
                            410, "Expired", f"too old resource version: {since} ({self.rv})"
                        ),
                    )
                )
                await resp.write_eof()
                return resp
            backlog = [e for e in self.history if e[0] > int(since)]
        self.watchers.add(queue)
        try:
            for _rv, type_, obj in backlog:
                if obj["metadata"]["namespace"] == ns and matches(
                    obj["metadata"].get("labels") or {}, selector
                ):
                    await resp.write(line(type_, obj))
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    entry = await asyncio.wait_for(queue.get(), timeout=left)
                except TimeoutError:
                    break
                if entry is None:
                    break
                _rv, type_, obj = entry
                if obj["metadata"]["namespace"] == ns and matches(
                    obj["metadata"].get("labels") or {}, selector
                ):
                    await resp.write(line(type_, obj))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.watchers.discard(queue)
        return resp

    def _log(self, request: web.Request, ns: str, name: str) -> web.Response:
        pod = self.objects["pods"].get((ns, name))
        if pod is None:
            return self._not_found("pods", name)
        container = request.query.get("container") or "bot"
        cs = pod["status"]["containerStatuses"][0]
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and not cs.get("restartCount"):
            return web.json_response(
                status_body(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{name}" is '
                    f"waiting to start: {waiting.get('message') or waiting['reason']}",
                ),
                status=400,
            )
        lines = self.logs.get(name, [])
        if self.run_pods is not None:
            path = self.run_pods / "logs" / f"{ns}_{name}.log"
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        tail = request.query.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        return web.Response(text="".join(f"{x}\n" for x in lines), content_type="text/plain")
