"""The Kubernetes bench's README table (bench/report.py ``render_k8s``)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report


def test_the_k8s_results_render_one_row_per_fleet_size(tmp_path: Path) -> None:
    doc = {
        "benchmark": "k8s",
        "date": "2026-12-02T20:00:00+00:00",
        "git_commit": "abc123def456",
        "results": [
            {
                "bots": 100,
                "start_cpu_ms_per_bot": 7.74,
                "start_all_s": 1.64,
                "rss_mb_before": 150.1,
                "rss_mb_running": 155.1,
                "idle_cpu_pct_of_core": 0.08,
                "cpu_us_per_watch_event": 782.7,
                "fleet_status_read_ms": 1.73,
            },
            {
                "bots": 1000,
                "start_cpu_ms_per_bot": 10.21,
                "start_all_s": 28.45,
                "rss_mb_before": 159.7,
                "rss_mb_running": 177.4,
                "idle_cpu_pct_of_core": 0.44,
                "cpu_us_per_watch_event": 814.9,
                "fleet_status_read_ms": 61.74,
            },
        ],
        "goals": [
            {
                "name": "orchestrator memory per 1,000 bots",
                "value": 17.7,
                "op": "<=",
                "target": 100.0,
                "unit": "MB",
                "passed": True,
            }
        ],
    }
    (tmp_path / "k8s.json").write_text(json.dumps(doc))
    text = report.render(report.load_results(tmp_path))
    assert "### Kubernetes: orchestrator cost with bots on the API stand-in (issue 17)" in text
    assert "| 1,000 | 10.21 | 28.45 | 159.7 → 177.4 | 0.44 | 815 | 61.74 |" in text
    assert "| 100 | 7.74 | 1.64 | 150.1 → 155.1 | 0.08 | 783 | 1.73 |" in text
    assert "| orchestrator memory per 1,000 bots | <= 100.0 MB | 17.7 | pass |" in text
