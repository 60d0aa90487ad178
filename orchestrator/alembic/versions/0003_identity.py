"""Identity: ids are never reused.

Users get an immutable random ``uid`` (what admin tokens name) and a ``token_version``
(bumped to revoke every token issued before); integer keys become ``AUTOINCREMENT`` on SQLite
(tables recreated in batch mode; PostgreSQL's sequences never reuse a value already); ids of
deleted bots, knowledge bases and providers are kept in ``retired_ids``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

AUTOINCREMENT = {"sqlite_autoincrement": True}


def _recreate_sqlite(table: str) -> None:
    """Copy ``table`` into a new one declared ``AUTOINCREMENT`` (rows, ids and indexes kept)."""
    with op.batch_alter_table(table, recreate="always", table_kwargs=AUTOINCREMENT):
        pass


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        # Recreating ``users`` drops the old table; other tables' foreign keys name it by name
        # and stay valid. (A no-op inside a transaction, where the migration engine has foreign
        # keys off anyway.)
        op.execute("PRAGMA foreign_keys=OFF")

    op.add_column("users", sa.Column("uid", sa.String(32), nullable=True))
    op.add_column(
        "users",
        sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"),
    )
    users = sa.table("users", sa.column("id", sa.Integer()), sa.column("uid", sa.String()))
    for (user_id,) in bind.execute(sa.select(users.c.id)).all():
        bind.execute(users.update().where(users.c.id == user_id).values(uid=uuid.uuid4().hex))
    with op.batch_alter_table(
        "users",
        recreate="always" if sqlite else "auto",
        table_kwargs=AUTOINCREMENT if sqlite else {},
    ) as batch:
        batch.alter_column("uid", existing_type=sa.String(32), nullable=False)
        batch.create_index("ix_users_uid", ["uid"], unique=True)
    if sqlite:
        _recreate_sqlite("audit_log")
        _recreate_sqlite("ai_token_usage")

    op.create_table(
        "retired_ids",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retired_ids")
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_uid")
        batch.drop_column("token_version")
        batch.drop_column("uid")
