"""Owner answers → knowledge base (issue 13 item 6).

When a person resolves a handover on the Desk, the question that triggered it and what the
person wrote to the customer meanwhile become a *proposed* Q/A pair for the bot
(``answer_proposals`` in the orchestrator's database, one per handover). Accepting one (as it
is or edited) adds it to the bot's first linked knowledge base with ``add_qa`` (a base
"<bot> answers" is created and linked when the bot has none), so the extractive backend
answers the same question with the person's answer; dropping one discards it. The bot's
``handoff.auto_accept_answers`` accepts at resolve. RBAC as on the Desk: admins every bot,
users their own (another user's bot is 404), guests read-only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from orchestrator import crud
from orchestrator.api.ai_deps import AIDep, ai_errors
from orchestrator.api.deps import CurrentUser, SessionDep
from orchestrator.api.routes.conversations import KEY_PATH, bot_db_path
from orchestrator.api.routes.instances import ManagedInstance, VisibleInstance
from orchestrator.models import AnswerProposal, BotInstance, KnowledgeBase, User, utcnow
from orchestrator.settings import Settings
from shared.store.reader import get_handover, handover_replies

logger = logging.getLogger(__name__)

router = APIRouter(tags=["handovers"])

ProposalStatus = Literal["proposed", "accepted", "dropped"]
ProposalId = Annotated[int, Path(ge=1, le=2**53)]
#: Handover reasons whose triggering message is a customer's question (asking for a person,
#: the manager button, an operator or the business phone starting the conversation are not).
QUESTION_REASONS = ("llm_escalate", "frustration")
#: Longest question / answer kept (the answer: every reply of the handover, joined).
MAX_QUESTION = 2000
MAX_ANSWER = 8000


class ProposalAccept(BaseModel):
    """``POST .../accept``: optionally an edited question and answer."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(default=None, max_length=MAX_QUESTION)
    answer: str | None = Field(default=None, max_length=MAX_ANSWER)


def _public(p: AnswerProposal, bot: BotInstance | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "bot_id": p.bot_id,
        "handover_id": p.handover_id,
        "customer_key": p.customer_key,
        "question": p.question,
        "answer": p.answer,
        "answered_by": p.answered_by,
        "status": p.status,
        "kb_id": p.kb_id,
        "decided_by": p.decided_by,
        "created_at": p.created_at.isoformat(),
        "decided_at": p.decided_at.isoformat() if p.decided_at else None,
    }
    if bot is not None:
        out["bot_kind"] = bot.kind
        out["bot_name"] = bot.name
    return out


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def propose_from_handover(
    session: Session, settings: Settings, instance: BotInstance, handover_id: int
) -> AnswerProposal | None:
    """Record a resolved handover's question and the person's replies as a proposal (``None``
    when it was not opened by a question (:data:`QUESTION_REASONS`) or nobody wrote to the
    customer; the existing one when the handover already has one)."""
    existing = session.exec(
        select(AnswerProposal).where(
            AnswerProposal.bot_id == instance.id, AnswerProposal.handover_id == handover_id
        )
    ).first()
    if existing is not None:
        return existing
    path = bot_db_path(settings, instance.kind, instance.id)
    handover = get_handover(path, handover_id)
    if handover is None or handover.get("reason") not in QUESTION_REASONS:
        return None
    question = str(handover.get("question") or "").strip()[:MAX_QUESTION]
    answer = "\n".join(handover_replies(path, handover_id)).strip()[:MAX_ANSWER]
    if not question or not answer:
        return None
    proposal = AnswerProposal(
        bot_id=instance.id,
        handover_id=handover_id,
        customer_key=str(handover.get("customer_key") or "")[:200],
        question=question,
        answer=answer,
        answered_by=str(handover.get("assignee") or handover.get("closed_by") or "")[:200],
        created_at=utcnow(),
    )
    session.add(proposal)
    session.commit()
    session.refresh(proposal)
    return proposal


def _answers_base(session: Session, instance: BotInstance) -> str | None:
    """The bot's first linked knowledge base that still exists (``None``: none)."""
    for kb_id in (instance.config or {}).get("knowledge_base_ids") or []:
        if session.get(KnowledgeBase, str(kb_id)) is not None:
            return str(kb_id)
    return None


async def accept_proposal(
    session: Session,
    ai: Any,
    instance: BotInstance,
    proposal: AnswerProposal,
    *,
    by: str,
    question: str | None = None,
    answer: str | None = None,
) -> AnswerProposal:
    """Add the (edited) pair to the bot's knowledge base and mark the proposal accepted."""
    q = (question if question is not None else proposal.question).strip()
    a = (answer if answer is not None else proposal.answer).strip()
    if not q:
        raise crud.FieldError(["body", "question"], "the question is empty")
    if not a:
        raise crud.FieldError(["body", "answer"], "the answer is empty")
    kb_id = _answers_base(session, instance)
    if kb_id is None:
        kb_id = crud.new_random_id(session=session, kind="kb")
        name = f"{instance.name} answers"[:200]
        with ai_errors():
            await ai.kb.create(name, kb_id=kb_id)
        session.add(
            KnowledgeBase(id=kb_id, name=name, owner_id=instance.owner_id, created_at=utcnow())
        )
        config = dict(instance.config or {})
        config["knowledge_base_ids"] = [kb_id, *(config.get("knowledge_base_ids") or [])]
        instance.config = config
        instance.updated_at = utcnow()
        session.add(instance)
        session.commit()
    with ai_errors():
        await ai.kb.add_qa(kb_id, q, a)
    proposal.question, proposal.answer = q, a
    proposal.status = "accepted"
    proposal.kb_id = kb_id
    proposal.decided_by = by[:64]
    proposal.decided_at = utcnow()
    session.add(proposal)
    session.commit()
    session.refresh(proposal)
    return proposal


