"""Who may talk to a bot (access lists) and how often (rate limit).

List entries may be phones in any format (``+1 555 010 0001``, ``15550100001``) or BSUIDs /
usernames / Telegram ids for customers without a phone. Phone comparison uses
``shared.phones.matches_any`` (E.164 via ``phonenumbers``) when that module is present; a small
digits-only comparison stands in until it lands.
"""

from __future__ import annotations

import importlib
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from shared.channels.base import CustomerRef

logger = logging.getLogger(__name__)

_PHONEISH = re.compile(r"^\+?[\d\s().-]{6,}$")


def parse_entries(value: Any) -> list[str]:
    """Accept a list, or a string separated by commas/newlines/semicolons; drop blanks."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = re.split(r"[,;\n]", value)
    elif isinstance(value, list | tuple | set):
        items = list(value)
    else:
        return []
    return [str(item).strip() for item in items if str(item).strip()]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _fallback_matches_any(customer: CustomerRef, entries: list[str]) -> bool:
    phone_digits = _digits(customer.phone) if customer.phone else ""
    others = {
        v
        for v in (customer.bsuid, customer.parent_bsuid, customer.telegram_id)
        if v
    }
    username = (customer.username or "").lstrip("@").lower()
    for entry in entries:
        if entry in others:
            return True
        if username and entry.lstrip("@").lower() == username:
            return True
        if phone_digits and _PHONEISH.match(entry) and _digits(entry) == phone_digits:
            return True
    return False


def matches_any(customer: CustomerRef, entries: list[str]) -> bool:
    """Return whether any entry names this customer (phone, BSUID, username, Telegram id)."""
    if not entries:
        return False
    try:
        phones = importlib.import_module("shared.phones")
    except ImportError:
        phones = None
    phones_matches_any = getattr(phones, "matches_any", None)
    if phones_matches_any is not None:
        try:
            if phones_matches_any(customer, entries):
                return True
        except Exception:  # noqa: BLE001 - a bad entry must not block every customer
            logger.warning("shared.phones.matches_any failed; using the simple comparison")
    # BSUID/username entries are checked here too, whatever shared.phones covers.
    return _fallback_matches_any(customer, entries)


def is_allowed(customer: CustomerRef, config: dict[str, Any]) -> bool:
    """Apply ``allowed_phones`` (empty = everyone) and then ``blocked_phones``."""
    allowed = parse_entries(config.get("allowed_phones"))
    if allowed and not matches_any(customer, allowed):
        return False
    blocked = parse_entries(config.get("blocked_phones"))
    return not (blocked and matches_any(customer, blocked))


def rate_limit(config: dict[str, Any]) -> tuple[int, timedelta] | None:
    """Return ``(count, window)`` from the config, or ``None`` when no limit is set."""
    try:
        count = int(config.get("rate_limit_count") or 0)
        hours = float(config.get("rate_limit_hours") or 0)
    except (TypeError, ValueError):
        return None
    if count <= 0 or hours <= 0:
        return None
    return count, timedelta(hours=hours)


def rate_decision(
    *,
    sent_in_window: int,
    limit: int,
    window_start: datetime,
    last_notice_at: datetime | None,
) -> str:
    """Decide what to do with a message given the customer's recent volume.

    Args:
        sent_in_window: messages the customer sent in the window, including this one.
        limit: ``rate_limit_count``.
        window_start: now minus ``rate_limit_hours``.
        last_notice_at: when the customer was last told about the limit.

    Returns:
        ``"ok"`` (handle normally), ``"notice"`` (send the polite notice once) or ``"silent"``.
    """
    if sent_in_window <= limit:
        return "ok"
    if last_notice_at is None or last_notice_at < window_start:
        return "notice"
    return "silent"
