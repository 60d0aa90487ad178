"""Quiet hours: no proactive message at night in the customer's time zone.

The customer's time zone comes from their phone number (``phonenumbers``' time-zone data) when
that names one zone (``+49…`` → Europe/Berlin, ``+1 415…`` → America/Los_Angeles); a number
whose prefix spans several zones (``+7`` covers Russia and Kazakhstan) uses the bot's zone if it
is one of them, else the bot's zone as well. A customer without a phone (a Telegram user, a
WhatsApp username) gets the bot's zone.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

DEFAULT_QUIET_START = "21:00"
DEFAULT_QUIET_END = "09:00"
UNKNOWN_ZONE = "Etc/Unknown"


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """``ZoneInfo(name)``, or ``default`` when the name is empty or unknown."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def customer_zone(phone: str | None, bot_zone: str | None) -> ZoneInfo:
    """The customer's time zone: from the phone number when it names one, else the bot's."""
    fallback = zone(bot_zone)
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    if not digits:
        return fallback
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return fallback
    zones = [z for z in pn_timezone.time_zones_for_number(number) if z != UNKNOWN_ZONE]
    if len(zones) == 1:
        return zone(zones[0], str(fallback))
    return fallback


def parse_hhmm(value: str | None, default: str) -> time:
    """``"21:30"`` → ``time(21, 30)``; a bad value gives ``default``."""
    for text in (value, default):
        try:
            hours, minutes = str(text).split(":")
            return time(int(hours), int(minutes))
        except (ValueError, AttributeError):
            continue
    raise ValueError(f"bad default time {default!r}")


def quiet_until(now: datetime, tz: ZoneInfo, start: time, end: time) -> datetime | None:
    """When ``now`` falls in the quiet hours [start, end) of ``tz``, the end of them (UTC-aware);
    else ``None``. A window may cross midnight (21:00–09:00); ``start == end`` means none."""
    if start == end:
        return None
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    morning = datetime.combine(end_day, end, tzinfo=tz)
    return morning.astimezone(now.tzinfo)
