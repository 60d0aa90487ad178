"""Funnels: the built-in default funnel, and checking and previewing a funnel being edited.

The admin UI's funnel editor loads the default funnel here as a starting point (it reads it
here, never from the file: the UI is a pure client of this API), checks each edit with
``POST /admin/funnels/validate`` and shows what the customer would see with
``POST /admin/funnels/preview``. Both are read-only (nothing is stored or sent), so every role
may call them, guests included; a preview naming a bot needs a bot the caller may see.

* ``validate``: the body is the document itself. ``{"ok": true, "errors": []}`` for a usable
  funnel, else ``{"ok": false, "errors": [{"loc": [...], "msg": "..."}]}`` (``loc`` the path of
  the bad node, ``msg`` plain language; at most 100, then a count). A body that is not a JSON
  object: 422.
* ``preview``: :class:`PreviewRequest`; answers ``{"turns": [{"text", "payload", "replies",
  "handler", "needs_llm"}]}``, one turn per message, replies in the outbox's shape;
  ``needs_llm``: no funnel step took the message (the bot's AI would answer it). An invalid
  funnel: 422 with the problems, like ``PUT .../instances/{id}``.

The format and the editor: docs/funnels.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.api.deps import CurrentUser, SessionDep
from orchestrator.api.routes.instances import visible_instance
from orchestrator.schemas import Kind
from shared.funnel import default_funnel, load_funnel
from shared.funnel.editor import MAX_PREVIEW_STEPS, PreviewStep, check_document, preview

router = APIRouter(prefix="/admin/funnels", tags=["funnels"])


@router.get("/default")
def get_default_funnel(user: CurrentUser) -> dict[str, Any]:
    """The default funnel as a JSON document (the shape ``PUT .../instances/{id}`` takes in
    ``funnel``). Any signed-in user."""
    return default_funnel().to_dict()


@router.post("/validate")
def validate_funnel(
    user: CurrentUser, doc: Annotated[Any, Body(description="a funnel document")]
) -> dict[str, Any]:
    """Check a funnel document (the body) without storing it; problems in plain language."""
    if not isinstance(doc, dict):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "the body must be a funnel: a JSON object {...}"
        )
    _funnel, errors = check_document(doc)
    return {"ok": not errors, "errors": errors}


class PreviewMessage(BaseModel):
    """One customer message: typed ``text``, or a pressed button (``payload``, its title in
    ``text``)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=2000)
    payload: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _not_empty(self) -> PreviewMessage:
        if not self.text.strip() and not self.payload:
            raise ValueError("a message needs a text or a payload")
        return self


class PreviewRequest(BaseModel):
    """``POST /admin/funnels/preview`` body.

    ``funnel`` is the document to play (the one being edited); without it, the funnel of the
    bot named by ``kind`` and ``bot_id`` (its own, or the default one); with neither, the
    default funnel.
    """

    model_config = ConfigDict(extra="forbid")

    funnel: dict[str, Any] | None = None
    kind: Kind | None = None
    bot_id: str | None = Field(default=None, min_length=1, max_length=64)
    messages: list[PreviewMessage] = Field(min_length=1, max_length=MAX_PREVIEW_STEPS)
    name: str | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _bot_named_whole(self) -> PreviewRequest:
        if (self.kind is None) != (self.bot_id is None):
            raise ValueError("name the bot with both kind and bot_id")
        return self


@router.post("/preview")
def preview_funnel(body: PreviewRequest, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Play customer messages through a funnel on a fresh conversation; what the customer sees."""
    doc: dict[str, Any] | None = body.funnel
    if body.kind is not None and body.bot_id is not None:
        instance = visible_instance(session, body.kind, body.bot_id, user)
        if doc is None:
            doc = instance.config.get("funnel")
    if doc is None:
        funnel = load_funnel(None)
    else:
        checked, errors = check_document(doc)
        if checked is None:
            detail = [{"loc": ["body", "funnel", *e["loc"]], "msg": e["msg"]} for e in errors]
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
        funnel = checked
    steps = [PreviewStep(text=m.text, payload=m.payload) for m in body.messages]
    return {"turns": preview(funnel, steps, name=body.name)}
