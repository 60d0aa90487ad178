"""JSON log lines for bot subprocesses.

Every line carries the bot id and, when one is active, the request id that travels from the
webhook through the inbox worker to the orchestrator (``X-Request-ID``). Code that knows a
provider message id passes it with ``extra={"provider_message_id": ...}``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "flotilla_request_id", default=None
)
_bot_id: str | None = None

# Attributes every LogRecord has; anything else was passed through ``extra``.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def new_request_id() -> str:
    """Return a fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """Return the request id of the current task, if any."""
    return request_id_var.get()


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` with timestamp, level, logger, bot id, request id and extras."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if _bot_id is not None:
            entry["bot_id"] = _bot_id
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key != "request_id" and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_json_logging(bot_id: str | None, level: int | str = logging.INFO) -> None:
    """Send every log record of the process to stdout as JSON lines.

    Args:
        bot_id: instance id added to every line.
        level: root log level.
    """
    global _bot_id
    _bot_id = bot_id
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log is one line per webhook call: too chatty at INFO for a fleet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
