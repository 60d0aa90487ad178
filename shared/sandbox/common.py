"""Pieces every sandbox provider shares: app keys, body parsing, header masking."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from shared.sandbox.state import SandboxState

STATE_KEY = web.AppKey("sandbox_state", SandboxState)
# the recording middleware hands the request's sequence number to the handler
SEQ_KEY = web.RequestKey("sandbox_seq", int)

_SECRET_HEADERS = {"authorization", "x-twilio-signature", "x-telegram-bot-api-secret-token"}


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes

    def describe(self) -> dict[str, Any]:
        """Return what the request log keeps of a file (never its bytes)."""
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
        }


@dataclass
class ParsedBody:
    """A request body read once by the middleware and shared with the handler."""

    json: Any = None
    json_error: bool = False
    form: dict[str, Any] | None = None
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def params(self, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Merge query string, form fields and JSON object into one dict (Bot API style)."""
        merged: dict[str, Any] = {}
        if query is not None:
            merged.update(dict(query.items()))
        if self.form:
            merged.update(self.form)
        if isinstance(self.json, dict):
            merged.update(self.json)
        return merged

    def for_log(self) -> tuple[Any, dict[str, Any] | None]:
        """Return ``(json, form)`` as the request log shows them."""
        if self.form is None and not self.files:
            return self.json, None
        form: dict[str, Any] = dict(self.form or {})
        form.update({name: f.describe() for name, f in self.files.items()})
        return None, form


# the body, read once by the recording middleware and shared with the handler
BODY_KEY = web.RequestKey("sandbox_body", ParsedBody)


async def read_body(request: web.Request) -> ParsedBody:
    """Read a JSON, form-encoded or multipart body; never raises on a malformed one."""
    if request.method in ("GET", "HEAD", "DELETE") and not request.can_read_body:
        return ParsedBody()
    content_type = request.content_type
    if content_type == "application/json" or (
        content_type not in ("application/x-www-form-urlencoded", "multipart/form-data")
        and request.can_read_body
    ):
        raw = await request.read()
        if not raw:
            return ParsedBody()
        try:
            return ParsedBody(json=json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            return ParsedBody(json_error=True)
    posted = await request.post()
    form: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    for key in posted:
        values = posted.getall(key)
        texts: list[str] = []
        for value in values:
            if isinstance(value, web.FileField):
                files[key] = UploadedFile(
                    filename=value.filename,
                    content_type=value.content_type,
                    data=value.file.read(),
                )
            else:
                texts.append(str(value))
        if texts:
            form[key] = texts[0] if len(texts) == 1 else texts
    return ParsedBody(form=form, files=files)


def mask_headers(headers: Any) -> dict[str, str]:
    """Copy request headers with secrets masked (the scheme of ``Authorization`` is kept)."""
    masked: dict[str, str] = {}
    for key, value in headers.items():
        if key.lower() in _SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            masked[key] = f"{scheme} ***" if rest else "***"
        else:
            masked[key] = value
    return masked


def form_values(form: dict[str, Any] | None, key: str) -> list[str]:
    """Every value of a (possibly repeated) form field."""
    if not form or key not in form:
        return []
    value = form[key]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
