"""``python -m sms_bot``: one Twilio SMS/MMS bot process (see shared.botkit.runtime)."""

from shared.bot_imports import keep_bot_light

keep_bot_light()

from shared.botkit import run_bot  # noqa: E402 - after the import guard
from sms_bot.channel import SmsChannel  # noqa: E402

if __name__ == "__main__":
    run_bot(SmsChannel())
