"""Phone numbers: the one phone pattern of the fleet and E.164 normalisation.

People type numbers as ``+7 (900) 123-45-67``, ``8 900 123 45 67`` or ``15551234567`` (a
WhatsApp ``wa_id``). Access lists that mix phones with other identities are matched in
:mod:`shared.botkit.access`.
"""

from __future__ import annotations

import logging
import re

import phonenumbers

logger = logging.getLogger(__name__)

#: The fleet's one test for "this address is written as a phone number" (digits with spaces,
#: dots, dashes, brackets and an optional ``+``; at least six characters). Strict validity is
#: :func:`normalize_phone`'s job; this only tells a phone from a BSUID, a username or a chat id.
PHONE_RE = re.compile(r"^\+?[\d\s().-]{6,}$")
_DIGITS_ONLY = re.compile(r"^[\d\s.\-]+$")  # wa_id style; "(900) ..." is national


def looks_like_phone(text: str) -> bool:
    """Whether ``text`` is written as a phone number (see :data:`PHONE_RE`)."""
    return bool(PHONE_RE.match(text.strip()))


def phone_digits(text: str) -> str:
    """The digits of ``text`` (``"+1 (555) 010-0001"`` → ``"15550100001"``)."""
    return "".join(ch for ch in text if ch.isdigit())


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
