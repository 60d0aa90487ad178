"""Bots as Kubernetes workloads: per bot a StatefulSet (one replica) with a volume for its data
directory, a Service for its port and a Secret with its tokens (docs/scaling.md).

Start = ``replicas: 1``, stop = ``replicas: 0`` (the volume stays), restart = a rollout (a pod
template annotation changes), delete = every object including the volume. The bots' states come
from ONE watch on pods (a list, then a watch from its ``resourceVersion``, renewed from the last
event's; a 410 Gone re-lists), as JupyterHub's KubeSpawner reflector does. The official client
is synchronous: API calls run in threads, the watch in a thread of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from orchestrator.settings import Settings
from orchestrator.supervisor.errors import SupervisorError
from orchestrator.supervisor.spawner import ClusterSpawner, SpawnSpec
from shared.channels import registry

logger = logging.getLogger(__name__)

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_KIND = "flotilla.dev/kind"
LABEL_BOT = "flotilla.dev/bot"
LABEL_BOT_ID = "flotilla.dev/bot-id"
LABEL_ORG = "flotilla.dev/organization"
ANN_BOT_ID = "flotilla.dev/bot-id"
ANN_GEN = "flotilla.dev/gen"
ANN_PORT = "flotilla.dev/port"
ANN_RESTARTED = "flotilla.dev/restarted-at"
#: Every pod the spawner watches carries this label (the watch's label selector).
SELECTOR = f"{MANAGED_BY}=flotilla,app.kubernetes.io/component=bot"
CONTAINER = "bot"
DATA_DIR = "/data"
MERGE_PATCH = "application/merge-patch+json"
#: Env names whose values go into the bot's Secret, never into the pod spec.
_SECRET_ENV = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
#: Container waiting reasons that mean the bot cannot run until someone acts.
_FAILED_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def object_name(kind: str, instance_id: str) -> str:
    """The DNS-1123 name of the bot's objects: readable and unique (a hash of kind and id);
    at most 47 characters, so the pod (``-0``) and its revision label stay under 63."""
    digest = hashlib.sha256(f"{kind}:{instance_id}".encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", instance_id.lower()).strip("-")[:24].strip("-")
    kind_slug = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")[:10] or "bot"
    return "-".join(p for p in ("bot", kind_slug, slug, digest) if p)


def label_value(value: str) -> str:
    """``value`` when it is a valid label value, else its hash (ids may be longer than 63)."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:40]


def bot_labels(settings: Settings, kind: str, instance_id: str) -> dict[str, str]:
    """kind, bot id and organization, and the labels the watch selects on."""
    return {
        "app.kubernetes.io/name": "flotilla",
        "app.kubernetes.io/component": "bot",
        MANAGED_BY: "flotilla",
        LABEL_KIND: label_value(kind),
        LABEL_BOT: object_name(kind, instance_id),
        LABEL_BOT_ID: label_value(instance_id),
        LABEL_ORG: label_value(settings.k8s_organization),
    }


def pod_env(settings: Settings, spec: SpawnSpec) -> tuple[dict[str, str], dict[str, str]]:
    """The bot's environment in a pod, split in (plain, secret): its data directory is the
    volume, it listens on every interface of the pod and calls the orchestrator's Service."""
    env = dict(spec.env)
    env["BOT_DATA_DIR"] = DATA_DIR
    env["BOT_HOST"] = "0.0.0.0"  # noqa: S104 - inside its own pod; the Service fronts it
    env["ORCHESTRATOR_URL"] = settings.k8s_orchestrator_url or settings.orchestrator_url
    env["PYTHONUNBUFFERED"] = "1"
    plugins = registry.PLUGINS_ENV
    if os.environ.get(plugins):
        env[plugins] = os.environ[plugins]
    secret = {k: v for k, v in env.items() if _SECRET_ENV.search(k)}
    plain = {k: v for k, v in env.items() if k not in secret}
    return plain, secret


