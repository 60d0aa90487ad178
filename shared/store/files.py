"""Where each bot keeps its SQLite file (one rule for the bots and the orchestrator's readers)."""

from __future__ import annotations

from shared.channels import registry

#: The file name of a kind the registry does not know (a plugin no longer loaded).
DEFAULT_PATTERN = "{kind}_bot_{id}.db"


def bot_db_filename(kind: str, instance_id: str) -> str:
    """The channel manifest's ``db_filename`` (``wa_sales_{id}.db`` for WhatsApp, seed 004's
    name; ``{kind}_bot_{id}.db`` otherwise), also for a kind no longer registered."""
    if registry.is_kind(kind):
        return registry.get(kind).bot_db_filename(instance_id)
    return DEFAULT_PATTERN.replace("{kind}", kind).replace("{id}", instance_id)
