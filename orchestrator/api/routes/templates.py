"""Funnel templates: ``GET /admin/templates`` lists them, ``POST .../{id}/preview`` fills one.

A template (``shared/funnel/templates``) is a funnel with ``{placeholders}`` for a business's
name, what it does, hours, time zone, language, currency and contact. A bot made from one keeps
the values as its business profile (``config["business"]``): ``POST /admin/{kind}/instances``
and ``PUT .../{id}`` take ``template`` and ``business``. Any signed-in user may list and
preview (a preview changes nothing).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict

from orchestrator import crud
from orchestrator.api.deps import CurrentUser
from shared.funnel.templates import BusinessProfile, TemplateError, list_templates

router = APIRouter(prefix="/admin/templates", tags=["templates"])

TemplatePath = Annotated[str, Path(max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]


class PreviewRequest(BaseModel):
    """``POST /admin/templates/{id}/preview`` body: the business's values."""

    model_config = ConfigDict(extra="forbid")

    business: BusinessProfile = BusinessProfile()


@router.get("")
def get_templates(
    user: CurrentUser, language: Annotated[Literal["en", "ru"], Query()] = "en"
) -> list[dict[str, Any]]:
    """Every template: id, title, description, the placeholders it uses and its languages."""
    return [t.as_dict() for t in list_templates(language)]


@router.post("/{template_id}/preview")
def preview_template(
    template_id: TemplatePath, body: PreviewRequest, user: CurrentUser
) -> dict[str, Any]:
    """The funnel the template makes with these values (nothing is stored)."""
    from shared.funnel.templates import get_template, render_template

    try:
        get_template(template_id)
    except TemplateError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    try:
        funnel = render_template(template_id, body.business)
    except TemplateError as exc:  # a shipped template that does not render: our bug, say so
        raise crud.FieldError(["body", "business"], str(exc)) from None
    return {"template": template_id, "business": body.business.model_dump(), "funnel": funnel}
