"""Segmentation, quotes and the GPU audit: plain functions over funnel configuration.

Every channel (WhatsApp, Telegram, SMS) uses these; the numbers they work with (weights,
thresholds, prices) come from the funnel document, not from code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.funnel.schema import Funnel, GpuModel, GpuTier, QuoteComponent
from shared.funnel.text import (
    contains_stem,
    extract_number,
    format_money,
    mentions,
    normalize,
    render,
)
from shared.funnel.validation import default_funnel

logger = logging.getLogger(__name__)

_ITEM_SPLIT = re.compile(r"[,;\n/+]|\s(?:and|и|&)\s", re.IGNORECASE)
_VRAM = re.compile(r"(\d+(?:[.,]\d+)?)\s*(?:gb|гб|g|gib)(?![a-z])", re.IGNORECASE)


def segment_scores(answers: Mapping[str, str], funnel: Funnel | None = None) -> dict[str, float]:
    """Sum the segment weights of the chosen quiz options.

    Args:
        answers: question id -> option id; unknown ids are ignored.
        funnel: the funnel; the default funnel when ``None``.

    Returns:
        Segment id -> score, for every segment of the funnel.
    """
    funnel = funnel or default_funnel()
    scores = dict.fromkeys(funnel.segments, 0.0)
    for question_id, option_id in answers.items():
        question = funnel.question(question_id)
        option = (
            next((o for o in question.options if o.id == option_id), None) if question else None
        )
        if option is None:
            logger.debug("ignoring unknown quiz answer %s=%s", question_id, option_id)
            continue
        for segment_id, weight in option.weights.items():
            if segment_id in scores:
                scores[segment_id] += weight
    return scores


def determine_segment(answers: Mapping[str, str], funnel: Funnel | None = None) -> str:
    """Pick the customer's segment from their quiz answers.

    The highest score wins; ties go to the earliest segment in ``segmentation.tie_break`` (then
    the order of ``segments``); a best score below ``segmentation.min_score`` gives
    ``segmentation.default``.

    Args:
        answers: question id -> option id.
        funnel: the funnel; the default funnel when ``None``.

    Returns:
        A segment id of the funnel (``diy``, ``basic`` or ``custom`` in the default funnel).
    """
    funnel = funnel or default_funnel()
    rules = funnel.segmentation
    scores = segment_scores(answers, funnel)
    best = max(scores.values())
    if best < rules.min_score:
        return rules.default
    order = [*rules.tie_break, *(s for s in funnel.segments if s not in rules.tie_break)]
    return next(s for s in order if scores[s] == best)


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """One line of a quote."""

    label: str
    amount: int


@dataclass(frozen=True, slots=True)
class Quote:
    """A cost estimate for a custom project.

    Attributes:
        lines: priced lines (base, components, multiplier surcharges), in order.
        total: the estimate, rounded to ``quote.round_to``.
        low: lower end of the range (``total * range_low``).
        high: upper end of the range (``total * range_high``).
        deposit: the advance payment (``deposit_percent`` of ``total``).
        currency: the funnel's currency sign.
        text: the estimate rendered with the funnel's template.
    """

    lines: tuple[QuoteLine, ...]
    total: int
    low: int
    high: int
    deposit: int
    currency: str
    text: str

    def as_dict(self) -> dict[str, object]:
        """Return the numbers as a JSON-serialisable dict (for events and state)."""
        return {
            "lines": [{"label": line.label, "amount": line.amount} for line in self.lines],
            "total": self.total,
            "low": self.low,
            "high": self.high,
            "deposit": self.deposit,
            "currency": self.currency,
        }


def _component_amount(component: QuoteComponent, answer: str, negations: list[str]) -> float:
    text = normalize(answer)
    if component.kind == "keywords":
        hit = any(mentions(text, k, negations) for k in component.keywords)
        return component.amount if hit else 0.0
    if component.kind == "number":
        units = extract_number(answer) or 0.0
        if component.max_units is not None:
            units = min(units, component.max_units)
        return max(0.0, units - component.included) * component.unit_price
    # items: "1C, Bitrix24 and the website" -> 3; "none" -> 0
    if not text or any(
        text == normalize(w) or text.startswith(normalize(w) + " ") for w in component.none_words
    ):
        return 0.0
    items = [part for part in _ITEM_SPLIT.split(answer) if normalize(part)]
    return max(0.0, len(items) - component.included) * component.unit_price


def _round_to(value: float, step: int) -> int:
    return int(round(value / step) * step)


def calculate_quote(discovery: Mapping[str, str], funnel: Funnel | None = None) -> Quote:
    """Estimate a custom project from the discovery answers.

    Args:
        discovery: discovery step id (``custom_step_1``...) -> the customer's free-text answer;
            missing steps count as empty answers.
        funnel: the funnel; the default funnel when ``None``.

    Returns:
        The quote, with its text rendered from the funnel's template.

    Raises:
        ValueError: the funnel has no quote pricing.
    """
    funnel = funnel or default_funnel()
    pricing = funnel.quote
    if pricing is None:
        raise ValueError("this funnel has no quote pricing")
    lines = [QuoteLine(pricing.base_label, round(pricing.base))]
    for component in pricing.components:
        amount = _component_amount(
            component, discovery.get(component.step, ""), pricing.negations
        )
        if amount > 0:
            lines.append(QuoteLine(component.label, round(amount)))
    subtotal = sum(line.amount for line in lines)
    factor = 1.0
    for multiplier in pricing.multipliers:
        answer = normalize(discovery.get(multiplier.step, ""))
        if any(mentions(answer, k, pricing.negations) for k in multiplier.keywords):
            lines.append(
                QuoteLine(multiplier.label, round(subtotal * factor * (multiplier.factor - 1)))
            )
            factor *= multiplier.factor
    total = _round_to(subtotal * factor, pricing.round_to)
    low = _round_to(total * pricing.range_low, pricing.round_to)
    high = _round_to(total * pricing.range_high, pricing.round_to)
    deposit = _round_to(total * pricing.deposit_percent / 100, pricing.round_to)

    def money(value: float) -> str:
        return format_money(value, funnel.currency, funnel.thousands_separator)

    rendered_lines = "\n".join(
        render(pricing.line, {"label": line.label, "amount": money(line.amount)}) for line in lines
    )
    text = render(
        pricing.template,
        {
            "lines": rendered_lines,
            "total": money(total),
            "low": money(low),
            "high": money(high),
            "deposit": money(deposit),
        },
    )
    return Quote(tuple(lines), total, low, high, deposit, funnel.currency, text)


@dataclass(frozen=True, slots=True)
class GpuVerdict:
    """What the GPU audit says about one GPU."""

    gpu: str
    vram_gb: float
    tier: GpuTier
    text: str


def find_gpu(text: str, funnel: Funnel | None = None) -> tuple[str, float] | None:
    """Recognise a GPU typed as free text.

    Known models (by title, id or alias) win; otherwise a memory size like ``"12 GB"`` is used.

    Returns:
        ``(name, vram_gb)`` or ``None`` when nothing could be recognised.
    """
    funnel = funnel or default_funnel()
    if funnel.gpu_audit is None:
        return None
    typed = normalize(text)
    size = _VRAM.search(text)
    if size:
        return text.strip(), float(size.group(1).replace(",", "."))
    best: GpuModel | None = None
    best_len = 0
    for gpu in funnel.gpu_audit.gpus:
        for name in (gpu.title, gpu.id, *gpu.aliases):
            candidate = normalize(name)
            if candidate and contains_stem(typed, candidate) and len(candidate) > best_len:
                best, best_len = gpu, len(candidate)
    if best is not None:
        return best.title, best.vram_gb
    return None


def audit_gpu(name: str, vram_gb: float, funnel: Funnel | None = None) -> GpuVerdict:
    """Say what runs on a GPU with ``vram_gb`` of memory, from the funnel's tiers.

    Raises:
        ValueError: the funnel has no GPU audit.
    """
    funnel = funnel or default_funnel()
    audit = funnel.gpu_audit
    if audit is None:
        raise ValueError("this funnel has no gpu_audit")
    fitting = [t for t in audit.tiers if t.min_vram_gb <= vram_gb]
    tier = (
        max(fitting, key=lambda t: t.min_vram_gb)
        if fitting
        else min(audit.tiers, key=lambda t: t.min_vram_gb)
    )
    vram = f"{vram_gb:g}"
    text = render(audit.verdict, {"gpu": name, "vram": vram, "tier": tier.text})
    return GpuVerdict(name, vram_gb, tier, text)
