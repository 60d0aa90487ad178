"""The README table generator of ``python -m bench`` renders given result files correctly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report


def goal(name: str, value: float, op: str, target: float, passed: bool) -> dict[str, Any]:
    return {"name": name, "value": value, "op": op, "target": target, "unit": "ms",
            "passed": passed}


WEBHOOK = {
    "benchmark": "webhook", "date": "2026-05-01T10:00:00+00:00", "git_commit": "abc123def456",
    "quick": False, "machine": {"cpus": 2, "python": "3.11.7", "loadavg_at_start": [0.5]},
    "parameters": {"closed_concurrency": 32, "closed_duration_s": 8, "open_rate": 200,
                   "open_duration_s": 10, "funnel_rate": 20},
    "ack_throughput": {"bot_rps": 4321.0, "bare_rps": 17654.0, "ratio": 0.245, "rounds": [
        {"round": 1, "bare": {"throughput_rps": 17654.0, "latency": {"p50_ms": 1.7,
                                                                     "p99_ms": 3.6}},
         "bot": {"throughput_rps": 4321.0, "latency": {"p50_ms": 7.1, "p99_ms": 12.5},
                 "server_cpu_ms_per_request": 0.231}}]},
    "duplicates": {"unique_messages": 1000, "deliveries": 3000, "acknowledged_200": 3000,
                   "inbox_rows": 1000, "rejected_as_duplicate": 2000,
                   "run": {"throughput_rps": 5000.0}},
    "open_loop_200": {"bot_p99_ms_median": 25.19, "bare_p99_ms_median": 1.45, "rounds": [
        {"round": 1,
         "bot": {"requests": 2000, "late_starts": 3,
                 "latency": {"p50_ms": 2.4, "p95_ms": 9.0, "p99_ms": 25.19, "max_ms": 30.0}},
         "bare": {"requests": 2000, "late_starts": 0,
                  "latency": {"p50_ms": 0.4, "p95_ms": 1.0, "p99_ms": 1.45, "max_ms": 2.0}}}]},
    "inbound_to_reply": {
        "relay": {"messages": 300, "replies_missing": 0,
                  "inbound_to_reply": {"p50_ms": 1.87, "p99_ms": 9.37}},
        "bot": {"messages": 300, "replies_missing": 0,
                "inbound_to_reply": {"p50_ms": 4.35, "p99_ms": 14.69}}},
    "goals": [goal("ack p99 at 200 req/s", 25.19, "<=", 20, False),
              goal("inbound → reply p50", 4.35, "<=", 15, True)],
}

FAULTS = {
    "scenarios": [
        {"name": "duplicates", "messages": 500, "lost": 0, "doubled": 0, "passed": True},
        {"name": "kill -9 bot", "messages": 1000, "lost": 2, "doubled": 0, "passed": False,
         "detail": "two | lost"},
    ],
    "bad_inputs_tried": 12000,
}


def write(directory: Path, name: str, doc: dict[str, Any]) -> None:
    (directory / f"{name}.json").write_text(json.dumps(doc))


def test_webhook_figures_stand_beside_their_baseline(tmp_path: Path) -> None:
    write(tmp_path, "webhook", WEBHOOK)
    text = report.render(report.load_results(tmp_path))
    assert "| 1 | bare aiohttp (baseline) | 17,654 | 1.70 | 3.60 | – |" in text
    assert "| 1 | WhatsApp bot | 4,321 | 7.10 | 12.50 | 0.231 |" in text
    assert "**0.245×**" in text
    assert "| 1,000 | 3,000 | 3,000 | 1,000 | 2,000 | 5,000 |" in text
    assert "| bare relay: 200, then one POST to the sandbox (baseline) | 300 | 1.87 |" in text
    assert "| WhatsApp bot, funnel greeting → reply buttons | 300 | 4.35 |" in text
    assert "| 1 | WhatsApp bot | 2,000 | 2.40 | 9.00 | 25.19 | 30.00 | 3 | – |" in text
    assert "bot **25.19 ms**, bare 1.45 ms" in text
    assert "commit `abc123def456`" in text


def test_missed_goals_are_shown_not_hidden(tmp_path: Path) -> None:
    write(tmp_path, "webhook", WEBHOOK)
    text = report.render(report.load_results(tmp_path))
    assert "| ack p99 at 200 req/s | <= 20 ms | 25.19 | **MISSED** |" in text
    assert "| inbound → reply p50 | <= 15 ms | 4.35 | pass |" in text


def test_reliability_table_sums_lost_and_doubled_and_ends_the_page(tmp_path: Path) -> None:
    write(tmp_path, "webhook", WEBHOOK)
    write(tmp_path, "faults", FAULTS)
    text = report.render(report.load_results(tmp_path))
    reliability = text[text.index("## Reliability"):]
    assert "| 1 / 2 | 12,000 | **2** | 0 |" in reliability
    assert "| kill -9 bot | 1,000 | 2 | 0 | **FAILED** | two / lost |" in reliability
    assert "4,321 acks/s (one bot)" in reliability
    # the reliability table is the last section, and faults.json gets no section of its own
    assert text.rstrip().endswith(report.END)
    assert text.count("### ") == 1


def test_without_faults_the_reliability_row_says_so(tmp_path: Path) -> None:
    text = report.render(report.load_results(tmp_path))
    assert "_No results yet" in text
    assert "not run yet (no bench/results/faults.json)" in text


def test_ai_results_are_rendered_with_the_exact_index_as_baseline(tmp_path: Path) -> None:
    write(tmp_path, "ai", {
        "embeddings": {"model": "all-MiniLM-L6-v2", "load_s": 7.1, "sentences_per_s": 340.0,
                       "single_query": {"p50_ms": 15.0, "p99_ms": 20.0}},
        "rag_search": [{"chunks": 10000, "flat": {"p50_ms": 1.0, "p99_ms": 2.0},
                        "hnsw": [{"M": 32, "efSearch": 64, "p50_ms": 0.1, "p99_ms": 0.2,
                                  "recall@10": 0.98, "build_s": 3.0}], "ivf": []}],
        "tts": {"engine": "piper", "voice": "joe", "audio_s": 12.0, "rtf_synthesis": 0.03,
                "rtf_with_ogg_opus": 0.06, "ogg_opus_bytes_per_audio_s": 4772},
        "local_llm": {"model": "gemma", "threads": 2, "load_s": 1.5, "tokens_per_s": 56.6},
    })
    text = report.render(report.load_results(tmp_path))
    assert "| 10,000 | flat (exact; baseline) | – | 1.00 | 2.00 | 1.000 | – |" in text
    assert "| 10,000 | HNSW M=32 | efSearch=64 | 0.10 | 0.20 | 0.980 | 3.00 |" in text
    assert "| gemma | 2 | 1.50 | 56.6 |" in text


def test_update_readme_keeps_the_handwritten_part(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nHow to run.\n\n" + report.BEGIN + "\nold\n" + report.END
                      + "\n")
    write(tmp_path, "webhook", WEBHOOK)
    report.update_readme(report.load_results(tmp_path), readme)
    new = readme.read_text()
    assert new.startswith("# Benchmarks\n\nHow to run.\n\n")
    assert "old" not in new
    assert new.count(report.BEGIN) == 1
    assert "WhatsApp bot" in new


def compare_run(commit: str, rps: float, reply_p50: float, load: tuple[float, float]) -> dict[
        str, Any]:
    return {"commit": commit, "acks_per_s": rps, "ratio_to_bare": 0.15, "ack_p50_ms": 10.0,
            "ack_p99_ms": 20.0, "ack_p99_ms_open_200": 30.0, "reply_p50_ms": reply_p50,
            "reply_p99_ms": 60.0, "loadavg": {"1min_min": load[0], "1min_max": load[1]}}


WEBHOOK_COMPARE = {
    "benchmark": "webhook_compare", "date": "2026-05-02T10:00:00+00:00",
    "git_commit": "fedcba9876543210", "before_commit": "e5d3987844e2",
    "full_runs": {"before": [compare_run("e5d3987844e2", 2000.0, 20.0, (1.0, 2.5))],
                  "after": [compare_run("fedcba987654", 1800.0, 22.0, (3.0, 4.0))]},
    "median": {"before": {"acks_per_s": 2000.0, "reply_p50_ms": 20.0},
               "after": {"acks_per_s": 1800.0, "reply_p50_ms": 22.0}},
    "change_pct": {"acks_per_s": -10.0, "reply_p50_ms": 10.0},
    "verdict": "within noise",
    "side_by_side": {
        "ack": {"before": [{}, {}], "after": [{}, {}],
                "median": {"before": {"acks_per_s": 2775.0, "server_cpu_ms_per_request": 0.379},
                           "after": {"acks_per_s": 2744.0, "server_cpu_ms_per_request": 0.388}}},
        "inbound_to_reply": {"before": [{}], "after": [{}],
                             "median": {"before": {"reply_p50_ms": 7.25},
                                        "after": {"reply_p50_ms": 7.2}}}},
}


def test_before_after_comparison_is_its_own_section_after_the_webhook(tmp_path: Path) -> None:
    write(tmp_path, "webhook", WEBHOOK)
    write(tmp_path, "webhook_compare", WEBHOOK_COMPARE)
    text = report.render(report.load_results(tmp_path))
    title = "### Before/after the channel registry and decision step (same run)"
    assert text.index("### Webhook") < text.index(title) < text.index("## Reliability")
    section = text[text.index(title):text.index("## Reliability")]
    assert "`e5d3987` (before) against `fedcba9` (after)" in section
    assert ("| metric | before 1 | after 1 | before (median) | after (median) | change |"
            in section)
    assert "| acks/s (closed loop, mean of rounds) | 2,000 | 1,800 | 2,000 | 1,800 | -10.0 % |" \
        in section
    assert "| inbound → reply p50 ms | 20.00 | 22.00 | 20.00 | 22.00 | +10.0 % |" in section
    assert "| load average (1 min) during the run, min–max | 1.0–2.5 | 3.0–4.0 |" in section
    assert "| ack, closed loop: acks/s | 2 | 2,775 | 2,744 |" in section
    assert "| ack, closed loop: server CPU ms/request | 2 | 0.379 | 0.388 |" in section
    assert "| inbound → reply: p50 ms | 1 | 7.25 | 7.20 |" in section
    assert "**Verdict:** within noise" in section
    assert "commit `fedcba987654`" in section
