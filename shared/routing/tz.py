"""``tz:*``: the spec (TZ) generator: collects requirements step by step, returns a spec text."""

from __future__ import annotations

import logging

from shared.channels.base import Button, ListRow, Reply
from shared.funnel.schema import Tz, TzStep
from shared.funnel.text import render
from shared.funnel.validation import TZ_STATE_PREFIX
from shared.routing.context import (
    MAX_FREE_TEXT,
    StaleCallback,
    Turn,
    list_reply,
    plain,
    text_with_buttons,
    to_buttons,
)

logger = logging.getLogger(__name__)

TZ_KEY = "tz"
MAX_BUTTON_OPTIONS = 3
"""Up to this many options are sent as buttons, more as a list."""


def handle(turn: Turn, action: str, args: tuple[str, ...]) -> list[Reply]:
    """Dispatch one ``tz:*`` callback; raises :class:`StaleCallback` when it does not apply."""
    tz = turn.funnel.tz
    if tz is None:
        raise StaleCallback
    match action, args:
        case "start", ():
            turn.handler = "start_tz"
            turn.state.data[TZ_KEY] = {}
            turn.event("tz_started")
            return [_ask(turn, tz, 0, intro=tz.intro)]
        case "a", (step_id, option_id):
            turn.handler = "choose_tz_option"
            return choose_option(turn, tz, step_id, option_id)
        case "more", (step_id,):
            step = turn.funnel.tz_step(step_id)
            if step is None or step.kind != "multi":
                raise StaleCallback
            turn.handler = "show_tz_step"
            return [_ask(turn, tz, _index(tz, step_id))]
        case "done", (step_id,):
            if turn.funnel.tz_step(step_id) is None:
                raise StaleCallback
            turn.handler = "finish_tz_step"
            return _next(turn, tz, step_id)
        case "skip", ():
            step = _text_step(turn)
            if step is None or not step.optional:
                raise StaleCallback
            turn.handler = "skip_tz_step"
            return answer_text(turn, step, "")
    raise StaleCallback


def text_step_for_state(turn: Turn, funnel_state: str) -> TzStep | None:
    """The free-text spec step a ``funnel_state`` (``tz_{step}``) names, if any."""
    if not funnel_state.startswith(TZ_STATE_PREFIX):
        return None
    step = turn.funnel.tz_step(funnel_state.removeprefix(TZ_STATE_PREFIX))
    return step if step is not None and step.kind == "text" else None


def _text_step(turn: Turn) -> TzStep | None:
    state = turn.state.funnel_state
    return text_step_for_state(turn, state) if state else None


def _collected(turn: Turn) -> dict[str, object]:
    collected = turn.state.data.get(TZ_KEY)
    if not isinstance(collected, dict):
        collected = {}
        turn.state.data[TZ_KEY] = collected
    return collected


def _index(tz: Tz, step_id: str) -> int:
    return next(i for i, s in enumerate(tz.steps) if s.id == step_id)


def _ask(turn: Turn, tz: Tz, index: int, intro: str | None = None) -> Reply:
    step = tz.steps[index]
    header = render(tz.header, {"n": index + 1, "total": len(tz.steps)})
    text = f"{header}\n\n{step.text}"
    if intro:
        text = f"{intro}\n\n{text}"
    texts = turn.funnel.texts
    if step.kind == "text":
        turn.state.funnel_state = TZ_STATE_PREFIX + step.id
        buttons = [Button(id="tz:skip", title=texts.skip)] if step.optional else []
        buttons.append(Button(id="nav:menu", title=texts.cancel))
        return text_with_buttons(text, buttons)
    chosen = _collected(turn).get(step.id) if step.kind == "multi" else None
    taken = set(chosen) if isinstance(chosen, list) else set()
    options = [o for o in step.options if o.id not in taken]
    if len(options) <= MAX_BUTTON_OPTIONS:
        buttons = [Button(id=f"tz:a:{step.id}:{o.id}", title=o.title) for o in options]
        return text_with_buttons(text, buttons)
    rows = [ListRow(id=f"tz:a:{step.id}:{o.id}", title=o.title) for o in options]
    return list_reply(turn, text, plain(header), rows, [])


def choose_option(turn: Turn, tz: Tz, step_id: str, option_id: str) -> list[Reply]:
    """Record a choice; a ``multi`` step offers "add more" / "done" until all are picked."""
    step = turn.funnel.tz_step(step_id)
    if step is None or all(o.id != option_id for o in step.options):
        raise StaleCallback
    collected = _collected(turn)
    turn.event("tz_answer", step=step_id, option=option_id)
    if step.kind != "multi":
        collected[step_id] = option_id
        return _next(turn, tz, step_id)
    previous = collected.get(step_id)
    chosen = list(previous) if isinstance(previous, list) else []
    if option_id not in chosen:
        chosen.append(option_id)
    collected[step_id] = chosen
    if len(chosen) == len(step.options):
        return _next(turn, tz, step_id)
    selected = ", ".join(_titles(step, chosen))
    buttons = [
        Button(id=f"tz:more:{step.id}", title=tz.more),
        Button(id=f"tz:done:{step.id}", title=tz.done),
    ]
    return [text_with_buttons(render(tz.selected, {"selected": selected}), buttons)]


def answer_text(turn: Turn, step: TzStep, text: str) -> list[Reply]:
    """A free-text spec step took the customer's text (empty when skipped)."""
    tz = turn.funnel.tz
    if tz is None:
        raise StaleCallback
    _collected(turn)[step.id] = text.strip()[:MAX_FREE_TEXT]
    turn.event("tz_answer", step=step.id, skipped=not text.strip())
    return _next(turn, tz, step.id)


def _next(turn: Turn, tz: Tz, step_id: str) -> list[Reply]:
    turn.state.funnel_state = None
    index = _index(tz, step_id) + 1
    if index < len(tz.steps):
        return [_ask(turn, tz, index)]
    return [_finish(turn, tz)]


def _titles(step: TzStep, option_ids: list[str]) -> list[str]:
    by_id = {o.id: o.title for o in step.options}
    return [by_id[i] for i in option_ids if i in by_id]


def _finish(turn: Turn, tz: Tz) -> Reply:
    collected = _collected(turn)
    values: dict[str, str] = {}
    for step in tz.steps:
        raw = collected.get(step.id)
        if isinstance(raw, list):
            value = ", ".join(_titles(step, [str(v) for v in raw]))
        elif isinstance(raw, str) and step.kind != "text":
            value = ", ".join(_titles(step, [raw]))
        else:
            value = str(raw or "")
        values[step.id] = value or tz.empty
    spec = render(tz.done_template, values)
    turn.event("tz_done", spec=values)
    return text_with_buttons(spec, to_buttons(tz.done_buttons))
