"""Value encodings shared by the bot store's modules: timestamps as fixed-width UTC text, a
customer reference as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.channels.base import CustomerRef


def iso(dt: datetime) -> str:
    """Format an aware datetime as fixed-width UTC ISO text (sorts as text)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> datetime | None:
    """Inverse of :func:`iso`; ``None`` stays ``None``."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def utcnow() -> datetime:
    """Return the current aware UTC time."""
    return datetime.now(UTC)


def customer_to_json(customer: CustomerRef) -> str:
    """Serialise a customer reference (outbox ``recipient``)."""
    return json.dumps(customer.to_dict(), ensure_ascii=False, separators=(",", ":"))


def customer_from_json(text: str) -> CustomerRef:
    """Inverse of :func:`customer_to_json` (also reads rows written before identities)."""
    return CustomerRef.from_dict(json.loads(text))
