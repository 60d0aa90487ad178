"""Sandbox of the Twilio Messages API, mounted under ``/twilio``.

The official ``twilio`` SDK works against it once its API domain points here::

    client = twilio.rest.Client(account_sid, auth_token)
    client.api.base_url = f"{sandbox_url}/twilio"
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import math
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from shared.sandbox.common import BODY_KEY, SEQ_KEY, STATE_KEY, ParsedBody, form_values
from shared.sandbox.state import FaultRule

logger = logging.getLogger(__name__)

PREFIX = "/twilio"
API_VERSION = "2010-04-01"
BODY_MAX = 1600
MEDIA_URLS_MAX = 10
GSM_SEGMENT = 160
GSM_CONCAT_SEGMENT = 153

KNOWN_ERRORS: dict[int, tuple[str, int]] = {
    20003: ("Authenticate", 401),
    20404: ("The requested resource was not found", 404),
    20429: ("Too Many Requests", 429),
    20500: ("Internal Server Error", 500),
    21211: ("Invalid 'To' Phone Number", 400),
    21408: ("Permission to send an SMS has not been enabled for the region", 400),
    21602: ("Message body is required.", 400),
    21603: ("A 'From' or 'MessagingServiceSid' parameter is required to send a message.", 400),
    21604: ("A 'To' phone number is required.", 400),
    21610: ("Attempt to send to unsubscribed recipient", 400),
    21614: ("'To' number is not a valid mobile number", 400),
    21617: ("The concatenated message body exceeds the 1600 character limit.", 400),
    21623: ("Number of media files exceeds allowed limit", 400),
    30007: ("Message filtered", 400),
}


def twilio_error(code: int, message: str | None = None, status: int | None = None) -> web.Response:
    """A Twilio-shaped error answer (what ``TwilioRestException`` parses)."""
    title, default_status = KNOWN_ERRORS.get(code, ("Error", 400))
    http_status = status or default_status
    return web.json_response(
        {
            "code": code,
            "message": message or title,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": http_status,
        },
        status=http_status,
    )


def _authenticated(request: web.Request, account_sid: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, _, password = decoded.partition(":")
    # API keys (SK...) authenticate for the account in the path too.
    sid_ok = hmac.compare_digest(username, account_sid) or username.startswith("SK")
    return sid_ok and bool(password)


def _auth_token(request: web.Request) -> str:
    """The auth token of a request authenticated with ``AccountSid:AuthToken`` (Twilio signs
    status callbacks with it), or ``""`` for API-key credentials."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    username, _, password = decoded.partition(":")
    return password if scheme.lower() == "basic" and username.startswith("AC") else ""


def _num_segments(body: str) -> int:
    if len(body) <= GSM_SEGMENT:
        return 1
    return math.ceil(len(body) / GSM_CONCAT_SEGMENT)


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment)


def _message_resource(
    account_sid: str, sid: str, form: dict[str, Any], media_urls: list[str]
) -> dict[str, Any]:
    now = _rfc2822(datetime.now(UTC))
    body = str(form.get("Body") or "")
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": str(len(media_urls)),
        "num_segments": str(_num_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {
            "media": uri.replace(".json", "/Media.json"),
        },
        "to": form.get("To"),
        "uri": uri,
    }


async def create_message(request: web.Request) -> web.Response:
    """Create (send) a message: form-encoded To, From|MessagingServiceSid, Body, MediaUrl."""
    account_sid = request.match_info["account_sid"]
    if not _authenticated(request, account_sid):
        return twilio_error(20003)
    body: ParsedBody = request[BODY_KEY]
    form = body.form or {}
    media_urls = form_values(form, "MediaUrl")
    text = str(form.get("Body") or "")
    if not form.get("To"):
        return twilio_error(21604)
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return twilio_error(21603)
    if not text and not media_urls and not form.get("ContentSid"):
        return twilio_error(21602)
    if len(text) > BODY_MAX:
        return twilio_error(21617)
    if len(media_urls) > MEDIA_URLS_MAX:
        return twilio_error(21623)
    sid = "SM" + uuid.uuid4().hex
    resource = _message_resource(account_sid, sid, form, media_urls)
    state = request.app[STATE_KEY]
    state.remember_twilio_message(resource)
    state.add_message(
        request_seq=request[SEQ_KEY],
        provider="twilio",
        to=str(form["To"]),
        sender=str(form.get("From") or form.get("MessagingServiceSid")),
        type="mms" if media_urls else "sms",
        text=text or None,
        message_id=sid,
        payload=dict(form),
    )
    callback = str(form.get("StatusCallback") or "")
    token = _auth_token(request)
    if callback and token:
        state.webhooks.twilio_message_accepted(
            callback,
            auth_token=token,
            form={
                "AccountSid": account_sid,
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": "sent",
                "SmsStatus": "sent",
                "To": str(form["To"]),
                "From": str(form.get("From") or ""),
                "ApiVersion": API_VERSION,
            },
        )
    return web.json_response(resource, status=201)


async def fetch_message(request: web.Request) -> web.Response:
    """Fetch a message created earlier (``client.messages(sid).fetch()``)."""
    account_sid = request.match_info["account_sid"]
    if not _authenticated(request, account_sid):
        return twilio_error(20003)
    resource = request.app[STATE_KEY].twilio_messages.get(request.match_info["sid"])
    if resource is None or resource["account_sid"] != account_sid:
        return twilio_error(20404, f"The requested resource {request.path} was not found")
    return web.json_response(resource)


def fault_response(rule: FaultRule) -> web.Response:
    """The Twilio-shaped answer for an injected fault."""
    if rule.mode == "429":
        response = twilio_error(20429, rule.error_message)
        response.headers["Retry-After"] = str(rule.retry_after)
        return response
    if rule.mode == "500":
        return twilio_error(rule.error_code or 20500, rule.error_message, status=500)
    return twilio_error(rule.error_code or 30007, rule.error_message)


def not_found_response(request: web.Request) -> web.Response:
    """Twilio's answer for an unknown resource."""
    return twilio_error(20404, f"The requested resource {request.path} was not found")


def add_routes(app: web.Application) -> None:
    """Mount the Twilio routes under ``/twilio``."""
    base = f"{PREFIX}/{API_VERSION}/Accounts/{{account_sid}}/Messages"
    app.router.add_post(base + ".json", create_message)
    app.router.add_get(base + "/{sid}.json", fetch_message)
