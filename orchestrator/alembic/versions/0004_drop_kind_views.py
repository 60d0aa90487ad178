"""Channels: the per-kind views go.

``whatsapp_instances``, ``sms_instances`` and ``telegram_instances`` (views over
``bot_instances`` created by 0001) named each shipped channel in the schema; a channel is now
declared once in its manifest (``shared.channels.registry``) and every bot, of any kind, is a
``bot_instances`` row. Only views are dropped: a seed-004 ``whatsapp_instances`` *table* was
renamed to ``whatsapp_instances_legacy`` by 0001 and is imported (then dropped) by
``scripts/migrate_whatsapp.py``; a table by one of these names is never touched here.
Downgrade recreates the views.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The kinds 0001 made a view for (fixed: later channels never had one).
KINDS = ("whatsapp", "sms", "telegram")


def upgrade() -> None:
    views = set(sa.inspect(op.get_bind()).get_view_names())
    for kind in KINDS:
        if f"{kind}_instances" in views:
            op.execute(f"DROP VIEW {kind}_instances")


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    taken = set(inspector.get_view_names()) | set(inspector.get_table_names())
    for kind in KINDS:
        if f"{kind}_instances" not in taken:
            op.execute(
                f"CREATE VIEW {kind}_instances AS "  # noqa: S608 - fixed identifiers
                f"SELECT * FROM bot_instances WHERE kind = '{kind}'"
            )
