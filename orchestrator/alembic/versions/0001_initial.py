"""Initial schema: users, bot instances (with per-kind views), audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KINDS = ("whatsapp", "sms", "telegram")


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    legacy_wa = "whatsapp_instances" in existing
    if legacy_wa:
        # A database from the original seed-004 panel: keep its table aside; rows are imported
        # by scripts/migrate_whatsapp.py.
        op.rename_table("whatsapp_instances", "whatsapp_instances_legacy")

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_users_username", "users", ["username"], unique=True)
    op.create_table(
        "bot_instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("auto_start", sa.Boolean(), nullable=False),
        sa.Column("webhook_port", sa.Integer(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secrets_enc", sa.Text(), nullable=False),
        sa.Column("spawn_generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("webhook_port", name="uq_bot_instances_webhook_port"),
    )
    op.create_index("ix_bot_instances_kind", "bot_instances", ["kind"])
    op.create_index("ix_bot_instances_owner_id", "bot_instances", ["owner_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    for kind in KINDS:
        op.execute(
            f"CREATE VIEW {kind}_instances AS "  # noqa: S608 - fixed identifiers
            f"SELECT * FROM bot_instances WHERE kind = '{kind}'"
        )


def downgrade() -> None:
    for kind in KINDS:
        op.execute(f"DROP VIEW IF EXISTS {kind}_instances")
    op.drop_table("audit_log")
    op.drop_table("bot_instances")
    op.drop_table("users")
