"""Answer quality of the default offline backend on the evaluation set in ``bench/eval/``.

    python -m bench.answer_eval          # writes bench/results/answers.json and the README table
    python -m bench --only answers       # the same, as one of the benchmarks

Four business documents written for this (a bakery in Markdown, a bike workshop in HTML, a
dental clinic in plain text, a Russian hair salon in Markdown) and, for each, 22 customer
questions phrased as customers write them (with the facts a correct answer must contain, as
case-insensitive regular expressions) plus 5 questions the document cannot answer.

Each document goes into its own knowledge base built by the real ``KnowledgeBaseStore`` with
the bundled offline embedding model, and every question is answered by ``AIService.reply``
(the code path of ``POST /internal/llm/reply`` and the admin preview) with the bot's default
backend (``extractive``), twice:

- **preview**: the question alone, as the admin preview sends it;
- **conversation**: as a bot sends it in a real chat, with the history the bot's store
  returns: the bot's greeting, the previous question and its answer, and the new question
  itself (the bot records the message before asking).

Each answer is **correct** (not escalated and every expected fact present), **escalated**
(the bot hands over to a person) or **confidently wrong** (sent, but missing an expected fact;
or sent at all for a question the document cannot answer, which is the correct outcome there
only when escalated).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.common import goal, write_result  # noqa: E402
from orchestrator.ai.config import AISettings  # noqa: E402
from orchestrator.ai.rag.embeddings import shared_embedder  # noqa: E402
from orchestrator.ai.service import AIService  # noqa: E402

EVAL_DIR = Path(__file__).resolve().parent / "eval"
MODES = ("preview", "conversation")
GOAL_CORRECT = 85.0
GOAL_WRONG = 5.0


def load_cases(path: Path = EVAL_DIR / "questions.json") -> list[dict[str, Any]]:
    """The documents and their questions."""
    docs: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["documents"]
    return docs


def judge(answer: Mapping[str, Any], expect: Sequence[str] | None) -> str:
    """``correct``, ``escalated`` or ``wrong`` for one reply.

    Args:
        answer: the reply (``text``, ``escalate``).
        expect: regular expressions a correct answer contains; ``None`` for a question the
            document cannot answer (only escalating is correct).
    """
    if answer["escalate"]:
        return "correct" if expect is None else "escalated"
    if expect is None:
        return "wrong"
    text = str(answer["text"])
    ok = all(re.search(p, text, re.IGNORECASE) for p in expect)
    return "correct" if ok else "wrong"


def _rates(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def pct(n: int, d: int) -> float:
        return round(100.0 * n / d, 1) if d else 0.0

    correct_a = sum(r["verdict"] == "correct" for r in answerable)
    wrong = sum(r["verdict"] == "wrong" for r in rows)
    return {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "correct": correct_a,
        "escalated": sum(r["verdict"] == "escalated" for r in answerable),
        "wrong_answerable": sum(r["verdict"] == "wrong" for r in answerable),
        "unanswerable_escalated": sum(r["verdict"] == "correct" for r in unanswerable),
        "wrong": wrong,
        "correct_pct": pct(correct_a, len(answerable)),
        "wrong_pct": pct(wrong, len(rows)),
    }


async def evaluate(
    cases: Sequence[dict[str, Any]], data_dir: Path, *, verbose: bool = False
) -> dict[str, Any]:
    """Build one knowledge base per document and score every question in both modes."""
    settings = AISettings(data_dir=data_dir)
    service = AIService(settings, embedder=shared_embedder(settings.embedding_model_path))
    rows: list[dict[str, Any]] = []
    try:
        for case in cases:
            name = case["document"]
            kb = await service.kb.create(name)
            await service.kb.add_document(kb.id, name, (EVAL_DIR / name).read_bytes())
            bot = {"id": f"eval-{kb.id}", "knowledge_base_ids": [kb.id]}
            questions: list[tuple[str, list[str] | None]] = [
                (q["q"], list(q["expect"])) for q in case["answerable"]
            ] + [(q, None) for q in case["unanswerable"]]
            previous: list[dict[str, str]] = []
            for question, expect in questions:
                for mode in MODES:
                    history: list[dict[str, str]] = []
                    if mode == "conversation":
                        history = [
                            {"role": "assistant", "text": case["greeting"]},
                            *previous,
                            {"role": "user", "text": question},
                        ]
                    answer = await service.reply(bot, question, history, record_usage=False)
                    verdict = judge(answer, expect)
                    rows.append(
                        {
                            "document": name,
                            "mode": mode,
                            "question": question,
                            "answerable": expect is not None,
                            "expect": expect,
                            "answer": answer["text"],
                            "escalate": answer["escalate"],
                            "confidence": answer["confidence"],
                            "verdict": verdict,
                        }
                    )
                    if verbose and verdict != "correct":
                        print(f"  [{mode}] {verdict:9} {question!r} -> {answer['text'][:110]!r}")
                    if mode == "conversation":
                        previous = [
                            {"role": "user", "text": question},
                            {"role": "assistant", "text": str(answer["text"])},
                        ]
    finally:
        await service.aclose()
    summary: dict[str, Any] = {}
    for mode in MODES:
        mode_rows = [r for r in rows if r["mode"] == mode]
        summary[mode] = {
            "overall": _rates(mode_rows),
            "documents": {
                c["document"]: {
                    "trade": c["trade"],
                    "language": c["language"],
                    **_rates([r for r in mode_rows if r["document"] == c["document"]]),
                }
                for c in cases
            },
        }
    goals = []
    for mode in MODES:
        overall = summary[mode]["overall"]
        goals.append(
            goal(
                f"{mode}: answerable questions answered correctly",
                overall["correct_pct"],
                ">=",
                GOAL_CORRECT,
                "%",
            )
        )
        goals.append(
            goal(
                f"{mode}: confidently wrong (all questions)",
                overall["wrong_pct"],
                "<=",
                GOAL_WRONG,
                "%",
            )
        )
    return {
        "backend": settings.default_llm_backend,
        "embedding_model": service.embedder.model_name,
        "settings": {
            "rag_top_k": settings.rag_top_k,
            "rag_min_score": settings.rag_min_score,
            "extractive_min_score": settings.extractive_min_score,
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
        },
        "summary": summary,
        "goals": goals,
        "answers": rows,
    }


def run(quick: bool = False, *, verbose: bool = False) -> dict[str, Any]:
    """The benchmark entry point of ``python -m bench`` (``quick`` changes nothing: it is fast)."""
    with tempfile.TemporaryDirectory(prefix="flotilla-answer-eval-") as tmp:
        return asyncio.run(evaluate(load_cases(), Path(tmp), verbose=verbose))


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the summary, write ``answers.json`` and regenerate the README tables."""
    from bench import report
    from bench.common import RESULTS_DIR

    args = list(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    body = run(verbose="-v" in args or "--verbose" in args)
    for mode in MODES:
        for name, doc in body["summary"][mode]["documents"].items():
            print(
                f"{mode:12} {name:28} correct {doc['correct']}/{doc['answerable']} "
                f"({doc['correct_pct']} %), escalated {doc['escalated']}, wrong {doc['wrong']}"
            )
        overall = body["summary"][mode]["overall"]
        print(
            f"{mode:12} {'overall':28} correct {overall['correct_pct']} %, "
            f"confidently wrong {overall['wrong_pct']} %"
        )
    path = write_result("answers", body, quick=False, started=started)
    report.update_readme(report.load_results(RESULTS_DIR))
    print(f"wrote {path}")
    return 0 if all(g["passed"] for g in body["goals"]) else 1


if __name__ == "__main__":
    sys.exit(main())
