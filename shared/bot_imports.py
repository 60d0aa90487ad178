"""Keep bot processes small: a bot must never load the orchestrator's heavy stacks.

Imported first by every ``{kind}_bot/__main__.py``. Entries set to ``None`` in ``sys.modules``
make a later ``import`` of that package fail at once, so an accidental heavy import shows up as
an error in the bot's log instead of 500 MB of RSS. ``cryptography`` is blocked because PyJWT
imports it when present, yet bots only use HS256, which PyJWT does with the standard library
(this alone saves about 9 MB per bot).
"""

from __future__ import annotations

import sys

BLOCKED = (
    "torch",
    "faiss",
    "sentence_transformers",
    "piper",
    "transformers",
    "cryptography",
    "fastapi",
    "sqlalchemy",
    "sqlmodel",
    "numpy",
)


def keep_bot_light() -> None:
    """Make the heavy packages unimportable in this process (if not already loaded)."""
    for name in BLOCKED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