def auto_accept(instance: BotInstance) -> bool:
    """Whether the bot accepts proposals at resolve (``handoff.auto_accept_answers``)."""
    handoff = (instance.config or {}).get("handoff")
    return isinstance(handoff, dict) and handoff.get("auto_accept_answers") is True


def _visible_bots(session: Session, user: User) -> list[BotInstance]:
    owner = user.id if user.role == "user" else None
    return list(crud.list_instances(session=session, owner_id=owner))


@router.get("/admin/answer-proposals")
def list_all_proposals(
    session: SessionDep,
    user: CurrentUser,
    status_: Annotated[list[ProposalStatus] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Proposals (default: ``proposed``) across the bots the caller may see, newest first."""
    bots = {b.id: b for b in _visible_bots(session, user)}
    if not bots:
        return []
    statuses = list(dict.fromkeys(status_ or ["proposed"]))
    rows = session.exec(
        select(AnswerProposal)
        .where(col(AnswerProposal.bot_id).in_(list(bots)))
        .where(col(AnswerProposal.status).in_(statuses))
        .order_by(col(AnswerProposal.id).desc())
        .limit(limit)
    ).all()
    return [_public(p, bots[p.bot_id]) for p in rows]


@router.get(f"{KEY_PATH}/answer-proposals")
def list_bot_proposals(
    session: SessionDep,
    instance: VisibleInstance,
    status_: Annotated[list[ProposalStatus] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """One bot's proposals (default: every status), newest first."""
    statuses = list(dict.fromkeys(status_ or ["proposed", "accepted", "dropped"]))
    rows = session.exec(
        select(AnswerProposal)
        .where(AnswerProposal.bot_id == instance.id)
        .where(col(AnswerProposal.status).in_(statuses))
        .order_by(col(AnswerProposal.id).desc())
        .limit(limit)
    ).all()
    return [_public(p, instance) for p in rows]


def _open_proposal(session: Session, instance: BotInstance, proposal_id: int) -> AnswerProposal:
    proposal = session.get(AnswerProposal, proposal_id)
    if proposal is None or proposal.bot_id != instance.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no answer proposal {proposal_id}")
    if proposal.status != "proposed":
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"answer proposal {proposal_id} is {proposal.status}"
        )
    return proposal


def _accepting(request: Request, bot_id: str) -> asyncio.Lock:
    """One accept at a time per bot (and a fresh look at the proposal inside it). The locks are
    kept per app: an asyncio lock belongs to the event loop it was first awaited on."""
    locks: dict[str, asyncio.Lock] | None = getattr(request.app.state, "answer_accepting", None)
    if locks is None:
        locks = request.app.state.answer_accepting = {}
    return locks.setdefault(bot_id, asyncio.Lock())


@router.post(f"{KEY_PATH}/answer-proposals/{{proposal_id}}/accept")
async def accept(
    request: Request,
    session: SessionDep,
    instance: ManagedInstance,
    user: CurrentUser,
    ai: AIDep,
    proposal_id: ProposalId,
    body: ProposalAccept | None = None,
) -> dict[str, Any]:
    """Add the pair (optionally edited) to the bot's knowledge base."""
    body = body or ProposalAccept()
    async with _accepting(request, instance.id):
        # Two clicks at once add the pair once: the second finds it accepted (409).
        proposal = _open_proposal(session, instance, proposal_id)
        proposal = await accept_proposal(
            session,
            ai,
            instance,
            proposal,
            by=user.username,
            question=body.question,
            answer=body.answer,
        )
    crud.audit(
        session=session,
        actor=user,
        action="answer_proposal.accept",
        object_type="instance",
        object_id=instance.id,
        detail={"proposal_id": proposal_id, "kb_id": proposal.kb_id},
    )
    logger.info("answer proposal accepted", extra={"bot_id": instance.id, "id": proposal_id})
    return _public(proposal, instance)


@router.post(f"{KEY_PATH}/answer-proposals/{{proposal_id}}/drop")
def drop(
    session: SessionDep, instance: ManagedInstance, user: CurrentUser, proposal_id: ProposalId
) -> dict[str, Any]:
    """Discard a proposal."""
    proposal = _open_proposal(session, instance, proposal_id)
    proposal.status = "dropped"
    proposal.decided_by = user.username[:64]
    proposal.decided_at = utcnow()
    session.add(proposal)
    session.commit()
    session.refresh(proposal)
    logger.info("answer proposal dropped", extra={"bot_id": instance.id, "id": proposal_id})
    return _public(proposal, instance)


async def after_resolve(
    request: Request, session: Session, ai_getter: Any, instance: BotInstance, handover_id: int
) -> dict[str, Any] | None:
    """Called by the resolve route once the bot resolved the handover: the proposal (accepted
    at once with ``auto_accept_answers``), or ``None``. Never fails the resolve."""
    try:
        proposal = propose_from_handover(session, _settings(request), instance, handover_id)
        if proposal is None:
            return None
        if proposal.status == "proposed" and auto_accept(instance):
            try:
                proposal = await accept_proposal(
                    session, ai_getter(), instance, proposal, by="auto"
                )
            except HTTPException as exc:
                logger.warning(
                    "auto-accepting an answer failed",
                    extra={"bot_id": instance.id, "detail": str(exc.detail)},
                )
        return _public(proposal, instance)
    except Exception:  # the handover is resolved either way; the proposal is a bonus
        logger.exception("proposing the answer failed", extra={"bot_id": instance.id})
        return None
