"""Data-driven sales funnels: the JSON schema, its validation and the shared sales logic.

``load_funnel(config.get("funnel"))`` gives a validated :class:`Funnel` (the default funnel for
``None``); :func:`shared.routing.route` walks a customer through it.
"""

from shared.funnel.callbacks import MAX_CALLBACK_BYTES, Callback, make_callback, parse_callback
from shared.funnel.sales import (
    GpuVerdict,
    Quote,
    QuoteLine,
    audit_gpu,
    calculate_quote,
    determine_segment,
    find_gpu,
    segment_scores,
)
from shared.funnel.schema import Funnel
from shared.funnel.validation import (
    FunnelError,
    FunnelValidationError,
    check_funnel,
    default_funnel,
    load_funnel,
)

__all__ = [
    "MAX_CALLBACK_BYTES",
    "Callback",
    "Funnel",
    "FunnelError",
    "FunnelValidationError",
    "GpuVerdict",
    "Quote",
    "QuoteLine",
    "audit_gpu",
    "calculate_quote",
    "check_funnel",
    "default_funnel",
    "determine_segment",
    "find_gpu",
    "load_funnel",
    "make_callback",
    "parse_callback",
    "segment_scores",
]
