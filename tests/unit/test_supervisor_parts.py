"""Supervisor pieces that need no subprocess: backoff, flapping, log rotation and tails."""

from __future__ import annotations

import random
from pathlib import Path

from orchestrator.supervisor.backoff import FlappingDetector, respawn_delay
from orchestrator.supervisor.supervisor import Supervisor, log_path
from orchestrator.supervisor.watcher import Watcher
from tests.conftest import make_settings


def test_respawn_delay_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [respawn_delay(n, base=1.0, cap=60.0, rng=rng) for n in range(1, 10)]
    assert 0.75 <= delays[0] <= 1.0
    assert 1.5 <= delays[1] <= 2.0
    assert 3.0 <= delays[2] <= 4.0
    assert all(d <= 60.0 for d in delays)
    assert delays[-1] >= 45.0  # 256 capped at 60, minus at most 25 % jitter


def test_flapping_counts_deaths_inside_the_window_only() -> None:
    f = FlappingDetector(attempts=3, window=10)
    assert not f.record_death(now=0)
    assert not f.record_death(now=5)
    assert not f.record_death(now=12)  # the first one left the window
    assert f.record_death(now=13)  # 5, 12, 13: three inside 10 s
    f.reset()
    assert f.recent == 0


def test_log_rotation_copies_and_truncates(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, log_max_bytes=1000, log_backups=2)
    sup = Supervisor(settings, engine=None)  # type: ignore[arg-type] - rotation needs no DB
    sup.watchers["bot"] = Watcher(sup, "bot", "sms")
    path = log_path(settings, "sms", "bot")
    path.parent.mkdir(parents=True)
    for generation in range(3):
        path.write_text(f"{generation}\n" + "x" * 1200 + "\n")
        sup.rotate_logs()
        assert path.stat().st_size == 0
    assert path.with_name(path.name + ".1").read_text().startswith("2\n")
    assert path.with_name(path.name + ".2").read_text().startswith("1\n")
    assert not path.with_name(path.name + ".3").exists()  # only log_backups kept
    path.write_text("small\n")
    sup.rotate_logs()
    assert path.read_text() == "small\n"  # under the limit: left alone


def test_tail_returns_the_last_lines(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    sup = Supervisor(settings, engine=None)  # type: ignore[arg-type]
    path = log_path(settings, "whatsapp", "b")
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert sup.tail("whatsapp", "b", 3) == ["line 4997", "line 4998", "line 4999"]
    assert sup.tail("whatsapp", "missing", 3) == []
