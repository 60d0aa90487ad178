"""A tiny OpenAI-compatible server: ``/v1/chat/completions`` and ``/v1/audio/transcriptions``.

Answers like the real API (same JSON shapes, error envelope ``{"error": {...}}``), records
what it receives, and can be told to fail (429 with ``Retry-After``, 500) or to hang.

    python -m tests.fakes.openai_api --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes._server import FakeState, serve

__all__ = ["FakeOpenAI", "serve"]

_ERROR_TYPES = {
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
    401: "invalid_api_key",
    400: "invalid_request_error",
}


class FakeOpenAI(FakeState):
    """State and app of the fake.

    Attributes:
        reply: ``messages -> text`` for chat completions (default: echoes the last message).
        transcript: what ``/audio/transcriptions`` answers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reply: Callable[[list[dict[str, Any]]], str] = lambda msgs: (
            f"echo: {msgs[-1]['content']}"
        )
        self.transcript = "hello from a voice note"

    async def _maybe_fail(self) -> web.Response | None:
        if not self.faults:
            return None
        fault = self.faults.pop(0)
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
            return None
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        body = {
            "error": {
                "message": f"scripted failure {fault.status}",
                "type": _ERROR_TYPES.get(fault.status, "error"),
                "param": None,
                "code": None,
            }
        }
        return web.json_response(body, status=fault.status, headers=headers)

    async def chat_completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            {"path": request.path, "json": body, "auth": request.headers.get("Authorization")}
        )
        failed = await self._maybe_fail()
        if failed is not None:
            return failed
        text = self.reply(body["messages"])
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(text.split())
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def transcriptions(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        size = len(upload.file.read()) if isinstance(upload, web.FileField) else 0
        self.requests.append(
            {
                "path": request.path,
                "model": form.get("model"),
                "filename": getattr(upload, "filename", None),
                "size": size,
            }
        )
        failed = await self._maybe_fail()
        if failed is not None:
            return failed
        return web.json_response({"text": self.transcript})

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        return app


async def _main(port: int) -> None:
    fake = FakeOpenAI()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8001)
    asyncio.run(_main(parser.parse_args().port))
