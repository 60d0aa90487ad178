"""``sales:*``: the quiz, segment paths, the GPU audit, the custom discovery, quotes, orders."""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import quote_plus

from shared.channels.base import Button, ListRow, Reply, TextReply
from shared.funnel.callbacks import GPU_OTHER
from shared.funnel.sales import (
    audit_gpu,
    calculate_quote,
    determine_segment,
    find_gpu,
    segment_scores,
)
from shared.funnel.schema import QuizQuestion
from shared.funnel.text import format_money, render
from shared.funnel.validation import GPU_CUSTOM_STATE
from shared.routing.context import (
    MAX_FREE_TEXT,
    StaleCallback,
    Turn,
    list_reply,
    main_menu_button,
    main_menu_reply,
    plain,
    text_with_buttons,
    to_buttons,
)

logger = logging.getLogger(__name__)

QUOTE_KEY = "quote"


def handle(turn: Turn, action: str, args: tuple[str, ...]) -> list[Reply]:  # noqa: C901
    """Dispatch one ``sales:*`` callback; raises :class:`StaleCallback` when it does not apply."""
    funnel = turn.funnel
    match action, args:
        case "quiz", ():
            turn.handler = "start_quiz"
            return start_quiz(turn)
        case "q", (question_id,):
            question = funnel.question(question_id)
            if question is None:
                raise StaleCallback
            turn.handler = "show_question"
            return [show_question(turn, question)]
        case "ans", (question_id, option_id):
            turn.handler = "answer_quiz"
            return answer_quiz(turn, question_id, option_id)
        case "seg", (segment_id,):
            turn.handler = "show_segment"
            return [show_segment(turn, segment_id)]
        case "show", (screen_id,):
            turn.handler = "show_screen"
            return [show_screen(turn, screen_id)]
        case "gpu", ():
            turn.handler = "show_gpu_audit"
            return [show_gpu_audit(turn)]
        case "gpu", (gpu_id,):
            turn.handler = "audit_gpu_choice"
            return [audit_gpu_choice(turn, gpu_id)]
        case "discovery", ():
            turn.handler = "start_discovery"
            return start_discovery(turn)
        case "skip", ():
            turn.handler = "skip_discovery_step"
            return skip_discovery_step(turn)
        case "order", (product_id,):
            turn.handler = "show_order"
            return show_order(turn, product_id)
        case "manager", ():
            turn.handler = "show_manager"
            return [show_manager(turn)]
    raise StaleCallback


# --- quiz -------------------------------------------------------------------------------------


def start_quiz(turn: Turn) -> list[Reply]:
    """Start (or restart) the quiz at its first question."""
    turn.state.answers = {}
    turn.event("quiz_started")
    quiz = turn.funnel.quiz
    return [show_question(turn, quiz.questions[0], intro=quiz.intro)]


def show_question(turn: Turn, question: QuizQuestion, intro: str | None = None) -> Reply:
    """A quiz question as a list message."""
    quiz = turn.funnel.quiz
    n = next(i for i, q in enumerate(quiz.questions, 1) if q.id == question.id)
    header = render(quiz.header, {"n": n, "total": len(quiz.questions)})
    text = f"{header}\n\n{question.text}"
    if intro:
        text = f"{intro}\n\n{text}"
    rows = [
        ListRow(id=f"sales:ans:{question.id}:{o.id}", title=o.title, description=o.description)
        for o in question.options
    ]
    turn.push_view(f"sales:q:{question.id}")
    return list_reply(turn, text, plain(header), rows, [])


def answer_quiz(turn: Turn, question_id: str, option_id: str) -> list[Reply]:
    """Record an answer; ask the next unanswered question, or show the segment once done."""
    funnel = turn.funnel
    question = funnel.question(question_id)
    if question is None or all(o.id != option_id for o in question.options):
        raise StaleCallback
    turn.state.answers[question_id] = option_id
    turn.event("quiz_answer", question=question_id, option=option_id)
    pending = [q for q in funnel.quiz.questions if q.id not in turn.state.answers]
    if pending:
        return [show_question(turn, pending[0])]
    segment = determine_segment(turn.state.answers, funnel)
    turn.state.segment = segment
    scores = segment_scores(turn.state.answers, funnel)
    turn.event("segment", segment=segment, scores=scores, answers=dict(turn.state.answers))
    return [show_segment(turn, segment, result=True)]


