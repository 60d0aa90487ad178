"""Per-bot SQLite storage (see :mod:`shared.store.sqlite`)."""

from shared.store.files import bot_db_filename
from shared.store.sqlite import (
    STATUS_RANK,
    BotStore,
    InboxRow,
    OutboxRow,
    User,
    inbound_from_json,
    inbound_to_json,
    iso,
    parse_iso,
    utcnow,
)

__all__ = [
    "STATUS_RANK",
    "BotStore",
    "InboxRow",
    "OutboxRow",
    "User",
    "bot_db_filename",
    "inbound_from_json",
    "inbound_to_json",
    "iso",
    "parse_iso",
    "utcnow",
]
