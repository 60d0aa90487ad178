"""Property-based fuzzing of the webhook parsers: whatever JSON, form or bytes arrive, a parser
either returns or raises its documented error type; never anything else."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.results import record_bad_inputs, sized
from tests.fuzz.strategies import any_json, load_fixtures, mutated

EXAMPLES = sized(300, 3000)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def run_property(
    source: str, strategy: st.SearchStrategy[Any], call: Callable[[Any], object],
    allowed: tuple[type[BaseException], ...],
) -> int:
    """Feed ``strategy``'s examples to ``call``; only ``allowed`` errors may escape."""
    tried = 0

    @FUZZ
    @given(strategy)
    def prop(value: Any) -> None:
        nonlocal tried
        tried += 1
        with contextlib.suppress(*allowed):
            call(value)

    prop()
    record_bad_inputs(source, tried)
    assert tried > 0
    return tried


def test_whatsapp_parse_payload() -> None:
    from whatsapp_bot.parse import PayloadError, parse_payload

    fixtures = load_fixtures("whatsapp")
    run_property("whatsapp.parse_payload", any_json | mutated(fixtures), parse_payload,
                 (PayloadError,))


def test_whatsapp_parse_payload_from_raw_json() -> None:
    """Bodies as the webhook decodes them: ``json.loads`` also yields ``inf`` (``1e999``)."""
    import json

    from whatsapp_bot.parse import PayloadError, parse_payload

    fixtures = load_fixtures("whatsapp")
    odd_numbers = st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "1.5", "[]", "{}"])

    def check(args: tuple[Any, str]) -> None:
        doc, number = args
        # put a raw number where a timestamp or code is expected
        text = json.dumps(doc).replace('"timestamp": "', f'"timestamp": {number}, "x": "')
        text = text.replace('"code": ', f'"code": {number}, "y": ')
        parse_payload(json.loads(text))

    run_property("whatsapp.parse_payload.raw", st.tuples(mutated(fixtures, 1), odd_numbers),
                 check, (PayloadError,))


def test_whatsapp_parsed_messages_are_usable() -> None:
    """What the parser accepts, the inbox can store: every message has an id and an address."""
    from shared.store.sqlite import inbound_from_json, inbound_to_json
    from whatsapp_bot.parse import PayloadError, parse_payload

    def check(data: Any) -> None:
        try:
            messages, _ = parse_payload(data)
        except PayloadError:
            return
        for message in messages:
            # Every field the runtime routes, stores or sends on is text (a dict as a button
            # payload or a BSUID would crash the inbox worker or the store later, silently).
            assert isinstance(message.provider_message_id, str)
            assert message.provider_message_id
            for name in ("phone", "bsuid", "parent_bsuid", "username", "profile_name"):
                assert isinstance(getattr(message.customer, name), str | None), name
            assert isinstance(message.customer.address(), str)
            assert isinstance(message.text, str)
            for name in ("payload", "media_id", "media_mime", "context_message_id"):
                assert isinstance(getattr(message, name), str | None), name
            assert isinstance(message.timestamp, int)
            assert inbound_from_json(inbound_to_json(message)) == message

    run_property("whatsapp.parse_payload.usable", mutated(load_fixtures("whatsapp"), 2), check,
                 ())


def test_whatsapp_webhook_checks() -> None:
    from whatsapp_bot.webhook import WebhookError, decode_json, verify_challenge, verify_signature

    def check(args: tuple[bytes, str | None, str, dict[str, str]]) -> None:
        raw, header, secret, query = args
        for step in (lambda: verify_signature(raw, header, secret), lambda: decode_json(raw),
                     lambda: verify_challenge(query, secret)):
            status = 200
            try:
                step()
            except WebhookError as exc:
                status = exc.status
            assert status in (200, 400, 401, 403)

    strategy = st.tuples(
        st.binary(max_size=200),
        st.none() | st.text(max_size=80) | st.just("sha256="),
        st.text(max_size=20),
        st.dictionaries(st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge", "x"]),
                        st.text(max_size=20)),
    )
    run_property("whatsapp.webhook", strategy, check, ())


def test_twilio_form_parsers() -> None:
    from sms_bot.parse import FormError, SenderError, parse_inbound, parse_status

    keys = st.sampled_from(["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia",
                            "MediaUrl0", "MediaContentType0", "MessageStatus", "ErrorCode",
                            "ErrorMessage", "AccountSid", "x"])
    forms = st.dictionaries(keys, st.text(max_size=30) | st.sampled_from(
        ["1", "0", "-1", "99", "+15555550100", "delivered", "failed", "image/jpeg", "30003"]
    ))

    def check(form: dict[str, str]) -> None:
        for parse in (parse_inbound, parse_status):
            with contextlib.suppress(FormError, SenderError):
                parse(form)

    run_property("twilio.parse", forms, check, ())


def test_twilio_form_decoding() -> None:
    from sms_bot.webhook import WebhookError, decode_form

    run_property("twilio.decode_form", st.binary(max_size=300), decode_form, (WebhookError,))


def test_telegram_update_parser() -> None:
    from telegram_bot.parse import UpdateError, parse_update

    fixtures = load_fixtures("telegram")
    run_property("telegram.parse_update", any_json | mutated(fixtures), parse_update,
                 (UpdateError,))


def test_telegram_webhook_checks() -> None:
    from telegram_bot.webhook import UpdateError, WebhookError, decode_update, verify_secret

    def check(args: tuple[bytes, str | None, str]) -> None:
        raw, header, secret = args
        status = 200
        try:
            verify_secret(header, secret)
        except WebhookError as exc:
            status = exc.status
        assert status in (200, 401, 403)
        with contextlib.suppress(UpdateError):
            decode_update(raw)

    strategy = st.tuples(st.binary(max_size=200), st.none() | st.text(max_size=40),
                         st.text(max_size=20))
    run_property("telegram.webhook", strategy, check, ())
