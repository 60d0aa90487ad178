"""Where each bot keeps its SQLite file (one rule for the bots and the orchestrator's readers)."""

from __future__ import annotations


def bot_db_filename(kind: str, instance_id: str) -> str:
    """``wa_sales_{id}.db`` for WhatsApp (seed 004's name), ``{kind}_bot_{id}.db`` otherwise."""
    if kind == "whatsapp":
        return f"wa_sales_{instance_id}.db"
    return f"{kind}_bot_{instance_id}.db"
