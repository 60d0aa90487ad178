"""Reliability numbers of a fault/fuzz run, kept in ``bench/results/faults.json``.

Shape (agreed with the benchmarks): ``{"scenarios": [{"name", "messages", "lost", "doubled",
"passed", "detail"}], "bad_inputs_tried": N, "date", "commit"}``. A scenario's entry replaces the
entry of the same name, so re-running one scenario does not duplicate it. The full-scale run
(``FLOTILLA_FAULTS_SCALE=full``, ``make faults``) writes ``faults.json``; the CI-scale run writes
``faults-ci.json`` beside it so a quick ``make test`` never overwrites the published numbers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCALES = ("ci", "full")


def scale() -> str:
    """``FLOTILLA_FAULTS_SCALE``: ``ci`` (default, inside ``make test``) or ``full``."""
    value = os.environ.get("FLOTILLA_FAULTS_SCALE", "ci").strip().lower() or "ci"
    if value not in SCALES:
        raise ValueError(f"FLOTILLA_FAULTS_SCALE must be one of {SCALES}, not {value!r}")
    return value


def sized(ci: int, full: int) -> int:
    """Pick the CI or the full size of a scenario."""
    return full if scale() == "full" else ci


def results_path() -> Path:
    """Where this run's numbers go (``FLOTILLA_FAULTS_RESULTS`` overrides)."""
    override = os.environ.get("FLOTILLA_FAULTS_RESULTS")
    if override:
        return Path(override)
    name = "faults.json" if scale() == "full" else "faults-ci.json"
    return REPO / "bench" / "results" / name


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@contextlib.contextmanager
def _locked_results() -> Iterator[dict[str, Any]]:
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.with_suffix(".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            data = {}
        data.setdefault("scenarios", [])
        data.setdefault("bad_inputs_tried", 0)
        yield data
        data["scale"] = scale()
        data["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        data["commit"] = _commit()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
    with contextlib.suppress(OSError):
        path.with_suffix(".lock").unlink()


def record_scenario(
    name: str, *, messages: int, lost: int, doubled: int, passed: bool, detail: str
) -> None:
    """Store one scenario's outcome (replacing an earlier entry of the same name)."""
    entry = {
        "name": name,
        "messages": messages,
        "lost": lost,
        "doubled": doubled,
        "passed": passed,
        "detail": detail,
    }
    with _locked_results() as data:
        data["scenarios"] = [s for s in data["scenarios"] if s.get("name") != name] + [entry]


def record_bad_inputs(source: str, count: int) -> None:
    """Store how many bad inputs one fuzz source tried; the total is ``bad_inputs_tried``."""
    with _locked_results() as data:
        sources = dict(data.get("bad_inputs_by_source") or {})
        sources[source] = count
        data["bad_inputs_by_source"] = dict(sorted(sources.items()))
        data["bad_inputs_tried"] = sum(int(v) for v in sources.values())
