"""``python -m tests.support.webchat``: one webchat bot process (shared.botkit.runtime)."""

from shared.bot_imports import keep_bot_light

keep_bot_light()

from shared.botkit import run_bot  # noqa: E402 - after the import guard
from tests.support.webchat.channel import WebchatChannel  # noqa: E402

if __name__ == "__main__":
    run_bot(WebchatChannel())
