"""Orchestrator settings, read from ``FLOTILLA_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator.ai.config import AISettings
from orchestrator.security import PasswordPolicy


class Settings(BaseSettings):
    """Everything the orchestrator can be told; one instance is built in ``create_app()``."""

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_", extra="ignore")

    data_dir: Path = Path("./data")
    logs_dir: Path = Path("./logs")
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("FLOTILLA_DATABASE_URL", "DATABASE_URL"),
    )
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""
    public_url: str = ""
    admin_password: str = ""
    access_token_minutes: int = 12 * 60
    internal_token_minutes: int = 60
    #: Failed sign-ins one client address may make per minute (over all usernames).
    login_attempts_per_minute: int = 10
    #: Failed sign-ins for one username from one address before backoff starts; each further
    #: failure doubles the wait (from ``login_backoff_base_s`` up to ``login_backoff_max_s``).
    login_free_failures: int = 5
    login_backoff_base_s: float = 2.0
    login_backoff_max_s: float = 900.0
    #: Failures for one username from all addresses together in an hour before that username
    #: is refused everywhere (logged; high, so only a distributed attack reaches it).
    login_user_failures_per_hour: int = 500
    #: Password policy: length, and zxcvbn strength score 0-4.
    password_min_length: int = 10
    password_min_score: int = 3
    # Request limits (orchestrator/api/limits.py): one body limit for every route, bigger only
    # for knowledge-base uploads/imports (ai.max_*_bytes, admin token checked first) and /hooks.
    max_body_bytes: int = 1024 * 1024
    hooks_max_body_bytes: int = 3 * 1024 * 1024
    body_idle_timeout_s: float = 15.0
    body_total_timeout_s: float = 600.0
    header_timeout_s: float = 10.0
    keep_alive_timeout_s: int = 5
    #: On SIGTERM, open requests get this long; then they are cancelled and the shutdown hooks
    #: run (a knowledge-base build stops at its next batch), so no request holds a shutdown.
    shutdown_timeout_s: float = 10.0
    #: ``/metrics`` wants ``Authorization: Bearer <this>``; empty → an admin's token.
    metrics_token: str = ""
    port_range_start: int = 8100
    port_range_end: int = 8999
    # /hooks ingress (hooks_max_body_bytes above, the bots' own 413 limit): how long one
    # forwarded request may take (total, and to connect to the bot).
    hooks_timeout_s: float = 30.0
    hooks_connect_timeout_s: float = 5.0
    # Provider base URLs a bot may use besides the official hosts (comma-separated URL prefixes
    # such as ``https://proxy.example.com/graph``, or hosts such as ``proxy.example.com:8443``).
    # With FLOTILLA_SANDBOX on, the sandbox's own URL is allowed as well.
    allowed_provider_urls: Annotated[list[str], NoDecode] = []
    # Supervisor (circus vocabulary).
    graceful_timeout: float = 5.0
    respawn_min_delay: float = 1.0
    respawn_max_delay: float = 60.0
    flapping_attempts: int = 5
    flapping_window: float = 60.0
    ready_timeout: float = 20.0
    bot_host: str = "127.0.0.1"
    #: Test hook: instance id -> argv to run instead of ``python -m {kind}_bot``.
    bot_command_override: dict[str, list[str]] = {}
    log_max_bytes: int = 5 * 1024 * 1024
    log_backups: int = 3
    auto_start_bots: bool = True
    #: Where bots run: ``local`` (a process each, on this machine) or ``kubernetes`` (a
    #: StatefulSet each; orchestrator/supervisor/kubernetes.py, docs/scaling.md).
    spawner: Literal["local", "kubernetes"] = "local"
    #: Kubernetes API base URL; empty → the pod's service account (in cluster), else kubeconfig.
    k8s_api_url: str = ""
    k8s_namespace: str = "flotilla"
    k8s_image: str = "ghcr.io/flotilla/flotilla:0.1.0"
    k8s_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    k8s_cpu_request: str = "50m"
    k8s_cpu_limit: str = "1"
    k8s_memory_request: str = "128Mi"
    k8s_memory_limit: str = "512Mi"
    k8s_storage_size: str = "1Gi"
    #: Storage class of the bots' volumes; empty → the cluster's default.
    k8s_storage_class: str = ""
    #: How bots reach the orchestrator (its Service); empty → ``orchestrator_url``.
    k8s_orchestrator_url: str = ""
    #: Bots are reached at ``{service}.{namespace}.{k8s_service_domain}``.
    k8s_service_domain: str = "svc"
    #: The ``flotilla.dev/organization`` label on every bot object (empty: one organization).
    k8s_organization: str = ""
    #: One pod watch request lasts this long before it is renewed (from its resourceVersion).
    k8s_watch_timeout_s: int = 240
    #: How often a follower replica tries to become the leader, and the leader checks it
    #: still is (orchestrator/supervisor/leader.py; PostgreSQL only).
    leader_poll_s: float = 1.0
    # Sandbox providers for trying Flotilla with no provider account.
    sandbox: bool = False
    sandbox_port: int = 8090
    demo_bot: bool = False
    #: AI backends, declared once in orchestrator/ai/config.py ``AISettings`` and read from
    #: its own ``FLOTILLA_AI_*`` variables (docs/ai.md). ``Settings(ai_<name>=...)`` sets one.
    ai: AISettings = Field(default_factory=AISettings)

    @model_validator(mode="before")
    @classmethod
    def _nest_ai_settings(cls, data: Any) -> Any:
        """``ai_<name>=`` keywords (tests, callers) go to the nested :class:`AISettings`."""
        if not isinstance(data, dict):
            return data
        ai = {k[3:]: v for k, v in data.items() if k.startswith("ai_")}
        if not ai:
            return data
        rest = {k: v for k, v in data.items() if not k.startswith("ai_")}
        if "ai" in rest:
            raise ValueError("pass either ai=AISettings(...) or ai_<name>= keywords, not both")
        return {**rest, "ai": AISettings(**ai)}

    @field_validator("allowed_provider_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'orchestrator.db'}"
        return self

    @property
    def orchestrator_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104 - compare only
        return f"http://{host}:{self.port}"

    def provider_url_allowlist(self) -> list[str]:
        """Provider base URLs allowed besides the official ones (the sandbox's when it runs)."""
        allowed = list(self.allowed_provider_urls)
        if self.sandbox:
            allowed.append(f"http://127.0.0.1:{self.sandbox_port}")
        return allowed

    def ai_settings(self) -> AISettings:
        """The AI backends' settings, with the orchestrator's ``data_dir``."""
        return self.ai.model_copy(update={"data_dir": self.data_dir})

    def password_policy(self) -> PasswordPolicy:
        """The password policy from ``password_min_length`` and ``password_min_score``."""
        return PasswordPolicy(
            min_length=self.password_min_length, min_score=self.password_min_score
        )

    def ensure_dirs(self) -> None:
        """Create the data and logs directories."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    def resolved_secret_key(self) -> str:
        """``FLOTILLA_SECRET_KEY``, else the key in ``<data dir>/secret.key`` (made once, 0600)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if path.exists():
            self.secret_key = path.read_text().strip()
            return self.secret_key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            self.secret_key = path.read_text().strip()
            return self.secret_key
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        self.secret_key = key
        return key
