"""Read one PDF in a separate, limited process (started by ``ingest.pdf_to_text``).

Usage: ``python -I _pdf_worker.py MAX_PAGES MAX_CHARS MAX_MEMORY_BYTES MAX_CPU_S`` with the PDF
on standard input. Prints one JSON object on standard output: ``{"text": ...}``, or
``{"error": "pages" | "chars" | "memory" | "unreadable", "message": ...}``.

The parent kills this process when its time limit passes; the memory and CPU rlimits set here
are a second fence should the parent be gone. Only the standard library and pypdf are imported
(the file runs by path with ``-I``, so nothing of the orchestrator is loaded).
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys


def _emit(payload: dict[str, object]) -> int:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False))
    sys.stdout.flush()
    return 0


def _limit(kind: int, value: int) -> None:
    if value > 0:
        # A lower hard limit may already be in force: keep it.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(kind, (value, value))


def main(argv: list[str]) -> int:
    """Extract the text of the PDF on stdin within the limits given in ``argv``."""
    max_pages, max_chars, max_memory, max_cpu = (int(a) for a in argv[1:5])
    _limit(resource.RLIMIT_AS, max_memory)
    _limit(resource.RLIMIT_CPU, max_cpu)
    data = sys.stdin.buffer.read()
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        count = len(reader.pages)
        if count > max_pages:
            return _emit(
                {"error": "pages", "message": f"{count} pages is above the {max_pages} page limit"}
            )
        parts: list[str] = []
        total = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            total += len(text)
            if total > max_chars:
                return _emit(
                    {
                        "error": "chars",
                        "message": f"more than {max_chars} characters of text",
                    }
                )
            parts.append(text)
    except MemoryError:
        return _emit({"error": "memory", "message": "reading it needs too much memory"})
    except Exception as exc:  # noqa: BLE001 - any parser failure is an unreadable file
        return _emit({"error": "unreadable", "message": f"{type(exc).__name__}: {exc}"[:300]})
    return _emit({"text": "\n\n".join(parts)})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
