"""Phone numbers in E.164 and access lists that mix phones with other customer ids.

Access lists (``allowed_phones`` / ``blocked_phones``) are typed by people: ``+7 (900) 123-45-67``,
``8 900 123 45 67``, ``15551234567`` (a WhatsApp ``wa_id``), or a WhatsApp business-scoped user
id (``BR.1502576394655843``) for customers who arrive without a phone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

from shared.channels.base import CustomerRef

logger = logging.getLogger(__name__)

_BSUID = re.compile(r"^[A-Za-z]{2}\.[A-Za-z0-9_-]+$")
_DIGITS_ONLY = re.compile(r"^[\d\s.\-]+$")  # wa_id style; "(900) ..." is national


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """Return a phone number in E.164 (``+79001234567``).

    Args:
        raw: the number as typed: with or without ``+``, spaces, dashes, brackets, a ``00``
            international prefix; a national number needs ``default_region``. Digits with no
            ``+`` and no region are read as international (WhatsApp's ``wa_id`` form).
        default_region: ISO 3166 region (``"RU"``, ``"US"``) for national numbers.

    Returns:
        The E.164 form.

    Raises:
        ValueError: ``raw`` is empty, not a phone number, or impossible for its country.
    """
    text = (raw or "").strip()
    if not text:
        raise ValueError("phone number is empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    region = default_region.upper() if default_region else None
    if not text.startswith("+") and region is None and _DIGITS_ONLY.match(text):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region or text.startswith("+") else " (add + and the country code)"
        raise ValueError(f"not a phone number: {raw!r}{hint}: {exc}") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"not a possible phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def _entry_phone(entry: str, default_region: str | None) -> str | None:
    try:
        return normalize_phone(entry, default_region)
    except ValueError:
        return None


def is_bsuid(value: str) -> bool:
    """Tell whether ``value`` looks like a WhatsApp business-scoped user id (``BR.1502...``)."""
    return bool(_BSUID.match(value.strip()))


def matches_any(
    customer: CustomerRef, entries: Iterable[str], default_region: str | None = None
) -> bool:
    """Tell whether an access list names this customer.

    An entry matches when it is the customer's phone (compared in E.164, whatever the format of
    either side), their BSUID or parent BSUID, their Telegram user id, or their ``@username``.
    Entries that are none of these are ignored.

    Args:
        customer: the customer's identifiers (any may be missing).
        entries: the list as configured.
        default_region: region for national numbers in the list (``"RU"``...).

    Returns:
        ``True`` when any entry names the customer.
    """
    phone = _entry_phone(customer.phone, default_region) if customer.phone else None
    bsuids = {b.upper() for b in (customer.bsuid, customer.parent_bsuid) if b}
    username = (customer.username or "").lstrip("@").casefold()
    for raw in entries:
        entry = (raw or "").strip()
        if not entry:
            continue
        if is_bsuid(entry):
            if entry.upper() in bsuids:
                return True
            continue
        if entry.startswith("@"):
            if username and entry[1:].casefold() == username:
                return True
            continue
        if customer.telegram_id and entry == customer.telegram_id:
            return True
        if phone is not None and _entry_phone(entry, default_region) == phone:
            return True
    return False