def show_segment(turn: Turn, segment_id: str, *, result: bool = False) -> Reply:
    """The first screen of a segment's path; ``result`` prefixes "your best fit is ..."."""
    segment = turn.funnel.segments.get(segment_id)
    screen = turn.funnel.screens.get(segment.screen) if segment else None
    if segment is None or screen is None:
        raise StaleCallback
    text = screen.text
    if result:
        lead = render(turn.funnel.segmentation.result, {"segment": segment.title})
        text = f"{lead}\n\n{text}"
    turn.push_view(f"sales:seg:{segment_id}")
    return text_with_buttons(text, to_buttons(screen.buttons))


def show_screen(turn: Turn, screen_id: str) -> Reply:
    """Any screen of the funnel (``sales:show:{screen}``)."""
    screen = turn.funnel.screens.get(screen_id)
    if screen is None:
        raise StaleCallback
    turn.push_view(f"sales:show:{screen_id}")
    return text_with_buttons(screen.text, to_buttons(screen.buttons))


# --- GPU audit (DIY) ----------------------------------------------------------------------------


def show_gpu_audit(turn: Turn, text: str | None = None) -> Reply:
    """The GPU list, with a row for typing a GPU that is not listed."""
    audit = turn.funnel.gpu_audit
    if audit is None:
        raise StaleCallback
    rows = [ListRow(id=f"sales:gpu:{g.id}", title=g.title) for g in audit.gpus]
    rows.append(ListRow(id=f"sales:gpu:{GPU_OTHER}", title=audit.other_title))
    nav = [ListRow(id=main_menu_button(turn.funnel).id, title=turn.funnel.texts.main_menu)]
    turn.push_view("sales:gpu")
    title = plain(audit.prompt.splitlines()[0])
    return list_reply(turn, text or audit.prompt, title, rows, nav)


def audit_gpu_choice(turn: Turn, gpu_id: str) -> Reply:
    """Verdict for a listed GPU, or ask for the model as free text (``diy_gpu_custom``)."""
    audit = turn.funnel.gpu_audit
    if audit is None:
        raise StaleCallback
    if gpu_id == GPU_OTHER:
        turn.state.funnel_state = GPU_CUSTOM_STATE
        cancel = Button(id="nav:menu", title=turn.funnel.texts.cancel)
        return text_with_buttons(audit.custom_prompt, [cancel])
    gpu = next((g for g in audit.gpus if g.id == gpu_id), None)
    if gpu is None:
        raise StaleCallback
    return _verdict(turn, gpu.title, gpu.vram_gb)


def answer_gpu_text(turn: Turn, text: str) -> list[Reply]:
    """The ``diy_gpu_custom`` step: recognise a typed GPU, or offer the list again."""
    turn.state.funnel_state = None
    found = find_gpu(text, turn.funnel)
    if found is None:
        turn.event("gpu_audit", typed=text[:200], recognised=False)
        audit = turn.funnel.gpu_audit
        return [show_gpu_audit(turn, audit.unknown if audit else None)]
    return [_verdict(turn, *found)]


def _verdict(turn: Turn, name: str, vram_gb: float) -> Reply:
    verdict = audit_gpu(name, vram_gb, turn.funnel)
    turn.event("gpu_audit", gpu=name, vram_gb=vram_gb, tier=verdict.tier.min_vram_gb)
    audit = turn.funnel.gpu_audit
    return text_with_buttons(verdict.text, to_buttons(audit.buttons if audit else []))


# --- custom discovery and quote ----------------------------------------------------------------


def start_discovery(turn: Turn) -> list[Reply]:
    """Start the custom discovery at its first free-text step."""
    discovery = turn.funnel.discovery
    if discovery is None:
        raise StaleCallback
    turn.state.discovery = {}
    turn.event("discovery_started")
    return [_ask_discovery_step(turn, 0, intro=discovery.intro)]


