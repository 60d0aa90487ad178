"""deploy/: the Kustomize base renders and every object validates against the official schema
of a pinned Kubernetes version; its Role allows exactly what the spawner calls (recorded from
the API stand-in); the Dockerfile is linted (no image builder runs here)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sqlmodel import Session

from orchestrator.db import make_engine, migrate
from orchestrator.models import BotInstance
from orchestrator.supervisor.supervisor import Supervisor
from tests.conftest import make_settings
from tests.integration.test_k8s_spawner import K8S_VERSION
from tests.support.k8s_standin import KubeStandIn

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBECTL = shutil.which("kubectl")


def render(path: str) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(DEPLOY / path)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("path", ["base", "overlays/vllm"])
def test_the_kustomization_renders_and_every_object_validates(path: str) -> None:
    docs = render(path)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Ingress",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    # Nothing cluster-wide and no Secret (the operator creates flotilla-secrets).
    assert not {"ClusterRole", "ClusterRoleBinding", "Secret"} & set(kinds)
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "flotilla"


def test_the_orchestrator_deployment_probes_health_and_reads_its_secrets() -> None:
    docs = render("base")
    (deploy,) = by_kind(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    (binding,) = by_kind(docs, "RoleBinding")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": by_kind(docs, "Role")[0]["metadata"]["name"],
    }
    env = {e["name"]: e for e in container["env"]}
    for name in ("FLOTILLA_DATABASE_URL", "FLOTILLA_SECRET_KEY", "FLOTILLA_ADMIN_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "flotilla-secrets"
        assert "value" not in env[name]
    (config,) = by_kind(docs, "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert config["data"]["FLOTILLA_SPAWNER"] == "kubernetes"
    secretish = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL)$")
    assert not [k for k in config["data"] if secretish.search(k)]
    (service,) = by_kind(docs, "Service")
    (ingress,) = by_kind(docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    # Bots take requests from the orchestrator's pods only; the policy selects the labels
    # the spawner puts on every bot pod.
    from orchestrator.supervisor.kubernetes import bot_labels

    (policy,) = by_kind(docs, "NetworkPolicy")
    bot = bot_labels(make_settings(Path("/nonexistent"), "sqlite://"), "sms", "x")
    assert all(bot.get(k) == v for k, v in policy["spec"]["podSelector"]["matchLabels"].items())
    (source,) = policy["spec"]["ingress"][0]["from"]
    assert all(labels.get(k) == v for k, v in source["podSelector"]["matchLabels"].items())


def role_verbs(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    (role,) = by_kind(docs, "Role")
    return {
        (group, res, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for res in rule["resources"]
        for verb in rule["verbs"]
    }


async def test_the_role_allows_exactly_what_the_spawner_calls(
    tmp_path: Path, sqlite_url: str
) -> None:
    docs = render("base")
    standin = KubeStandIn().start()
    settings = make_settings(
        tmp_path,
        sqlite_url,
        spawner="kubernetes",
        k8s_api_url=standin.url,
        k8s_watch_timeout_s=2,
        graceful_timeout=1.0,
    )
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        session.add(BotInstance(id="rbac", kind="sms", name="rbac"))
        session.commit()
    sup = Supervisor(settings, engine)
    try:
        # Everything the supervisor does with a bot in a cluster.
        await sup.startup()
        await sup.start("rbac", "sms")
        for _ in range(100):
            if sup.status("rbac", "sms")["state"] == "running":
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(sup.tail, "sms", "rbac", 10)
        await sup.restart("rbac", "sms")
        await sup.stop("rbac", "sms")
        await sup.start("rbac", "sms")  # objects exist: create → 409 → update / patch
        await sup.forget("rbac")
        used = standin.verbs()
    finally:
        await sup.shutdown()
        standin.stop()
        engine.dispose()
    assert used == role_verbs(docs)


DOCKERFILE = DEPLOY / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    joined = re.sub(r"\\\n", " ", text)
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_the_dockerfile_is_pinned_non_root_checked_and_holds_no_secrets() -> None:
    text = DOCKERFILE.read_text()
    steps = instructions(text)
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    bases = [a.split()[0] for w, a in steps if w == "FROM"]
    assert bases
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        name, _, tag = image.partition(":")
        # A tag pinned to a patch version, never latest or a bare major.
        assert re.match(r"^\d+\.\d+\.\d+", tag), image
        assert name
    users = [a for w, a in steps if w == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    last_user = max(i for i, (w, _) in enumerate(steps) if w == "USER")
    assert all(w != "RUN" for w, _ in steps[last_user:])  # nothing runs as root after it
    assert any(w == "HEALTHCHECK" and "/health" in a for w, a in steps)
    assert ("CMD", '["flotilla", "serve"]') in steps
    # No secret baked in: no ENV/ARG named like one, no .env or key files copied.
    secretish = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL)\b", re.IGNORECASE)
    for word, arg in steps:
        if word in ("ENV", "ARG"):
            names = re.findall(r"(\w+)=", arg) or [arg.split()[0]]
            assert not [n for n in names if secretish.search(n)], arg
        if word in ("COPY", "ADD"):
            assert ".env" not in arg
            assert ".key" not in arg
            assert not arg.startswith(". ")  # never the whole context
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for must in (".venv", "data", "*.key", ".env*"):
        assert must in ignore


def test_the_dockerfile_copies_every_package_the_image_runs() -> None:
    """The packages pyproject installs are the ones the Dockerfile copies (a new package
    would otherwise be missing from the image)."""
    text = (REPO / "pyproject.toml").read_text()
    include = re.search(r"include = \[(.*?)\]", text)
    assert include is not None
    packages = {p.strip().strip('"').rstrip("*") for p in include.group(1).split(",")}
    copied = {a.split()[0] for w, a in instructions(DOCKERFILE.read_text()) if w == "COPY"}
    assert packages <= copied
