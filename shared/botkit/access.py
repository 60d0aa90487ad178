"""Who may talk to a bot (access lists) and how often (rate limit).

List entries name a customer by any of its identities (:class:`CustomerRef` schemes): phones in
any format (``+1 555 010 0001``, ``15550100001``; compared in E.164), BSUIDs (case-insensitive),
``@usernames`` (case-insensitive, ``@`` optional), Telegram user ids, or any other scheme's
value (compared exactly); ``scheme:value`` (``telegram_user:12345``) names one scheme only.
Matching is generic over the customer's identities: the inbox checks the identities of the
message together with those already known for the customer, so a blocked BSUID stays blocked
when the same customer later writes with a phone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from shared.channels.base import BSUID, PARENT_BSUID, PHONE, USERNAME, CustomerRef
from shared.phones import looks_like_phone, normalize_phone, phone_digits

logger = logging.getLogger(__name__)


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


@lru_cache(maxsize=4096)
def _e164(text: str) -> str | None:
    try:
        return normalize_phone(text)
    except ValueError:
        return None


def _same_phone(entry: str, value: str) -> bool:
    phone, wanted = _e164(value), _e164(entry)
    if phone is not None and wanted is not None:
        return phone == wanted
    # A number phonenumbers does not know (test ranges): the same digits.
    return looks_like_phone(entry) and phone_digits(entry) == phone_digits(value)


def _same_folded(entry: str, value: str) -> bool:
    return entry.casefold() == value.casefold()


def _same_handle(entry: str, value: str) -> bool:
    name = entry.lstrip("@")
    return bool(name) and name.casefold() == value.lstrip("@").casefold()


#: How an access-list entry is compared with an identity of each scheme; other schemes compare
#: exactly. A channel with a scheme of its own may add a comparator here.
MATCHERS: dict[str, Callable[[str, str], bool]] = {
    PHONE: _same_phone,
    BSUID: _same_folded,
    PARENT_BSUID: _same_folded,
    USERNAME: _same_handle,
}


#: ``scheme:value``: an entry naming one identity scheme (``telegram_user:12345``,
#: ``phone:+15550100001``); it matches identities of that scheme only.
SCHEMED_ENTRY_RE = re.compile(r"^([a-z][a-z0-9_]{0,31}):(.+)$")


def split_entry(entry: str) -> tuple[str | None, str]:
    """``("telegram_user", "12345")`` for ``telegram_user:12345``; ``(None, entry)`` for an
    entry without a scheme (matched against every identity)."""
    m = SCHEMED_ENTRY_RE.match(entry.strip())
    if m is None:
        return None, entry.strip()
    return m.group(1), m.group(2).strip()


def matches_any(customer: CustomerRef, entries: list[str]) -> bool:
    """Return whether any entry names one of this customer's identities (an entry with a
    ``scheme:`` prefix only that scheme's identity, a bare one any scheme)."""
    if not entries:
        return False
    parsed = [split_entry(raw) for raw in entries if raw.strip()]
    for scheme, value in customer.identities.items():
        same = MATCHERS.get(scheme)
        for wanted_scheme, entry in parsed:
            if not entry or (wanted_scheme is not None and wanted_scheme != scheme):
                continue
            if entry == value or (same is not None and same(entry, value)):
                return True
    return False


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
