"""Follow-up sequences in the bot runtime (shared.botkit.followups) against the real sandbox
Graph API, with the harness's movable clock: touch timing, stop on answer, opt-out, the
WhatsApp window, quiet hours in the customer's zone, a human owning the conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.botkit import followups
from shared.botkit.quiet import customer_zone, parse_hhmm, quiet_until
from shared.channels.base import CustomerRef, InboundMessage
from tests.botkit_support import Harness, make_harness

PHONE = "+15550100001"
TO = "15550100001"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC
HOURS = [24, 72, 168, 336, 720]
NO_QUIET = {"quiet_start": "00:00", "quiet_end": "00:00"}


def settings(**extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "touches": [{"after_hours": h, "text": f"touch {i + 1}"} for i, h in enumerate(HOURS)],
        **NO_QUIET,
        **extra,
    }


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in make_harness(
        tmp_path, followups=settings(), wa_template_name="checkin_v1"
    ):
        harness.clock.now = T0
        yield harness


def text(mid: str, body: str, phone: str = PHONE) -> InboundMessage:
    return InboundMessage(mid, CustomerRef(phone=phone), text=body, kind="text")


async def say(h: Harness, mid: str, body: str, phone: str = PHONE) -> None:
    assert h.ctx.accept_inbound(text(mid, body, phone)) is not None
    await h.settle()


async def tick(h: Harness, until: datetime) -> int:
    h.clock.now = until
    assert h.ctx.scheduler is not None
    fired = await h.ctx.scheduler.run_due()
    await h.flush_outbox()
    return fired


def sequence(h: Harness, phone: str = PHONE) -> dict[str, Any]:
    user = h.ctx.store.find_user(CustomerRef(phone=phone))
    assert user is not None
    latest = h.ctx.store.followup_latest(user.id)
    assert latest is not None
    return latest.to_dict()


async def test_silent_lead_gets_five_touches_at_the_configured_hours(h: Harness) -> None:
    await say(h, "wamid.1", "hello")
    first_reply = len(await h.sent(TO))
    assert first_reply >= 1
    seq = sequence(h)
    assert seq["active"]
    assert seq["next_due_at"].startswith("2026-03-03T10:00:00")

    sent_at: list[datetime] = []
    for number, hours in enumerate(HOURS, start=1):
        due = T0 + timedelta(hours=hours)
        assert await tick(h, due - timedelta(minutes=1)) == 0  # not early
        assert await tick(h, due) == 1
        sent_at.append(due)
        assert sequence(h)["touches_sent"] == number
    sent = await h.sent(TO)
    touches = sent[first_reply:]
    assert len(touches) == 5
    # touch 1 (exactly 24 h after the customer's message) is still inside the 24-hour window;
    # the later ones are outside it, so WhatsApp gets the configured template instead
    assert touches[0]["text"] == "touch 1"
    assert [m["text"] for m in touches[1:]] == ["checkin_v1"] * 4
    seq = sequence(h)
    assert seq["status"] == "completed"
    assert seq["stop_reason"] == "completed"
    assert seq["next_due_at"] is None
    assert await tick(h, T0 + timedelta(days=60)) == 0
    assert [j.status for j in h.ctx.store.jobs(kind="followup")] == ["done"] * 5


async def test_any_answer_stops_the_sequence(h: Harness) -> None:
    await say(h, "wamid.1", "hello")
    await tick(h, T0 + timedelta(hours=24))
    await tick(h, T0 + timedelta(hours=72))
    assert sequence(h)["touches_sent"] == 2
    before = len(await h.sent(TO))

    await say(h, "wamid.2", "sorry, was busy")
    user = h.ctx.store.find_user(CustomerRef(phone=PHONE))
    assert user is not None
    first = h.ctx.store.followups_of(user.id)[0]
    assert first.status == "stopped"
    assert first.stop_reason == "answered"
    assert first.touches_sent == 2
    third = h.ctx.store.job_by_key(f"followup:{first.id}:3")
    assert third is not None
    assert third.status == "skipped"
    assert third.last_error == "sequence stopped: answered"
    # the bot answered, so the lead may go silent again: a new sequence from now
    assert sequence(h)["id"] != first.id
    assert sequence(h)["active"]

    # touch 3 of the first sequence never goes out
    after_answer = len(await h.sent(TO))
    await tick(h, T0 + timedelta(hours=168))
    assert len(await h.sent(TO)) == after_answer
    assert after_answer == before + 1  # only the bot's reply to the answer


async def test_stop_opts_out_for_good(h: Harness) -> None:
    await say(h, "wamid.1", "hello")
    await tick(h, T0 + timedelta(hours=24))
    await say(h, "wamid.2", "STOP")
    sent = await h.sent(TO)
    assert sent[-1]["text"] == followups.OPT_OUT_TEXT
    user = h.ctx.store.find_user(CustomerRef(phone=PHONE))
    assert user is not None
    sequences = h.ctx.store.followups_of(user.id)
    assert len(sequences) == 1
    assert sequences[0].stop_reason == "opted_out"
    optout = h.ctx.store.opted_out(user.id)
    assert optout is not None
    assert optout["text"] == "STOP"
    allowed, why = followups.may_send_proactive(h.ctx, user)
    assert (allowed, why) == (False, "opted_out")

    # a later message is answered, but no sequence starts again
    await say(h, "wamid.3", "what are your prices?")
    assert len(h.ctx.store.followups_of(user.id)) == 1
    count = len(await h.sent(TO))
    await tick(h, T0 + timedelta(days=40))
    assert len(await h.sent(TO)) == count


@pytest.mark.parametrize("word", ["stop", "Unsubscribe", "стоп", "Stop!"])
def test_opt_out_words(word: str) -> None:
    assert followups.is_opt_out(word)


@pytest.mark.parametrize("word", ["stop sending me prices?", "stopwatch", "", "please stop by"])
def test_not_opt_out(word: str) -> None:
    assert not followups.is_opt_out(word)


async def test_window_closed_without_template_is_skipped(tmp_path: Path) -> None:
    async for h in make_harness(tmp_path, followups=settings(), wa_template_name=""):
        h.clock.now = T0
        await say(h, "wamid.1", "hello")
        before = len(await h.sent(TO))
        assert await tick(h, T0 + timedelta(hours=24)) == 1  # inside the window: free-form
        assert await tick(h, T0 + timedelta(hours=72)) == 1  # outside: no template → skipped
        sent = await h.sent(TO)
        assert [m["text"] for m in sent[before:]] == ["touch 1"]
        job = h.ctx.store.jobs(kind="followup")[1]
        assert job.status == "skipped"
        assert job.last_error == "window closed"
        seq = sequence(h)
        assert seq["status"] == "stopped"
        assert seq["stop_reason"] == "window_closed"


async def test_quiet_hours_defer_to_the_customers_morning(tmp_path: Path) -> None:
    almaty = "+77011234567"  # Kazakhstan: the +7 prefix spans zones; the bot's zone decides
    berlin = "+4915112345678"
    quiet = settings(quiet_start="21:00", quiet_end="09:00", timezone="Asia/Almaty")
    async for h in make_harness(tmp_path, followups=quiet, wa_template_name="checkin_v1"):
        start = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 22:00 in Almaty, 18:00 in Berlin
        h.clock.now = start
        await say(h, "wamid.1", "hello", almaty)
        await say(h, "wamid.2", "hello", berlin)
        due = start + timedelta(hours=24)
        assert await tick(h, due) == 2
        kz = h.ctx.store.find_user(CustomerRef(phone=almaty))
        de = h.ctx.store.find_user(CustomerRef(phone=berlin))
        assert kz is not None
        assert de is not None
        kz_job = h.ctx.store.jobs(kind="followup", user_id=kz.id)[0]
        de_job = h.ctx.store.jobs(kind="followup", user_id=de.id)[0]
        assert de_job.status == "done"  # 18:00 in Berlin: fine
        morning = datetime(2026, 3, 4, 4, 0, tzinfo=UTC)  # 09:00 Almaty (UTC+5)
        assert kz_job.status == "pending"
        assert kz_job.due_at == morning
        assert kz_job.last_error == "quiet hours in Asia/Almaty"
        assert kz_job.attempts == 0
        assert sequence(h, almaty)["next_due_at"].startswith("2026-03-04T04:00:00")
        assert await tick(h, morning - timedelta(minutes=1)) == 0
        assert await tick(h, morning) == 1
        assert h.ctx.store.job_get(kz_job.id).status == "done"  # type: ignore[union-attr]
        assert sequence(h, almaty)["touches_sent"] == 1


async def test_human_owned_conversation_gets_no_touch(h: Harness) -> None:
    await say(h, "wamid.1", "hello")
    user = h.ctx.store.find_user(CustomerRef(phone=PHONE))
    assert user is not None
    h.ctx.store.conn.execute("UPDATE users SET ownership = 'human' WHERE id = ?", (user.id,))
    before = len(await h.sent(TO))
    assert await tick(h, T0 + timedelta(hours=24)) == 1
    assert len(await h.sent(TO)) == before
    job = h.ctx.store.jobs(kind="followup")[0]
    assert job.status == "skipped"
    assert job.last_error == "conversation owned by a human (human)"
    assert sequence(h)["stop_reason"] == "conversation owned by a human (human)"


async def test_disabled_by_default(tmp_path: Path) -> None:
    async for h in make_harness(tmp_path):
        h.clock.now = T0
        await say(h, "wamid.1", "hello")
        assert h.ctx.store.count_jobs() == 0
        user = h.ctx.store.find_user(CustomerRef(phone=PHONE))
        assert user is not None
        assert h.ctx.store.followup_latest(user.id) is None


async def test_switching_off_stops_pending_sequences_at_their_next_touch(h: Harness) -> None:
    await say(h, "wamid.1", "hello")
    h.ctx.config["followups"] = {**settings(), "enabled": False}
    before = len(await h.sent(TO))
    assert await tick(h, T0 + timedelta(hours=24)) == 1
    assert len(await h.sent(TO)) == before
    assert sequence(h)["stop_reason"] == "disabled"


async def test_stop_by_hand(h: Harness) -> None:
    await say(h, "wamid.1", "hello")
    user = h.ctx.store.find_user(CustomerRef(phone=PHONE))
    assert user is not None
    assert followups.stop_by_hand(h.ctx, user, now=h.clock())
    assert not followups.stop_by_hand(h.ctx, user, now=h.clock())  # nothing active any more
    assert sequence(h)["stop_reason"] == "stopped_by_operator"
    assert await tick(h, T0 + timedelta(hours=24)) == 0


def test_customer_zone_from_the_phone_number() -> None:
    assert customer_zone("+4915112345678", "Asia/Almaty").key == "Europe/Berlin"
    assert customer_zone("+14155550123", "UTC").key == "America/Los_Angeles"
    # +7 spans Russia and Kazakhstan: the bot's zone
    assert customer_zone("+77011234567", "Asia/Almaty").key == "Asia/Almaty"
    assert customer_zone(None, "Asia/Almaty").key == "Asia/Almaty"  # Telegram: no phone
    assert customer_zone("not a number", "Nowhere/Bogus").key == "UTC"


def test_quiet_until_across_midnight() -> None:
    start, end = parse_hhmm("21:00", "21:00"), parse_hhmm("09:00", "09:00")
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Berlin")  # UTC+1 in March
    at = datetime(2026, 3, 2, 20, 30, tzinfo=UTC)  # 21:30 local → next morning 09:00 local
    assert quiet_until(at, tz, start, end) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    at = datetime(2026, 3, 3, 5, 0, tzinfo=UTC)  # 06:00 local → same morning
    assert quiet_until(at, tz, start, end) == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    at = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)  # 13:00 local: not quiet
    assert quiet_until(at, tz, start, end) is None
    assert quiet_until(at, tz, start, start) is None  # start == end: no quiet hours


async def test_touch_past_its_staleness_ends_the_sequence(h: Harness) -> None:
    """The bot was stopped for days: the touch is skipped as stale and the sequence ends
    (``stale``) instead of staying active with nothing scheduled."""
    await say(h, "wamid.1", "hello")
    before = len(await h.sent(TO))
    assert await tick(h, T0 + timedelta(hours=24 + 49)) == 1
    assert len(await h.sent(TO)) == before
    job = h.ctx.store.jobs(kind="followup")[0]
    assert job.status == "skipped"
    assert (job.last_error or "").startswith("stale: ")
    seq = sequence(h)
    assert seq["status"] == "stopped"
    assert seq["stop_reason"] == "stale"
    # the customer writes again later: the bot's answer starts a fresh sequence
    await say(h, "wamid.2", "back again")
    assert sequence(h)["active"] is True


async def test_template_parameters_carry_the_name_and_the_touch_text(tmp_path: Path) -> None:
    """Outside the window the template is sent with ``wa_template_params`` filled in."""
    async for h in make_harness(
        tmp_path,
        followups=settings(),
        wa_template_name="checkin_v1",
        wa_template_params="Hi {name}!\n{text}\n\n",
    ):
        h.clock.now = T0
        assert (
            h.ctx.accept_inbound(
                InboundMessage(
                    "wamid.1",
                    CustomerRef(phone=PHONE, profile_name="Ana"),
                    text="hello",
                    kind="text",
                )
            )
            is not None
        )
        await h.settle()
        await tick(h, T0 + timedelta(hours=24))
        await tick(h, T0 + timedelta(hours=72))
        sent = await h.sent(TO)
        template = sent[-1]["payload"]["template"]
        assert template["name"] == "checkin_v1"
        assert template["components"] == [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Hi Ana!"},
                    {"type": "text", "text": "touch 2"},
                ],
            }
        ]


def test_template_params_rendering() -> None:
    from shared.channels.base import TextReply
    from whatsapp_bot.channel import template_params

    nameless = CustomerRef(phone=PHONE)
    assert template_params("Hi {name}\n{text}", nameless, TextReply("touch 1")) == [
        "Hi there",
        "touch 1",
    ]
    assert template_params("", nameless, TextReply("x")) == []
    assert template_params(None, nameless, TextReply("x")) == []
    # other braces stay as they are (no format-string evaluation)
    assert template_params("{0.__class__} {text}", nameless, TextReply("t")) == ["{0.__class__} t"]
    assert template_params("{text}", nameless, TextReply("y" * 5000)) == ["y" * 1024]
