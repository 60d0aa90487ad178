"""Run the sandbox providers: ``python -m shared.sandbox --host 127.0.0.1 --port 8090``."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from shared.sandbox.server import create_app
from shared.sandbox.state import DEFAULT_MAX_REQUESTS

logger = logging.getLogger("shared.sandbox")


def _log_banner(text: str) -> None:
    logger.info("%s", text.strip())


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.sandbox",
        description="Local stand-in for the WhatsApp Graph API, Twilio and the Telegram Bot API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--seed", type=int, default=0, help="seed for rate-based faults")
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
        '"msg":"%(message)s"}',
    )
    app = create_app(seed=args.seed, max_requests=args.max_requests)
    logger.info(
        "sandbox providers: graph=http://%s:%d/graph twilio=http://%s:%d/twilio "
        "telegram=http://%s:%d/telegram/bot<token>",
        args.host,
        args.port,
        args.host,
        args.port,
        args.host,
        args.port,
    )
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=_log_banner)


if __name__ == "__main__":
    main()
