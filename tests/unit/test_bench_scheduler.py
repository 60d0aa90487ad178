"""The scheduler bench's README tables (bench/report.py ``render_scheduler``)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report


def test_the_scheduler_results_render_idle_fire_and_outbox_rows(tmp_path: Path) -> None:
    doc = {
        "benchmark": "scheduler",
        "date": "2026-12-02T20:58:39+00:00",
        "git_commit": "22fbf760ff75",
        "results": {
            "jobs": 10000,
            "due_at_once": 1000,
            "channel_per_second": 80.0,
            "idle_seconds": 10.0,
            "idle_cpu_pct_baseline": 0.004,
            "idle_cpu_pct_outbox_only": 0.073,
            "idle_cpu_pct_scheduler": 0.07,
            "fire_paced_s": 12.522,
            "fire_paced_per_s": 79.9,
            "fire_paced_floor_s": 12.5,
            "fire_paced_cpu_ms_per_job": 1.261,
            "fire_unpaced_s": 0.272,
            "fire_unpaced_per_s": 3673.6,
            "fire_unpaced_cpu_ms_per_job": 0.135,
            "outbox_rows": 2000,
            "outbox_sent": 2000,
            "outbox_send_s": 1.948,
            "outbox_send_per_s": 1026.6,
            "outbox_cpu_ms_per_send": 0.435,
        },
        "goals": [
            {
                "name": "the channel's pace is never exceeded",
                "value": 79.9,
                "op": "<=",
                "target": 81.6,
                "unit": "jobs/s",
                "passed": True,
            }
        ],
    }
    (tmp_path / "scheduler.json").write_text(json.dumps(doc))
    text = report.render(report.load_results(tmp_path))
    assert "### Scheduler: 10,000 jobs in one bot (`bench/scheduler_bench.py`, issue 14)" in text
    assert "| idle over 10 s, 10,000 jobs pending | CPU % of a core |" in text
    assert "| event loop alone (baseline) | 0.00 |" in text
    assert "| + outbox worker + scheduler | 0.07 |" in text
    assert "| paced by the channel (80/s; floor 12.50 s) | 12.52 | 79.9 | 1.26 |" in text
    assert "| pacing off (the scheduler's own cost) | 0.27 | 3,673.6 | 0.14 |" in text
    assert (
        "| outbox plain send of the 2,000 queued rows (sandbox, same run) | 1.95 | 1,026.6 "
        "| 0.43 |" in text
    )
    assert "| the channel's pace is never exceeded | <= 81.6 jobs/s | 79.9 | pass |" in text


def test_a_crashed_scheduler_run_renders_no_table(tmp_path: Path) -> None:
    doc = {"benchmark": "scheduler", "error": "Traceback...\nOperationalError: x", "goals": []}
    (tmp_path / "scheduler.json").write_text(json.dumps(doc))
    text = report.render(report.load_results(tmp_path))
    assert "**The benchmark failed:** `OperationalError: x`" in text
    assert report.render_scheduler({}) == ""
