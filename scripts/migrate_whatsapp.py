"""Bring an orchestrator database (new, current, or from the seed-004 panel) to the current schema.

Idempotent: run it as often as you like. A legacy ``whatsapp_instances`` table from the original
panel is imported into ``bot_instances`` (secrets encrypted) and then dropped, so no secret stays
in clear. (Migration 0001 renames that table to ``whatsapp_instances_legacy``; the per-kind views
0001 also created are dropped by 0004: every bot is a ``bot_instances`` row.)

Every legacy row goes through the same instance schema as the admin API
(``orchestrator.schemas.InstanceFields``): the panel kept JSON and list fields as text
(``llm_params`` ``'{"temperature": 0.5}'``, ``allowed_phones`` ``'["+7 900 …"]'`` or
``"+7900…, +7901…"``) and booleans as 0/1; they are decoded, validated and normalised (phones in
E.164) exactly as an API client's values would be. A row that does not validate is not imported:
the script names the row and the field, keeps the legacy table (nothing is lost) and exits 1;
fix the row and run it again.

Usage: ``python scripts/migrate_whatsapp.py`` (reads the same ``FLOTILLA_*`` settings as the
orchestrator).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import ValidationError  # noqa: E402
from sqlalchemy import inspect, text  # noqa: E402 - after the path fix above
from sqlmodel import Session  # noqa: E402

from orchestrator import crud  # noqa: E402
from orchestrator.db import make_engine, migrate  # noqa: E402
from orchestrator.models import BotInstance  # noqa: E402
from orchestrator.schemas import (  # noqa: E402
    CHANNEL_FIELDS,
    COMMON_DEFAULTS,
    SECRET_FIELDS,
    InstanceFields,
)
from orchestrator.security import SecretBox  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from shared.funnel.templates import SALES_TEMPLATE, render_template  # noqa: E402

LEGACY = "whatsapp_instances_legacy"


#: Columns the instance row keeps itself (not in ``config``).
ROW_FIELDS = ("name", "webhook_port", "enabled", "auto_start", "owner_id")


class LegacyRowError(ValueError):
    """A legacy row whose values the instance schema refuses."""


def _decode_json(field: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise LegacyRowError(f"{field}: not JSON: {value[:80]!r}") from exc


def _decode_list(field: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text_value = value.strip()
    if text_value.startswith("["):
        return _decode_json(field, text_value)
    return [item.strip() for item in re.split(r"[,;\n]", text_value) if item.strip()]


def legacy_values(data: dict[str, Any]) -> dict[str, Any]:
    """Validate one legacy row through the instance schema and return its normalised values.

    Args:
        data: the row (column → value) as the seed-004 panel stored it.

    Returns:
        The fields the schema knows, validated and normalised, ``None`` values left out.

    Raises:
        LegacyRowError: a value the admin API would refuse (the message names the field).
    """
    known = InstanceFields.model_fields
    values: dict[str, Any] = {}
    for field, value in data.items():
        if field not in known or value is None:
            continue
        annotation = str(known[field].annotation)
        if field in ("llm_params", "funnel"):
            value = _decode_json(field, value)
        elif annotation.startswith("list[") or "list[" in annotation:
            value = _decode_list(field, value)
        if value is not None:
            values[field] = value
    try:
        model = InstanceFields.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise LegacyRowError(problems) from None
    out = model.model_dump(mode="json", exclude_none=True)
    for key in ("allowed_phones", "blocked_phones"):
        if key in out:
            # The same per-channel check and normalisation the admin API applies.
            try:
                out[key] = crud.access_list("whatsapp", key, list(out[key]))
            except crud.FieldError as exc:
                where = ".".join(str(p) for p in exc.loc[1:])
                raise LegacyRowError(f"{where}: {exc.msg}") from None
    return out


def import_legacy(settings: Settings) -> tuple[int, list[str]]:
    """Copy rows of the legacy table into ``bot_instances``.

    Returns:
        ``(added, errors)``: how many rows were added, and one message per row that did not
        validate. The legacy table is dropped only when every row is in ``bot_instances``.
    """
    engine = make_engine(settings.database_url)
    if LEGACY not in inspect(engine).get_table_names():
        return 0, []
    box = SecretBox(settings.resolved_secret_key())
    rules = crud.InstanceRules.from_settings(settings)
    added = 0
    errors: list[str] = []
    with Session(engine) as session:
        rows = session.connection().execute(text(f"SELECT * FROM {LEGACY}")).mappings().all()  # noqa: S608
        known = set(COMMON_DEFAULTS) | set(CHANNEL_FIELDS["whatsapp"])
        for row in rows:
            data: dict[str, Any] = dict(row)
            instance_id = str(data.get("id") or crud.slugify(str(data.get("name") or "bot")))
            if session.get(BotInstance, instance_id) is not None:
                continue
            try:
                values = legacy_values(data)
            except LegacyRowError as exc:
                errors.append(f"{LEGACY} row {instance_id!r}: {exc}")
                continue
            port = values.get("webhook_port")
            if port is not None and not rules.port_in_range(int(port)):
                # Bots listen only inside the bot port range: this one gets a port at start.
                print(
                    f"{LEGACY} row {instance_id!r}: port {port} is outside the bot port range; "
                    "a port is allocated when it starts",
                    file=sys.stderr,
                )
                values["webhook_port"] = None
            config = {**COMMON_DEFAULTS, **CHANNEL_FIELDS["whatsapp"]}
            config.update({k: v for k, v in values.items() if k in known})
            if config.get("funnel") is None:
                # Seed-004 bots ran the sales funnel as the default: they keep it, explicitly
                # (a new bot's default is the neutral "documents" template).
                config["funnel"] = render_template(SALES_TEMPLATE)
                config["template"] = SALES_TEMPLATE
            secrets = {k: str(values[k]) for k in SECRET_FIELDS["whatsapp"] if values.get(k)}
            session.add(
                BotInstance(
                    id=instance_id,
                    kind="whatsapp",
                    name=str(values.get("name") or instance_id),
                    owner_id=values.get("owner_id"),
                    enabled=bool(values.get("enabled", True)),
                    auto_start=bool(values.get("auto_start", False)),
                    webhook_port=values.get("webhook_port"),
                    config=config,
                    secrets_enc=box.encrypt(secrets),
                )
            )
            added += 1
        session.commit()
        if not errors:
            session.connection().execute(text(f"DROP TABLE {LEGACY}"))
            session.commit()
    engine.dispose()
    return added, errors


def main() -> int:
    """Migrate, then import legacy rows."""
    settings = Settings()
    settings.ensure_dirs()
    migrate(settings.database_url)
    added, errors = import_legacy(settings)
    print(f"schema is current; imported {added} legacy WhatsApp instance(s)")
    if errors:
        for error in errors:
            print(f"not imported: {error}", file=sys.stderr)
        print(
            f"{len(errors)} legacy row(s) kept in {LEGACY}; fix them and run this again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