def build_manifests(
    settings: Settings, spec: SpawnSpec, port: int, gen: int, replicas: int = 1
) -> dict[str, dict[str, Any]]:
    """The bot's Secret, Service and StatefulSet (with its volume claim template)."""
    name = object_name(spec.kind, spec.instance_id)
    ns = settings.k8s_namespace
    labels = bot_labels(settings, spec.kind, spec.instance_id)
    selector = {LABEL_BOT: name, "app.kubernetes.io/component": "bot"}
    plain, secret = pod_env(settings, spec)
    annotations = {ANN_BOT_ID: spec.instance_id, ANN_GEN: str(gen), ANN_PORT: str(port)}
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": name, "key": k}}}
        for k in sorted(secret)
    ]
    command = spec.argv or ["python", "-m", registry.get(spec.kind).module]
    volume_claim: dict[str, Any] = {
        "metadata": {"name": "data", "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": settings.k8s_storage_size}},
        },
    }
    if settings.k8s_storage_class:
        volume_claim["spec"]["storageClassName"] = settings.k8s_storage_class
    meta = {"name": name, "namespace": ns, "labels": labels, "annotations": annotations}
    return {
        "secret": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(secret.items())},
        },
        "service": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                # One port serves the channel's webhook routes and /control/* (shared.botkit).
                "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        "statefulset": {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "terminationGracePeriodSeconds": max(
                            1, math.ceil(settings.graceful_timeout)
                        ),
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "runAsGroup": 10001,
                            "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": CONTAINER,
                                "image": settings.k8s_image,
                                "imagePullPolicy": settings.k8s_image_pull_policy,
                                "command": command,
                                "env": env,
                                "ports": [
                                    {"name": "http", "containerPort": port, "protocol": "TCP"}
                                ],
                                "readinessProbe": {
                                    "tcpSocket": {"port": "http"},
                                    "periodSeconds": 5,
                                },
                                "livenessProbe": {
                                    "tcpSocket": {"port": "http"},
                                    "initialDelaySeconds": 30,
                                    "periodSeconds": 20,
                                },
                                "resources": {
                                    "requests": {
                                        "cpu": settings.k8s_cpu_request,
                                        "memory": settings.k8s_memory_request,
                                    },
                                    "limits": {
                                        "cpu": settings.k8s_cpu_limit,
                                        "memory": settings.k8s_memory_limit,
                                    },
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {"name": "data", "mountPath": DATA_DIR},
                                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
                                ],
                            }
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
                "volumeClaimTemplates": [volume_claim],
            },
        },
    }


