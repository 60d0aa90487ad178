"""Callback ids: ``prefix:action[:arg...]``, at most 64 bytes (Telegram's ``callback_data``).

The vocabulary the engine understands (ids in braces come from the funnel):

=========  ==============================================================================
prefix     actions
=========  ==============================================================================
``nav``    ``menu`` (main menu), ``back`` (previous screen)
``sales``  ``quiz``, ``q:{question}``, ``ans:{question}:{option}``, ``seg:{segment}``,
           ``show:{screen}``, ``gpu``, ``gpu:{gpu}``, ``gpu:other``, ``discovery``, ``skip``,
           ``order:{product}``, ``manager``
``faq``    ``menu``, ``cat_{section}``, ``back_{section}``, ``{key}``
``tz``     ``start``, ``a:{step}:{option}``, ``more:{step}``, ``done:{step}``, ``skip``
=========  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.funnel.schema import Funnel

MAX_CALLBACK_BYTES = 64
PREFIXES = ("sales", "faq", "tz", "nav")
GPU_OTHER = "other"

Loc = list[str | int]


@dataclass(frozen=True, slots=True)
class Callback:
    """A parsed callback id."""

    prefix: str
    action: str
    args: tuple[str, ...] = ()

    def pack(self) -> str:
        """Return the callback id string."""
        return ":".join((self.prefix, self.action, *self.args))


def parse_callback(data: str | None) -> Callback | None:
    """Parse ``prefix:action[:arg...]``.

    Args:
        data: the payload of a button or list reply.

    Returns:
        The callback, or ``None`` when ``data`` is not in that form or has an unknown prefix.
    """
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    parts = data.strip().split(":")
    if len(parts) < 2 or parts[0] not in PREFIXES or not all(parts):
        return None
    return Callback(parts[0], parts[1], tuple(parts[2:]))


def make_callback(prefix: str, action: str, *args: str) -> str:
    """Build a callback id.

    Raises:
        ValueError: the id would exceed :data:`MAX_CALLBACK_BYTES` bytes or a part is empty.
    """
    if not all((prefix, action, *args)):
        raise ValueError("callback parts must not be empty")
    data = Callback(prefix, action, tuple(args)).pack()
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback id {data!r} exceeds {MAX_CALLBACK_BYTES} bytes")
    return data


def check_action(action: str, funnel: Funnel) -> str | None:
    """Check that a button's action resolves to something in ``funnel``.

    Returns:
        ``None`` when it does, else an error message saying what is wrong.
    """
    if len(action.encode()) > MAX_CALLBACK_BYTES:
        return f"callback id exceeds {MAX_CALLBACK_BYTES} bytes ({len(action.encode())})"
    cb = parse_callback(action)
    if cb is None:
        return f"not a callback id 'prefix:action[:arg]' with prefix one of {list(PREFIXES)}"
    checker = {"nav": _check_nav, "sales": _check_sales, "faq": _check_faq, "tz": _check_tz}
    return checker[cb.prefix](cb, funnel)


def _check_nav(cb: Callback, funnel: Funnel) -> str | None:
    if cb.action in ("menu", "back") and not cb.args:
        return None
    return f"unknown nav action {cb.pack()!r} (nav:menu, nav:back)"


def _check_sales(cb: Callback, funnel: Funnel) -> str | None:  # noqa: C901 - one branch per action
    a, args = cb.action, cb.args
    if a in ("quiz", "skip") and not args:
        return None
    if a == "q" and len(args) == 1:
        return None if funnel.question(args[0]) else f"unknown quiz question {args[0]!r}"
    if a == "ans" and len(args) == 2:
        question = funnel.question(args[0])
        if question is None:
            return f"unknown quiz question {args[0]!r}"
        if all(o.id != args[1] for o in question.options):
            return f"unknown option {args[1]!r} of quiz question {args[0]!r}"
        return None
    if a == "seg" and len(args) == 1:
        return None if args[0] in funnel.segments else f"unknown segment {args[0]!r}"
    if a == "show" and len(args) == 1:
        return None if args[0] in funnel.screens else f"unknown screen {args[0]!r}"
    if a == "gpu" and len(args) <= 1:
        if funnel.gpu_audit is None:
            return "the funnel has no gpu_audit"
        if args and args[0] != GPU_OTHER and all(g.id != args[0] for g in funnel.gpu_audit.gpus):
            return f"unknown gpu {args[0]!r}"
        return None
    if a == "discovery" and not args:
        return None if funnel.discovery else "the funnel has no discovery"
    if a == "order" and len(args) == 1:
        return _check_order(args[0], funnel)
    if a == "manager" and not args:
        return None if funnel.manager else "the funnel has no manager screen"
    return f"unknown sales action {cb.pack()!r}"


def _check_order(product_id: str, funnel: Funnel) -> str | None:
    product = funnel.products.get(product_id)
    if product is None:
        return f"unknown product {product_id!r}"
    if funnel.payment is None:
        return "the funnel has no payment section"
    if product.price is None and (funnel.quote is None or funnel.discovery is None):
        return f"product {product_id!r} is priced by quote but the funnel has no quote"
    return None


def _check_faq(cb: Callback, funnel: Funnel) -> str | None:
    if funnel.faq is None:
        return "the funnel has no faq"
    a = cb.action
    if cb.args:
        return f"unknown faq action {cb.pack()!r}"
    if a == "menu":
        return None
    for prefix in ("cat_", "back_"):
        if a.startswith(prefix):
            section = a.removeprefix(prefix)
            return None if funnel.faq_section(section) else f"unknown faq section {section!r}"
    return None if funnel.faq_item(a) else f"unknown faq key {a!r}"


def _check_tz(cb: Callback, funnel: Funnel) -> str | None:
    if funnel.tz is None:
        return "the funnel has no tz"
    a, args = cb.action, cb.args
    if a in ("start", "skip") and not args:
        return None
    if a in ("a", "more", "done") and args:
        step = funnel.tz_step(args[0])
        if step is None:
            return f"unknown tz step {args[0]!r}"
        if a == "a" and (len(args) != 2 or all(o.id != args[1] for o in step.options)):
            return f"unknown option of tz step {args[0]!r}"
        if a != "a" and len(args) != 1:
            return f"unknown tz action {cb.pack()!r}"
        return None
    return f"unknown tz action {cb.pack()!r}"


def generated_callbacks(funnel: Funnel) -> Iterator[tuple[Loc, str]]:
    """Yield every callback id the engine builds from funnel ids, with the node it comes from.

    Button actions written by the funnel author are not included; they are checked one by one.
    """
    yield ["welcome"], "nav:menu"
    for qi, question in enumerate(funnel.quiz.questions):
        yield ["quiz", "questions", qi, "id"], f"sales:q:{question.id}"
        for oi, option in enumerate(question.options):
            loc: Loc = ["quiz", "questions", qi, "options", oi, "id"]
            yield loc, f"sales:ans:{question.id}:{option.id}"
    for segment_id in funnel.segments:
        yield ["segments", segment_id], f"sales:seg:{segment_id}"
    for screen_id in funnel.screens:
        yield ["screens", screen_id], f"sales:show:{screen_id}"
    if funnel.gpu_audit is not None:
        for gi, gpu in enumerate(funnel.gpu_audit.gpus):
            yield ["gpu_audit", "gpus", gi, "id"], f"sales:gpu:{gpu.id}"
    for product_id in funnel.products:
        yield ["products", product_id], f"sales:order:{product_id}"
    if funnel.faq is not None:
        for si, section in enumerate(funnel.faq.sections):
            yield ["faq", "sections", si, "id"], f"faq:cat_{section.id}"
            yield ["faq", "sections", si, "id"], f"faq:back_{section.id}"
            for ii, item in enumerate(section.items):
                yield ["faq", "sections", si, "items", ii, "key"], f"faq:{item.key}"
    if funnel.tz is not None:
        for ti, step in enumerate(funnel.tz.steps):
            yield ["tz", "steps", ti, "id"], f"tz:more:{step.id}"
            yield ["tz", "steps", ti, "id"], f"tz:done:{step.id}"
            for oi, tz_option in enumerate(step.options):
                loc = ["tz", "steps", ti, "options", oi, "id"]
                yield loc, f"tz:a:{step.id}:{tz_option.id}"
