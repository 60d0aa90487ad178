"""Phone normalisation and access-list matching."""

from __future__ import annotations

import pytest

from shared.botkit.access import matches_any
from shared.channels.base import CustomerRef
from shared.phones import looks_like_phone, normalize_phone, phone_digits


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+7 (900) 123-45-67", None, "+79001234567"),
        ("8 900 123 45 67", "RU", "+79001234567"),
        ("8 900 123 45 67", "ru", "+79001234567"),
        ("15550100001", None, "+15550100001"),  # WhatsApp wa_id: digits, no plus
        ("+1 555 010 0001", None, "+15550100001"),
        ("(555) 010-0001", "US", "+15550100001"),
        ("0048 600 700 800", None, "+48600700800"),
        ("  +48600700800  ", None, "+48600700800"),
    ],
)
def test_normalize_phone_to_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("hello", "not a phone number"),
        ("+1 23", "not a possible phone number"),
        ("+7 900 123 45 67 89 01 23", "not a possible phone number"),
    ],
)
def test_normalize_phone_rejects_with_a_clear_message(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_phone(raw)


def test_national_number_without_region_says_what_to_add() -> None:
    with pytest.raises(ValueError, match=r"add \+ and the country code"):
        normalize_phone("(900) 123-45-67")


def test_one_phone_pattern_tells_phones_from_other_ids() -> None:
    assert looks_like_phone("+7 (900) 123-45-67")
    assert looks_like_phone("15550100001")
    assert not looks_like_phone("BR.1502576394655843")
    assert not looks_like_phone("@maria")
    assert not looks_like_phone("12345")
    assert phone_digits("+1 (555) 010-0001") == "15550100001"


def test_matches_phone_in_any_format() -> None:
    customer = CustomerRef(phone="+79001234567")
    assert matches_any(customer, ["+7 (900) 123-45-67"])
    assert matches_any(customer, ["79001234567"])
    assert not matches_any(customer, ["+79001234568"])
    assert not matches_any(customer, [])


def test_matches_bsuid_for_a_customer_without_phone() -> None:
    customer = CustomerRef(bsuid="BR.1502576394655843", username="maria")
    assert matches_any(customer, ["+15550100001", "BR.1502576394655843"])
    assert matches_any(customer, ["br.1502576394655843"])
    assert matches_any(CustomerRef(parent_bsuid="US.77"), ["US.77"])
    assert not matches_any(customer, ["BR.1502576394655844", "+15550100001"])


def test_matches_username_and_telegram_id() -> None:
    assert matches_any(CustomerRef(username="Maria"), ["@maria"])
    assert not matches_any(CustomerRef(username="maria"), ["@mario"])
    assert matches_any(CustomerRef(telegram_id="123456789"), ["123456789"])


def test_garbage_entries_are_ignored_not_fatal() -> None:
    customer = CustomerRef(phone="+79001234567")
    assert not matches_any(customer, ["", "   ", "n/a", "@", "+"])
    assert matches_any(customer, ["n/a", "+79001234567"])


def test_a_phone_entry_does_not_match_a_customer_without_phone() -> None:
    assert not matches_any(CustomerRef(bsuid="BR.1"), ["+79001234567"])
