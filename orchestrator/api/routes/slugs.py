"""``GET /admin/slug``: the id a new bot named ``name`` would get, shown while it is typed.

Admins see every bot, so they get the exact id (with a suffix when it is taken or was held by a
deleted bot). Anyone else gets the plain slug of the name, whether or not another user's bot
holds it: the answer must not tell which ids other users have; creation adds the suffix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from orchestrator import crud
from orchestrator.api.deps import CurrentUser, SessionDep

router = APIRouter(tags=["instances"])


class SlugPreview(BaseModel):
    """The id a bot named ``name`` would get; ``exact`` when the caller may know it."""

    slug: str
    exact: bool


@router.get("/admin/slug")
def slug_preview(
    session: SessionDep,
    user: CurrentUser,
    name: Annotated[str, Query(min_length=1, max_length=200)],
) -> SlugPreview:
    """The id a bot named ``name`` would get (any signed-in user; exact for admins)."""
    if user.role != "admin":
        return SlugPreview(slug=crud.slugify(name), exact=False)
    return SlugPreview(slug=crud.unique_slug(session=session, name=name), exact=True)
