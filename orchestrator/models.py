"""Orchestrator tables (SQLModel). Schema changes go through Alembic (``orchestrator/alembic``)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the store uses."""
    return datetime.now(UTC)


def _ts(index: bool = False) -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=index),
    )


def new_uid() -> str:
    """A user's immutable public id (random, never reused): what admin tokens name."""
    return uuid.uuid4().hex


def _no_id_reuse() -> dict[str, Any]:
    """Table options so integer keys are never handed out twice: ``AUTOINCREMENT`` on SQLite
    (a plain rowid key reuses the id of a deleted last row); PostgreSQL's sequences never go
    back."""
    return {"sqlite_autoincrement": True}


class User(SQLModel, table=True):
    """A person who signs in to the admin API/UI.

    Tokens name the user by ``uid`` (random, immutable) and carry ``token_version``; bumping
    the version (sign-out, password/role change, deactivation) revokes every token issued before.
    """

    __tablename__ = "users"
    __table_args__ = _no_id_reuse()

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(default_factory=new_uid, max_length=32, unique=True, index=True)
    username: str = Field(index=True, unique=True, max_length=64)
    password_hash: str
    role: str = Field(default="user", max_length=16)  # admin | user | guest
    active: bool = True
    token_version: int = 0
    created_at: datetime = _ts()


class BotInstance(SQLModel, table=True):
    """One bot of any kind. Channel, AI and access settings live in ``config`` (JSON);
    secrets live only in ``secrets_enc`` (Fernet-encrypted JSON)."""

    __tablename__ = "bot_instances"
    __table_args__ = (UniqueConstraint("webhook_port", name="uq_bot_instances_webhook_port"),)

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(index=True, max_length=16)  # whatsapp | sms | telegram
    name: str = Field(max_length=200)
    owner_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    enabled: bool = True
    auto_start: bool = False
    webhook_port: int | None = None
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secrets_enc: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    spawn_generation: int = 0
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class AuditLog(SQLModel, table=True):
    """Who did what, when, to which object."""

    __tablename__ = "audit_log"
    __table_args__ = _no_id_reuse()

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = _ts(index=True)
    actor_id: int | None = None
    actor: str = Field(default="system", max_length=64)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(default="", max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class KnowledgeBase(SQLModel, table=True):
    """A knowledge base: who owns it. Its documents and FAISS index live in
    ``{data_dir}/kb/{id}/`` (``orchestrator.ai.rag.store``)."""

    __tablename__ = "knowledge_bases"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    owner_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    created_at: datetime = _ts()


class LLMProvider(SQLModel, table=True):
    """An LLM provider an admin configured; bots name it as ``cloud:{id}``.
    The API key lives only in ``api_key_enc`` (Fernet-encrypted JSON)."""

    __tablename__ = "llm_providers"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)  # openai-compatible | gemini
    base_url: str = Field(default="", max_length=500)
    model: str = Field(default="", max_length=200)
    api_key_enc: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class TokenUsage(SQLModel, table=True):
    """Tokens one bot used on one UTC day (summed over its generations)."""

    __tablename__ = "ai_token_usage"
    __table_args__ = (
        UniqueConstraint("bot_id", "day", name="uq_ai_token_usage_bot_day"),
        _no_id_reuse(),
    )

    id: int | None = Field(default=None, primary_key=True)
    bot_id: str = Field(max_length=64, index=True)
    day: date
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class RetiredId(SQLModel, table=True):
    """An id a deleted bot (``kind="bot"``), knowledge base (``"kb"``) or LLM provider
    (``"provider"``) held: never given out again, so nobody inherits a deleted object's data,
    logs or references."""

    __tablename__ = "retired_ids"

    kind: str = Field(primary_key=True, max_length=16)
    id: str = Field(primary_key=True, max_length=64)
    retired_at: datetime = _ts()


class AnswerProposal(SQLModel, table=True):
    """A manager's answer to a handed-over question, proposed as a Q/A pair for the bot's
    knowledge base (issue 13 item 6): ``proposed`` until someone accepts (``add_qa``) or drops
    it. One per handover."""

    __tablename__ = "answer_proposals"
    __table_args__ = (
        UniqueConstraint("bot_id", "handover_id", name="uq_answer_proposals_bot_handover"),
        _no_id_reuse(),
    )

    id: int | None = Field(default=None, primary_key=True)
    bot_id: str = Field(max_length=64, index=True)
    handover_id: int
    customer_key: str = Field(default="", max_length=200)
    question: str = Field(sa_column=Column(Text, nullable=False))
    answer: str = Field(sa_column=Column(Text, nullable=False))
    answered_by: str = Field(default="", max_length=200)
    status: str = Field(default="proposed", max_length=16)  # proposed | accepted | dropped
    kb_id: str | None = Field(default=None, max_length=64)
    decided_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts()
    decided_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
