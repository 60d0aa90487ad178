"""The bot's environment (docs/internals.md, "Spawn environment")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(Exception):
    """A required environment variable is missing or invalid."""


@dataclass(slots=True, frozen=True)
class BotSettings:
    """Everything a bot reads from its environment.

    Attributes:
        instance_id: ``BOT_INSTANCE_ID`` (or ``WA_INSTANCE_ID``).
        kind: ``BOT_KIND`` or the channel's kind.
        internal_token: ``BOT_INTERNAL_TOKEN`` (or ``WA_INTERNAL_TOKEN``).
        orchestrator_url: ``ORCHESTRATOR_URL``.
        control_key: ``BOT_CONTROL_KEY``; empty disables the control API (every call → 403).
        data_dir: ``BOT_DATA_DIR`` (default ``data``).
        port: ``BOT_PORT``, else the config's ``webhook_port``.
        host: ``BOT_HOST`` (default ``127.0.0.1``; a reverse proxy or the orchestrator's
            ``/hooks`` ingress fronts the bot).
        log_level: ``BOT_LOG_LEVEL`` (default ``INFO``).
    """

    instance_id: str
    kind: str
    internal_token: str
    orchestrator_url: str
    control_key: str
    data_dir: Path
    port: int | None
    host: str
    log_level: str

    @classmethod
    def from_env(cls, kind: str, env: Mapping[str, str] | None = None) -> BotSettings:
        """Read settings from ``env`` (default ``os.environ``).

        Raises:
            SettingsError: instance id, token or orchestrator URL missing, or a bad port.
        """
        source = os.environ if env is None else env
        instance_id = source.get("BOT_INSTANCE_ID") or source.get("WA_INSTANCE_ID") or ""
        token = source.get("BOT_INTERNAL_TOKEN") or source.get("WA_INTERNAL_TOKEN") or ""
        url = source.get("ORCHESTRATOR_URL", "")
        missing = [
            name
            for name, value in (
                ("BOT_INSTANCE_ID", instance_id),
                ("BOT_INTERNAL_TOKEN", token),
                ("ORCHESTRATOR_URL", url),
            )
            if not value
        ]
        if missing:
            raise SettingsError(f"missing environment: {', '.join(missing)}")
        port_text = source.get("BOT_PORT", "").strip()
        try:
            port = int(port_text) if port_text else None
        except ValueError as exc:
            raise SettingsError(f"BOT_PORT is not a number: {port_text!r}") from exc
        return cls(
            instance_id=instance_id,
            kind=source.get("BOT_KIND") or kind,
            internal_token=token,
            orchestrator_url=url,
            control_key=source.get("BOT_CONTROL_KEY", ""),
            data_dir=Path(source.get("BOT_DATA_DIR") or "data"),
            port=port,
            host=source.get("BOT_HOST") or "127.0.0.1",
            log_level=source.get("BOT_LOG_LEVEL") or "INFO",
        )