def _ask_discovery_step(turn: Turn, index: int, intro: str | None = None) -> Reply:
    discovery = turn.funnel.discovery
    if discovery is None:
        raise StaleCallback
    step = discovery.steps[index]
    turn.state.funnel_state = step.id
    header = render(discovery.header, {"n": index + 1, "total": len(discovery.steps)})
    text = f"{header}\n\n{step.text}"
    if intro:
        text = f"{intro}\n\n{text}"
    texts = turn.funnel.texts
    buttons = [
        Button(id="sales:skip", title=texts.skip),
        Button(id="nav:menu", title=texts.cancel),
    ]
    return text_with_buttons(text, buttons)


def answer_discovery(turn: Turn, step_id: str, text: str) -> list[Reply]:
    """A discovery step took free text: store it, then ask the next step or give the quote."""
    turn.state.discovery[step_id] = text.strip()[:MAX_FREE_TEXT]
    turn.event("discovery_answer", step=step_id, skipped=not text.strip())
    return _next_discovery_step(turn, step_id)


def skip_discovery_step(turn: Turn) -> list[Reply]:
    """``sales:skip`` while a discovery step waits: leave it empty and move on."""
    step_id = turn.state.funnel_state
    if step_id is None or turn.funnel.discovery_step(step_id) is None:
        raise StaleCallback
    return answer_discovery(turn, step_id, "")


def _next_discovery_step(turn: Turn, step_id: str) -> list[Reply]:
    discovery = turn.funnel.discovery
    if discovery is None:
        raise StaleCallback
    ids = [s.id for s in discovery.steps]
    index = ids.index(step_id) + 1
    if index < len(ids):
        return [_ask_discovery_step(turn, index)]
    turn.state.funnel_state = None
    turn.event("discovery_done", discovery=dict(turn.state.discovery))
    pricing = turn.funnel.quote
    if pricing is None:
        return [main_menu_reply(turn, discovery.done)]
    quote = calculate_quote(turn.state.discovery, turn.funnel)
    turn.state.data[QUOTE_KEY] = quote.as_dict()
    turn.event("quote", **quote.as_dict())
    alternatives = pricing.alternatives
    return [
        TextReply(text=f"{discovery.done}\n\n{quote.text}"),
        text_with_buttons(alternatives.text, to_buttons(alternatives.buttons)),
    ]


# --- orders and the manager --------------------------------------------------------------------


def show_order(turn: Turn, product_id: str) -> list[Reply]:
    """The payment link for a product (a quote-priced product takes the quote's deposit)."""
    funnel = turn.funnel
    product = funnel.products.get(product_id)
    payment = funnel.payment
    if product is None or payment is None:
        raise StaleCallback
    amount = product.price
    if amount is None:
        saved = turn.state.data.get(QUOTE_KEY) or {}
        amount = saved.get("deposit") if isinstance(saved, dict) else None
        if not amount:
            if funnel.discovery is None:
                raise StaleCallback
            return [TextReply(text=payment.no_quote), *start_discovery(turn)]
    label = product_id if turn.customer_ref is None else f"{product_id}-{_ref(turn.customer_ref)}"
    url = render(
        payment.url_template,
        {
            "receiver": quote_plus(payment.receiver),
            "amount": quote_plus(f"{float(amount):.2f}"),
            "label": quote_plus(label),
            "target": quote_plus(product.title),
        },
    )
    money = format_money(float(amount), funnel.currency, funnel.thousands_separator)
    turn.event("order", product=product_id, amount=amount, label=label, url=url)
    text = render(payment.order_text, {"product": product.title, "amount": money, "url": url})
    return [text_with_buttons(text, to_buttons(payment.buttons))]


def _ref(customer_ref: str) -> str:
    # A payment label travels to the payment provider: a hash, not the phone number itself.
    return hashlib.sha256(customer_ref.encode()).hexdigest()[:10]


def show_manager(turn: Turn) -> Reply:
    """How to reach a person; the ``manager_requested`` event lets the runtime alert one."""
    manager = turn.funnel.manager
    if manager is None:
        raise StaleCallback
    turn.event("manager_requested")
    return text_with_buttons(manager.text, to_buttons(manager.buttons))
