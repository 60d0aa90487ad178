"""Sandbox providers: a local stand-in for the Graph API, Twilio and the Telegram Bot API.

Start it from the command line with ``python -m shared.sandbox --port 8090``, in-process with
``await Sandbox().start()`` / :func:`start_sandbox`, or in a thread with :class:`SandboxThread`.
"""

from shared.sandbox.common import STATE_KEY
from shared.sandbox.server import Sandbox, SandboxThread, create_app, start_sandbox
from shared.sandbox.state import FaultRule, OutboundMessage, RecordedRequest, SandboxState

__all__ = [
    "STATE_KEY",
    "FaultRule",
    "OutboundMessage",
    "RecordedRequest",
    "Sandbox",
    "SandboxState",
    "SandboxThread",
    "create_app",
    "start_sandbox",
]
