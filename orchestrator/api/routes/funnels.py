"""Funnels: the built-in default funnel (seed 004) that a bot without its own funnel runs.

The admin UI loads it into the funnel editor as a starting point; it reads it here, never from
the file (the UI is a pure client of this API).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from orchestrator.api.deps import CurrentUser
from shared.funnel import default_funnel

router = APIRouter(prefix="/admin/funnels", tags=["funnels"])


@router.get("/default")
def get_default_funnel(user: CurrentUser) -> dict[str, Any]:
    """The default funnel as a JSON document (the shape ``PUT .../instances/{id}`` takes in
    ``funnel``). Any signed-in user."""
    return default_funnel().to_dict()
