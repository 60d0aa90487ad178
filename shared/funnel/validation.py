"""Loading and validating funnel documents.

Shape errors come from pydantic; this module adds the checks that span nodes (a button pointing
to an FAQ key that does not exist, a segment without a screen, a callback id over 64 bytes...)
and reports every problem at once, each with the path of the bad node.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any, TypedDict

from pydantic import ValidationError

from shared.funnel.callbacks import (
    GPU_OTHER,
    MAX_CALLBACK_BYTES,
    Loc,
    check_action,
    generated_callbacks,
)
from shared.funnel.schema import ButtonSpec, Funnel
from shared.funnel.text import normalize

logger = logging.getLogger(__name__)

GPU_CUSTOM_STATE = "diy_gpu_custom"
"""``funnel_state`` while the DIY GPU audit waits for a typed GPU model."""

TZ_STATE_PREFIX = "tz_"
"""``funnel_state`` of a free-text spec step is ``tz_{step id}``."""


class FunnelError(TypedDict):
    """One problem: where (``loc``, a path into the document) and what (``msg``)."""

    loc: list[str | int]
    msg: str


class FunnelValidationError(ValueError):
    """A funnel document is not valid.

    Attributes:
        errors: every problem found, e.g.
            ``{"loc": ["quiz", "questions", 2, "options"], "msg": "..."}``.
    """

    def __init__(self, errors: list[FunnelError]) -> None:
        self.errors = errors
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]
        )
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"invalid funnel: {summary}{more}")


def load_funnel(source: Funnel | Mapping[str, Any] | str | None) -> Funnel:
    """Return a validated funnel.

    Args:
        source: ``None`` for the default funnel, a funnel dict (as stored on the instance), its
            JSON text, or an already loaded :class:`Funnel`.

    Returns:
        The funnel.

    Raises:
        FunnelValidationError: the document is invalid; ``.errors`` points at every bad node.
    """
    if source is None:
        return default_funnel()
    if isinstance(source, Funnel):
        return source
    if isinstance(source, str):
        try:
            source = json.loads(source)
        except json.JSONDecodeError as exc:
            raise FunnelValidationError([{"loc": [], "msg": f"not JSON: {exc}"}]) from exc
    if not isinstance(source, Mapping):
        raise FunnelValidationError([{"loc": [], "msg": "a funnel must be a JSON object"}])
    try:
        funnel = Funnel.model_validate(dict(source))
    except ValidationError as exc:
        raise FunnelValidationError(
            [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        ) from exc
    errors = check_funnel(funnel)
    if errors:
        raise FunnelValidationError(errors)
    return funnel


@lru_cache(maxsize=1)
def default_funnel() -> Funnel:
    """Return the default funnel (seed 004), shipped as ``shared/funnel/default_funnel.json``.

    The result is cached and immutable.
    """
    text = resources.files("shared.funnel").joinpath("default_funnel.json").read_text("utf-8")
    return load_funnel(json.loads(text))


def check_funnel(funnel: Funnel) -> list[FunnelError]:
    """Run the cross-node checks on a funnel whose shape is already valid.

    Returns:
        The problems found (empty when the funnel is usable).
    """
    errors: list[FunnelError] = []

    def err(loc: Loc, msg: str) -> None:
        errors.append({"loc": list(loc), "msg": msg})

    _check_buttons(funnel, err)
    _check_ids(funnel, err)
    _check_segments(funnel, err)
    _check_steps(funnel, err)
    for loc, data in generated_callbacks(funnel):
        if len(data.encode()) > MAX_CALLBACK_BYTES:
            err(loc, f"makes callback id {data!r} longer than {MAX_CALLBACK_BYTES} bytes")
    for i, word in enumerate(funnel.greetings.words):
        if not normalize(word):
            err(["greetings", "words", i], "a greeting must contain a letter or digit")
    return errors


def _buttons(funnel: Funnel) -> Iterable[tuple[Loc, ButtonSpec]]:
    for i, b in enumerate(funnel.welcome):
        yield ["welcome", i], b
    for screen_id, screen in funnel.screens.items():
        for i, b in enumerate(screen.buttons):
            yield ["screens", screen_id, "buttons", i], b
    if funnel.gpu_audit:
        for i, b in enumerate(funnel.gpu_audit.buttons):
            yield ["gpu_audit", "buttons", i], b
    if funnel.quote:
        for i, b in enumerate(funnel.quote.alternatives.buttons):
            yield ["quote", "alternatives", "buttons", i], b
    if funnel.payment:
        for i, b in enumerate(funnel.payment.buttons):
            yield ["payment", "buttons", i], b
    if funnel.manager:
        for i, b in enumerate(funnel.manager.buttons):
            yield ["manager", "buttons", i], b
    if funnel.faq:
        for si, section in enumerate(funnel.faq.sections):
            for ii, item in enumerate(section.items):
                for i, b in enumerate(item.buttons):
                    yield ["faq", "sections", si, "items", ii, "buttons", i], b
    if funnel.tz:
        for i, b in enumerate(funnel.tz.done_buttons):
            yield ["tz", "done_buttons", i], b


def _check_buttons(funnel: Funnel, err: Any) -> None:
    for loc, button in _buttons(funnel):
        problem = check_action(button.action, funnel)
        if problem:
            err([*loc, "action"], problem)


def _duplicates(ids: Iterable[str]) -> set[str]:
    return {k for k, n in Counter(ids).items() if n > 1}


def _check_ids(funnel: Funnel, err: Any) -> None:
    questions = funnel.quiz.questions
    for qi in _dup_positions([q.id for q in questions]):
        err(["quiz", "questions", qi, "id"], f"duplicate question id {questions[qi].id!r}")
    for qi, q in enumerate(questions):
        for oi in _dup_positions([o.id for o in q.options]):
            err(["quiz", "questions", qi, "options", oi, "id"], "duplicate option id")
    if funnel.faq:
        sections = funnel.faq.sections
        for si in _dup_positions([s.id for s in sections]):
            err(["faq", "sections", si, "id"], f"duplicate section id {sections[si].id!r}")
        seen: set[str] = set()
        for si, section in enumerate(sections):
            for ii, item in enumerate(section.items):
                loc: Loc = ["faq", "sections", si, "items", ii, "key"]
                if item.key in seen:
                    err(loc, f"duplicate faq key {item.key!r}")
                seen.add(item.key)
                if item.key == "menu" or item.key.startswith(("cat_", "back_")):
                    err(loc, "faq keys may not be 'menu' or start with 'cat_' / 'back_'")
    if funnel.gpu_audit:
        gpus = funnel.gpu_audit.gpus
        for gi in _dup_positions([g.id for g in gpus]):
            err(["gpu_audit", "gpus", gi, "id"], f"duplicate gpu id {gpus[gi].id!r}")
        for gi, gpu in enumerate(gpus):
            if gpu.id == GPU_OTHER:
                err(["gpu_audit", "gpus", gi, "id"], f"{GPU_OTHER!r} is reserved")
    if funnel.tz:
        steps = funnel.tz.steps
        for ti in _dup_positions([s.id for s in steps]):
            err(["tz", "steps", ti, "id"], f"duplicate tz step id {steps[ti].id!r}")
        for ti, step in enumerate(steps):
            for oi in _dup_positions([o.id for o in step.options]):
                err(["tz", "steps", ti, "options", oi, "id"], "duplicate option id")


def _dup_positions(ids: list[str]) -> list[int]:
    dups = _duplicates(ids)
    seen: set[str] = set()
    positions = []
    for i, value in enumerate(ids):
        if value in dups and value in seen:
            positions.append(i)
        seen.add(value)
    return positions


def _check_segments(funnel: Funnel, err: Any) -> None:
    segments = funnel.segments
    for segment_id, segment in segments.items():
        if segment.screen not in funnel.screens:
            err(["segments", segment_id, "screen"], f"unknown screen {segment.screen!r}")
    if funnel.segmentation.default not in segments:
        err(["segmentation", "default"], f"unknown segment {funnel.segmentation.default!r}")
    for i, segment_id in enumerate(funnel.segmentation.tie_break):
        if segment_id not in segments:
            err(["segmentation", "tie_break", i], f"unknown segment {segment_id!r}")
    for qi, q in enumerate(funnel.quiz.questions):
        for oi, option in enumerate(q.options):
            for segment_id in option.weights:
                if segment_id not in segments:
                    loc: Loc = ["quiz", "questions", qi, "options", oi, "weights", segment_id]
                    err(loc, f"unknown segment {segment_id!r}")


def _check_steps(funnel: Funnel, err: Any) -> None:
    states: dict[str, Loc] = {}
    if funnel.gpu_audit:
        states[GPU_CUSTOM_STATE] = ["gpu_audit"]
    discovery_ids: set[str] = set()
    if funnel.discovery:
        for i, step in enumerate(funnel.discovery.steps):
            loc: Loc = ["discovery", "steps", i, "id"]
            if step.id in states:
                err(loc, f"funnel_state {step.id!r} is used twice")
            states[step.id] = loc
            discovery_ids.add(step.id)
    if funnel.tz:
        for i, tz_step in enumerate(funnel.tz.steps):
            loc = ["tz", "steps", i]
            if tz_step.kind == "text":
                if tz_step.options:
                    err([*loc, "options"], "a text step has no options")
                state = TZ_STATE_PREFIX + tz_step.id
                if state in states:
                    err([*loc, "id"], f"funnel_state {state!r} is used twice")
                states[state] = loc
            elif not tz_step.options:
                err([*loc, "options"], f"a {tz_step.kind} step needs at least one option")
    if funnel.quote is not None:
        if funnel.discovery is None:
            err(["quote"], "a quote needs a discovery section")
            return
        for i, component in enumerate(funnel.quote.components):
            if component.step not in discovery_ids:
                err(
                    ["quote", "components", i, "step"],
                    f"unknown discovery step {component.step!r}",
                )
            if component.kind == "keywords" and not component.keywords:
                err(["quote", "components", i, "keywords"], "a keywords component needs keywords")
        for i, multiplier in enumerate(funnel.quote.multipliers):
            if multiplier.step not in discovery_ids:
                loc = ["quote", "multipliers", i, "step"]
                err(loc, f"unknown discovery step {multiplier.step!r}")
