"""Bring an orchestrator database (new, current, or from the seed-004 panel) to the current schema.

Idempotent: run it as often as you like. A legacy ``whatsapp_instances`` table from the original
panel is imported into ``bot_instances`` (secrets encrypted) and then dropped, so no secret stays
in clear; ``whatsapp_instances`` is then a view over ``bot_instances``.

Usage: ``python scripts/migrate_whatsapp.py`` (reads the same ``FLOTILLA_*`` settings as the
orchestrator).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import inspect, text  # noqa: E402 - after the path fix above
from sqlmodel import Session  # noqa: E402

from orchestrator import crud  # noqa: E402
from orchestrator.db import make_engine, migrate  # noqa: E402
from orchestrator.models import BotInstance  # noqa: E402
from orchestrator.schemas import CHANNEL_FIELDS, COMMON_DEFAULTS, SECRET_FIELDS  # noqa: E402
from orchestrator.security import SecretBox  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

LEGACY = "whatsapp_instances_legacy"


def import_legacy(settings: Settings) -> int:
    """Copy rows of the legacy table into ``bot_instances``; returns how many were added."""
    engine = make_engine(settings.database_url)
    if LEGACY not in inspect(engine).get_table_names():
        return 0
    box = SecretBox(settings.resolved_secret_key())
    added = 0
    with Session(engine) as session:
        rows = session.connection().execute(text(f"SELECT * FROM {LEGACY}")).mappings().all()  # noqa: S608
        known = set(COMMON_DEFAULTS) | set(CHANNEL_FIELDS["whatsapp"])
        for row in rows:
            data: dict[str, Any] = dict(row)
            instance_id = str(data.get("id") or crud.slugify(str(data.get("name") or "bot")))
            if session.get(BotInstance, instance_id) is not None:
                continue
            config = {**COMMON_DEFAULTS, **CHANNEL_FIELDS["whatsapp"]}
            config.update({k: v for k, v in data.items() if k in known and v is not None})
            secrets = {k: str(data[k]) for k in SECRET_FIELDS["whatsapp"] if data.get(k)}
            session.add(
                BotInstance(
                    id=instance_id,
                    kind="whatsapp",
                    name=str(data.get("name") or instance_id),
                    owner_id=data.get("owner_id"),
                    enabled=bool(data.get("enabled", True)),
                    auto_start=bool(data.get("auto_start", False)),
                    webhook_port=data.get("webhook_port"),
                    config=config,
                    secrets_enc=box.encrypt(secrets),
                )
            )
            added += 1
        session.commit()
        session.connection().execute(text(f"DROP TABLE {LEGACY}"))
        session.commit()
    engine.dispose()
    return added


def main() -> int:
    """Migrate, then import legacy rows."""
    settings = Settings()
    settings.ensure_dirs()
    migrate(settings.database_url)
    added = import_legacy(settings)
    print(f"schema is current; imported {added} legacy WhatsApp instance(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
