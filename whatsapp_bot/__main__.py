"""``python -m whatsapp_bot``: one WhatsApp bot process (see shared.botkit.runtime)."""

from shared.botkit import run_bot
from whatsapp_bot.channel import WhatsAppChannel

if __name__ == "__main__":
    run_bot(WhatsAppChannel())
