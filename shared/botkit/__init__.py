"""The bot runtime shared by every channel: ``run_bot(MyChannel())``.

Import-light on purpose (aiohttp, sqlite3, pyjwt): a bot process never loads torch, faiss,
sentence-transformers, piper, fastapi or pydantic.
"""

from shared.botkit.context import BotContext
from shared.botkit.runtime import build_app, create_context, run_bot
from shared.botkit.settings import BotSettings
from shared.botkit.spec import ChannelSpec

__all__ = ["BotContext", "BotSettings", "ChannelSpec", "build_app", "create_context", "run_bot"]
