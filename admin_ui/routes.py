"""The admin UI: server-rendered pages and htmx fragments over the admin API.

Pages are full HTML documents; ``/ui/...`` routes answer htmx with fragments. Every read and
write goes through :class:`~admin_ui.api_client.AdminApi` with the signed-in user's token, so
what a role may see and do is decided by the API, not here; the UI only hides what would fail.
Fragments answer 200 with the error shown in place (htmx does not swap error answers).

The UI is a pure client of the admin API: no database session and no file reads here. Its
pages live in :mod:`admin_ui.pages`, one module per resource, each calling the admin API routes
module of the same resource; this module only gathers them into :data:`router`.
"""

from __future__ import annotations

from fastapi import APIRouter

from admin_ui.common import STATIC_DIR, templates
from admin_ui.pages import (
    account,
    auth,
    bots,
    conversations,
    desk,
    fleet,
    followups,
    handoff,
    instances_tabs,
    knowledge,
    setup,
    users,
)

__all__ = ["STATIC_DIR", "router", "templates"]

router = APIRouter(include_in_schema=False)
for _page in (auth, account, bots, setup, instances_tabs, conversations, fleet, users, knowledge):
    router.include_router(_page.router)
router.include_router(desk.router)  # the handoff Desk (issue 13)
router.include_router(handoff.router)  # a bot's Handoff tab (issue 13)
router.include_router(followups.router)  # follow-up settings and a conversation's panel (14)
