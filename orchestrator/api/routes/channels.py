"""``GET /admin/channels``: the registered channels (``shared.channels.registry``) as JSON.

The admin UI builds its add-bot list, settings forms and phone simulator from this answer only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from orchestrator.api.deps import CurrentUser
from shared.channels import registry

router = APIRouter(prefix="/admin/channels", tags=["channels"])


@router.get("")
def list_channels(_user: CurrentUser) -> list[dict[str, Any]]:
    """Every channel kind: label, settings (type, default, secret, label, help, required,
    sandbox default), identity schemes, capabilities, simulator style, customer id scheme."""
    return [manifest.to_json() for manifest in registry.manifests()]
