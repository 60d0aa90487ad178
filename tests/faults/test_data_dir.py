"""A read-only or full data directory at start: the bot ends ``crashed`` with a ``last_error``
that says what is wrong, after at most the flapping limit of attempts (no crash loop).

As root (CI, this machine) the directory is a real mount: a read-only tmpfs, or a 64 KiB tmpfs
filled to the last byte. Without root a read-only directory is simulated with ``chmod 0555``
(root ignores permission bits, so that variant needs a non-root user) and the full-disk case is
skipped. The orchestrator keeps its own database outside the data directory, as it does with
``DATABASE_URL`` (PostgreSQL) in production, so only the bot is hit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import ORCHESTRATOR_ENV
from tests.faults.fleet import SECRETS, SandboxProcess, scan_for_secrets
from tests.faults.results import record_scenario
from tests.support.orchestrator_proc import OrchestratorProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FLAPPING_ATTEMPTS = int(ORCHESTRATOR_ENV["FLOTILLA_FLAPPING_ATTEMPTS"])


def _mount(*args: str) -> bool:
    res = subprocess.run(["mount", *args], capture_output=True, timeout=10, check=False)
    return res.returncode == 0


@contextlib.contextmanager
def broken_dir(path: Path, how: str) -> Iterator[str]:
    """Make ``path`` a read-only or full directory; yield how it was done."""
    path.mkdir(parents=True, exist_ok=True)
    is_root = os.geteuid() == 0
    method = ""
    try:
        if how == "read-only":
            if is_root and _mount("-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)):
                method = "read-only tmpfs mount"
            elif not is_root:
                path.chmod(0o555)
                method = "chmod 0555"
            else:
                pytest.skip("root without mount permission: cannot make a read-only directory")
        else:
            if not (is_root and _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path))):
                pytest.skip("a full disk needs a tiny tmpfs mount (root with mount permission)")
            method = "64 KiB tmpfs filled"
            with contextlib.suppress(OSError), (path / "filler").open("wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
        yield method
    finally:
        if method == "chmod 0555":
            path.chmod(0o755)
        elif method:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10,
                           check=False)


@pytest.mark.parametrize(("how", "words"), [
    ("read-only", ("read-only",)),
    ("full", ("no space", "disk is full")),
])
def test_bot_on_a_broken_data_dir_ends_crashed_with_the_reason(
    tmp_path: Path, sandbox: SandboxProcess, how: str, words: tuple[str, ...]
) -> None:
    with broken_dir(tmp_path / "data", how) as method:
        (tmp_path / "db").mkdir()
        orch = OrchestratorProcess(tmp_path, **ORCHESTRATOR_ENV)
        orch.env["FLOTILLA_DATABASE_URL"] = f"sqlite:///{tmp_path / 'db' / 'orchestrator.db'}"
        orch.start()
        try:
            orch.create_bot(name="Broken Disk", graph_api_base_url=f"{sandbox.url}/graph",
                            app_secret=SECRETS[0])
            started = time.monotonic()
            res = orch.api("POST", "/admin/whatsapp/instances/broken-disk/start")
            assert res.status_code == 200, res.text
            st = orch.wait_state("whatsapp", "broken-disk", ("crashed", "stopped"), timeout=60)
            took = time.monotonic() - started
            time.sleep(2.0)
            later = orch.status("whatsapp", "broken-disk")
        finally:
            orch.close()
    error = str(st["last_error"] or "")
    detail = (
        f"{method}: state {st['state']} after {st['restarts']} exits in {took:.1f} s; "
        f"last_error: {error}"
    )
    passed = (
        st["state"] == "crashed"
        and any(w in error.lower() for w in words)
        and later["restarts"] == st["restarts"] <= FLAPPING_ATTEMPTS
    )
    record_scenario(f"{how} data directory at start", messages=0, lost=0, doubled=0,
                    passed=passed, detail=detail)
    assert st["state"] == "crashed", detail
    assert any(w in error.lower() for w in words), detail
    assert "data directory" in error, detail
    assert st["restarts"] == FLAPPING_ATTEMPTS, detail
    assert later["state"] == "crashed", later
    assert later["restarts"] == st["restarts"], f"still respawning: {later}"
    leaks = scan_for_secrets(
        [tmp_path / "orchestrator.log", tmp_path / "logs" / "whatsapp_bot_broken-disk.log"]
    )
    assert not leaks, leaks
