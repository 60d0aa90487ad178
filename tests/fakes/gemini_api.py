"""A tiny Gemini API server: ``POST /v1beta/models/{model}:generateContent``.

Answers like the real API (``candidates`` / ``usageMetadata`` / ``modelVersion``; errors as
``{"error": {"code", "message", "status"}}``), records requests (with the
``x-goog-api-key`` header) and can be told to fail or hang. A request with an
``inlineData`` audio part is answered with ``transcript`` (STT).

    python -m tests.fakes.gemini_api --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.fakes._server import FakeState, serve

__all__ = ["FakeGemini", "serve"]

_STATUS = {
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
}


class FakeGemini(FakeState):
    """State and app of the fake.

    Attributes:
        reply: ``request json -> text`` (default: echoes the last user text).
        transcript: the answer to a request carrying audio.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reply: Callable[[dict[str, Any]], str] = self._echo
        self.transcript = "hello from a voice note"

    @staticmethod
    def _echo(body: dict[str, Any]) -> str:
        texts = [
            p["text"] for c in body.get("contents", []) for p in c.get("parts", []) if "text" in p
        ]
        return f"echo: {texts[-1] if texts else ''}"

    async def generate_content(self, request: web.Request) -> web.Response:
        model_action = request.match_info["model_action"]
        if not model_action.endswith(":generateContent"):
            return web.json_response(
                {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}, status=404
            )
        model = model_action.removesuffix(":generateContent")
        body = await request.json()
        audio = [
            p["inlineData"]
            for c in body.get("contents", [])
            for p in c.get("parts", [])
            if "inlineData" in p
        ]
        self.requests.append(
            {
                "path": request.path,
                "model": model,
                "json": body,
                "api_key": request.headers.get("x-goog-api-key"),
                "audio_bytes": sum(len(base64.b64decode(a["data"])) for a in audio),
            }
        )
        if self.faults:
            fault = self.faults.pop(0)
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            else:
                headers = (
                    {"Retry-After": str(fault.retry_after)}
                    if fault.retry_after is not None
                    else {}
                )
                return web.json_response(
                    {
                        "error": {
                            "code": fault.status,
                            "message": f"scripted {fault.status}",
                            "status": _STATUS.get(fault.status, "UNKNOWN"),
                        }
                    },
                    status=fault.status,
                    headers=headers,
                )
        text = self.transcript if audio else self.reply(body)
        prompt_tokens = sum(
            len(p.get("text", "").split())
            for c in body.get("contents", [])
            for p in c.get("parts", [])
        )
        system = body.get("systemInstruction") or body.get("system_instruction")
        if system:
            prompt_tokens += sum(len(p.get("text", "").split()) for p in system["parts"])
        completion_tokens = len(text.split())
        return web.json_response(
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": completion_tokens,
                    "totalTokenCount": prompt_tokens + completion_tokens,
                },
                "modelVersion": model,
                "responseId": "fake-response",
            }
        )

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/{version}/models/{model_action}", self.generate_content)
        return app


async def _main(port: int) -> None:
    fake = FakeGemini()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    asyncio.run(_main(parser.parse_args().port))
