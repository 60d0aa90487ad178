"""``python -m telegram_bot``: one Telegram bot process (see shared.botkit.runtime)."""

from shared.bot_imports import keep_bot_light

keep_bot_light()

from shared.botkit import run_bot  # noqa: E402 - after the import guard
from telegram_bot.channel import TelegramChannel  # noqa: E402

if __name__ == "__main__":
    run_bot(TelegramChannel())
