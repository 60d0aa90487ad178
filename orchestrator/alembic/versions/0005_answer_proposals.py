"""Owner answers → knowledge base: ``answer_proposals`` (issue 13 item 6).

A resolved handover's question and the manager's reply become a proposed Q/A pair for the
bot's knowledge base, accepted or dropped on the Desk.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answer_proposals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("bot_id", sa.String(64), nullable=False),
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.Column("customer_key", sa.String(200), nullable=False, server_default=""),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False, server_default="proposed"),
        sa.Column("kb_id", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("bot_id", "handover_id", name="uq_answer_proposals_bot_handover"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_answer_proposals_bot_id", "answer_proposals", ["bot_id"])


def downgrade() -> None:
    op.drop_index("ix_answer_proposals_bot_id", table_name="answer_proposals")
    op.drop_table("answer_proposals")
