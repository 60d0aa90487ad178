"""Package version, git commit and build time (seed 001 asks for both)."""

from __future__ import annotations

import functools
import os
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],  # noqa: S607 - git from PATH is what a checkout has
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


@functools.cache
def version_info() -> dict[str, str]:
    """``{"version", "commit", "build_time"}``; env ``FLOTILLA_GIT_COMMIT``/``FLOTILLA_BUILD_TIME``
    win (for images built without ``.git``)."""
    try:
        pkg = _pkg_version("flotilla")
    except PackageNotFoundError:
        pkg = "0.0.0+unknown"
    commit = os.environ.get("FLOTILLA_GIT_COMMIT") or _git("rev-parse", "HEAD") or "unknown"
    build = (
        os.environ.get("FLOTILLA_BUILD_TIME")
        or _git("show", "-s", "--format=%cI", "HEAD")
        or "unknown"
    )
    return {"version": pkg, "commit": commit, "build_time": build}