def pvc_name(kind: str, instance_id: str) -> str:
    """The volume claim the StatefulSet controller makes for the bot's only pod."""
    return f"data-{object_name(kind, instance_id)}-0"


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_view(pod: dict[str, Any]) -> dict[str, Any]:
    """A pod's state in the supervisor's vocabulary (``starting``, ``running``, ``stopping``,
    ``crashed`` with the reason) with its restarts, name, node and last exit code."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    cs = next((c for c in statuses if c.get("name") == CONTAINER), statuses[0] if statuses else {})
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    view: dict[str, Any] = {
        "pod": meta.get("name"),
        "uid": meta.get("uid"),
        "node": spec.get("nodeName"),
        "restarts": int(cs.get("restartCount") or 0),
        "last_exit_code": last.get("exitCode", terminated.get("exitCode")),
        "started_at": _ts((state.get("running") or {}).get("startedAt")),
        "reason": None,
        "gen": (meta.get("annotations") or {}).get(ANN_GEN),
    }
    if meta.get("deletionTimestamp"):
        view["state"] = "stopping"
    elif waiting.get("reason") in _FAILED_WAITING:
        message = waiting.get("message") or ""
        view["state"] = "crashed"
        view["reason"] = f"{waiting['reason']}: {message}".strip(": ")[:500]
    elif status.get("phase") == "Failed" or (terminated and not ready):
        view["state"] = "crashed"
        detail = terminated.get("reason") or status.get("reason") or "Failed"
        view["reason"] = f"{detail}: {terminated.get('message') or status.get('message') or ''}"
        view["reason"] = view["reason"].strip(": ")[:500]
    elif status.get("phase") == "Running" and ready:
        view["state"] = "running"
    else:
        view["state"] = "starting"
        reason = waiting.get("reason") or status.get("reason")
        view["reason"] = reason or None
    return view


class RawWatch(watch.Watch):
    """A watch that hands over each event's JSON as it came (``raw_object``) without building
    the client's pydantic models: cheaper, and an API server's newer fields never fail it."""

    def get_return_type(self, func: Any) -> Any:
        return None


def _api_error(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


class KubernetesSpawner(ClusterSpawner):
    """One StatefulSet per bot, states from one pod watch, logs from the pod log API."""

    def __init__(self, settings: Settings, api_client: client.ApiClient | None = None) -> None:
        self.settings = settings
        self.ns = settings.k8s_namespace
        self.api = api_client or self._make_client(settings)
        # Typed ``Any``: the client's models are pydantic; we send and read plain manifests.
        self.core: Any = client.CoreV1Api(self.api)
        self.apps: Any = client.AppsV1Api(self.api)
        #: instance id → the pod the watch last saw (raw JSON), and its kind.
        self.pods: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, str] = {}
        #: instance id → replicas we asked for (None: no StatefulSet known).
        self.replicas: dict[str, int] = {}
        #: instance id → pods replaced while it should have run (a killed or evicted pod);
        #: with the containers' restart counts these are the bot's restarts.
        self.replaced: dict[str, int] = {}
        self._expect_new_pod: set[str] = set()
        self._last_uid: dict[str, str] = {}
        self.resource_version: str | None = None
        self.relists = 0
        self.events = 0
        self._on_change: Callable[[str, str], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: RawWatch | None = None
        self._synced = threading.Event()

    @staticmethod
    def _make_client(settings: Settings) -> client.ApiClient:
        cfg = client.Configuration()
        if settings.k8s_api_url:
            cfg.host = settings.k8s_api_url.rstrip("/")
        else:
            try:
                config.load_incluster_config(client_configuration=cfg)
            except ConfigException:
                config.load_kube_config(client_configuration=cfg)
        return client.ApiClient(cfg)

    # ------------------------------------------------------------ watch

    async def startup(self, on_change: Callable[[str, str], None]) -> dict[str, dict[str, Any]]:
        self._on_change = on_change
        self._loop = asyncio.get_running_loop()
        sets = await asyncio.to_thread(self._list_statefulsets)
        await asyncio.to_thread(self._relist)
        self._thread = threading.Thread(
            target=self._watch_forever, name="k8s-pod-watch", daemon=True
        )
        self._thread.start()
        known: dict[str, dict[str, Any]] = {}
        for sts in sets:
            meta = sts.get("metadata") or {}
            ann = meta.get("annotations") or {}
            instance_id = ann.get(ANN_BOT_ID)
            kind = (meta.get("labels") or {}).get(LABEL_KIND)
            if not instance_id or not kind:
                continue
            self.kinds[instance_id] = kind
            self.replicas[instance_id] = int((sts.get("spec") or {}).get("replicas") or 0)
            known[instance_id] = {
                "kind": kind,
                "replicas": self.replicas[instance_id],
                "gen": int(ann.get(ANN_GEN) or 0),
                "port": int(ann.get(ANN_PORT) or 0) or None,
            }
        return known

    async def shutdown(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)
        await asyncio.to_thread(self.api.close)

    def _list_statefulsets(self) -> list[dict[str, Any]]:
        res = self.apps.list_namespaced_stateful_set(
            self.ns, label_selector=SELECTOR, _preload_content=False
        )
        return list(json.loads(res.data).get("items") or [])

    def _relist(self) -> None:
        """List the pods and replace what we know (pods gone meanwhile count as deleted)."""
        res = self.core.list_namespaced_pod(
            self.ns, label_selector=SELECTOR, _preload_content=False
        )
        data = json.loads(res.data)
        seen: dict[str, dict[str, Any]] = {}
        for pod in data.get("items") or []:
            instance_id = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANN_BOT_ID)
            if instance_id:
                seen[instance_id] = pod
        for instance_id in set(self.pods) - set(seen):
            self._deliver("DELETED", instance_id, self.pods[instance_id])
        for instance_id, pod in seen.items():
            self._deliver("MODIFIED", instance_id, pod)
        self.resource_version = (data.get("metadata") or {}).get("resourceVersion")
        self._synced.set()

    def _watch_forever(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch = RawWatch()
                for event in self._watch.stream(
                    self.core.list_namespaced_pod,
                    self.ns,
                    label_selector=SELECTOR,
                    resource_version=self.resource_version,
                    timeout_seconds=self.settings.k8s_watch_timeout_s,
                    allow_watch_bookmarks=True,
                ):
                    if self._stop.is_set():
                        break
                    self._event(event["type"], event["raw_object"])
                delay = 0.5
            except ApiException as exc:
                if exc.status == 410:  # our resourceVersion is too old: list again
                    self.relists += 1
                    self.resource_version = None
                    continue
                logger.warning(
                    "pod watch failed", extra={"status": exc.status, "reason": str(exc.reason)}
                )
            except Exception as exc:  # the API server restarting, a dropped connection
                if self._stop.is_set():
                    return
                logger.warning("pod watch interrupted: %s", repr(exc)[:300])
            else:
                continue
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def _event(self, type_: str, obj: dict[str, Any]) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if type_ == "BOOKMARK":
            return
        instance_id = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANN_BOT_ID)
        if instance_id:
            self._deliver(type_, instance_id, obj)

    def _deliver(self, type_: str, instance_id: str, pod: dict[str, Any]) -> None:
        self.events += 1
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: we are shutting down
            self._loop.call_soon_threadsafe(self._apply, type_, instance_id, pod)

    def _apply(self, type_: str, instance_id: str, pod: dict[str, Any]) -> None:
        """On the event loop: remember the pod, count replacements, tell the supervisor."""
        kind = (pod.get("metadata") or {}).get("labels", {}).get(LABEL_KIND)
        if kind:
            self.kinds.setdefault(instance_id, kind)
        if type_ == "DELETED":
            if not self.replicas.get(instance_id):  # stopped or deleted: no replacement
                self._last_uid.pop(instance_id, None)
            current = self.pods.get(instance_id)
            if current is not None and current["metadata"].get("uid") == pod["metadata"].get(
                "uid"
            ):
                del self.pods[instance_id]
        else:
            uid = pod["metadata"].get("uid")
            previous = self._last_uid.get(instance_id)
            if previous is not None and uid != previous:
                if instance_id in self._expect_new_pod:
                    self._expect_new_pod.discard(instance_id)
                elif self.replicas.get(instance_id, 0) > 0:
                    self.replaced[instance_id] = self.replaced.get(instance_id, 0) + 1
            if uid:
                self._last_uid[instance_id] = uid
            self.pods[instance_id] = pod
        if self._on_change is not None and instance_id in self.kinds:
            self._on_change(instance_id, self.kinds[instance_id])

    def view(self, instance_id: str) -> dict[str, Any] | None:
        replicas = self.replicas.get(instance_id)
        pod = self.pods.get(instance_id)
        if pod is None:
            if replicas is None:
                return None
            state = "starting" if replicas > 0 else "stopped"
            return {
                "state": state,
                "reason": None,
                "restarts": self.replaced.get(instance_id, 0),
                "pod": None,
                "node": None,
                "last_exit_code": None,
                "started_at": None,
                "replicas": replicas,
            }
        out = pod_view(pod)
        out["restarts"] += self.replaced.get(instance_id, 0)
        out["replicas"] = replicas or 0
        if not replicas and out["state"] != "crashed":
            out["state"] = "stopping"
        return out

    # ------------------------------------------------------------ objects

    def _create_or_update(self, manifests: dict[str, dict[str, Any]]) -> None:
        name = manifests["statefulset"]["metadata"]["name"]
        secret = manifests["secret"]
        try:
            self.core.create_namespaced_secret(self.ns, secret)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, self.ns, secret)
        service = manifests["service"]
        try:
            self.core.create_namespaced_service(self.ns, service)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.patch_namespaced_service(
                name,
                self.ns,
                {"spec": {"ports": service["spec"]["ports"]}},
                _content_type=MERGE_PATCH,
            )
        sts = manifests["statefulset"]
        try:
            self.apps.create_namespaced_stateful_set(self.ns, sts)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # selector, serviceName and volumeClaimTemplates cannot change: patch the rest.
            self.apps.patch_namespaced_stateful_set(
                name,
                self.ns,
                {
                    "metadata": {"annotations": sts["metadata"]["annotations"]},
                    "spec": {
                        "replicas": sts["spec"]["replicas"],
                        "template": sts["spec"]["template"],
                    },
                },
                _content_type=MERGE_PATCH,
            )

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            status = 404 if exc.status == 404 else 502
            raise SupervisorError(status, f"Kubernetes API: {_api_error(exc)}") from exc
        except Exception as exc:  # unreachable API server
            message = f"Kubernetes API unreachable: {type(exc).__name__}"
            raise SupervisorError(503, message) from exc

    async def apply(self, spec: SpawnSpec, port: int, gen: int) -> None:
        self.kinds[spec.instance_id] = spec.kind
        manifests = build_manifests(self.settings, spec, port, gen, replicas=1)
        previous = self.replicas.get(spec.instance_id)
        self.replicas[spec.instance_id] = 1
        if spec.instance_id in self.pods:
            self._expect_new_pod.add(spec.instance_id)  # the template changes: a new pod
        try:
            await self._call(self._create_or_update, manifests)
        except SupervisorError:
            if previous is None:
                self.replicas.pop(spec.instance_id, None)
            else:
                self.replicas[spec.instance_id] = previous
            raise

    async def refresh_secret(self, spec: SpawnSpec) -> None:
        port = int(spec.env.get("BOT_PORT") or 0)
        gen = 0  # the Secret holds no generation; only the template does
        secret = build_manifests(self.settings, spec, port, gen)["secret"]
        await self._call(
            self.core.replace_namespaced_secret, secret["metadata"]["name"], self.ns, secret
        )

    async def scale_down(self, kind: str, instance_id: str) -> None:
        self.replicas[instance_id] = 0
        try:
            await self._call(
                self.apps.patch_namespaced_stateful_set,
                object_name(kind, instance_id),
                self.ns,
                {"spec": {"replicas": 0}},
                _content_type=MERGE_PATCH,
            )
        except SupervisorError as exc:
            if exc.status != 404:  # deleted by hand: nothing runs, as asked
                raise
            self.replicas.pop(instance_id, None)

    async def rollout(self, spec: SpawnSpec, port: int, gen: int) -> None:
        """New tokens in the Secret and a new template annotation: the controller replaces the
        pod (``kubectl rollout restart`` does the same)."""
        self._expect_new_pod.add(spec.instance_id)
        manifests = build_manifests(self.settings, spec, port, gen, replicas=1)
        template = manifests["statefulset"]["spec"]["template"]
        template["metadata"]["annotations"][ANN_RESTARTED] = datetime.now(UTC).isoformat()
        await self.apply_manifests(spec.instance_id, spec.kind, manifests)

    async def apply_manifests(
        self, instance_id: str, kind: str, manifests: dict[str, dict[str, Any]]
    ) -> None:
        self.kinds[instance_id] = kind
        self.replicas[instance_id] = int(manifests["statefulset"]["spec"]["replicas"])
        await self._call(self._create_or_update, manifests)

    def _delete_all(self, kind: str, instance_id: str) -> None:
        name = object_name(kind, instance_id)
        for fn, target in (
            (self.apps.delete_namespaced_stateful_set, name),
            (self.core.delete_namespaced_service, name),
            (self.core.delete_namespaced_secret, name),
            (self.core.delete_namespaced_persistent_volume_claim, pvc_name(kind, instance_id)),
        ):
            try:
                fn(target, self.ns, propagation_policy="Background", _preload_content=False)
            except ApiException as exc:
                if exc.status != 404:  # already gone (deleted by hand) is what we want
                    raise

    async def delete(self, kind: str, instance_id: str) -> None:
        self.replicas.pop(instance_id, None)
        await self._call(self._delete_all, kind, instance_id)
        self.replaced.pop(instance_id, None)

    # ------------------------------------------------------------ reaching the bot

    def bot_host(self, kind: str, instance_id: str) -> str:
        return f"{object_name(kind, instance_id)}.{self.ns}.{self.settings.k8s_service_domain}"

    def logs(self, kind: str, instance_id: str, lines: int) -> list[str]:
        pod = self.pods.get(instance_id)
        name = (pod or {}).get("metadata", {}).get("name") or f"{object_name(kind, instance_id)}-0"
        try:
            res = self.core.read_namespaced_pod_log(
                name, self.ns, container=CONTAINER, tail_lines=lines, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return []
            return [f"(no log from pod {name}: {_api_error(exc)})"]
        except Exception as exc:
            return [f"(Kubernetes API unreachable: {type(exc).__name__})"]
        text = res.data.decode("utf-8", "replace")
        return text.splitlines()[-lines:]

    def wait_synced(self, timeout: float = 5.0) -> bool:
        """Whether the first list finished (tests, benches)."""
        return self._synced.wait(timeout)

    def stats(self) -> dict[str, Any]:
        """Watch counters (benches, docs/scaling.md)."""
        return {
            "events": self.events,
            "relists": self.relists,
            "pods": len(self.pods),
            "resource_version": self.resource_version,
            "at": time.time(),
        }
