"""The fuzz suite reuses the fault suite's real processes (sandbox, orchestrator)."""

from tests.faults.conftest import orch, sandbox  # noqa: F401 - fixtures shared by import
