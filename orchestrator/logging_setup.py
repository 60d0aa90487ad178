"""The orchestrator's logging: the fleet's one JSON line format (:mod:`shared.logging`) on stderr,
with a request id that travels webhook → bot → orchestrator."""

from __future__ import annotations

import logging
import sys

from shared.logging import JsonFormatter


def configure_logging(level: str = "INFO") -> None:
    """Send every logger (uvicorn's too) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
