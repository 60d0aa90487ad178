"""Passwords, admin JWTs, secret encryption and masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ADMIN_AUDIENCE = "flotilla-admin"
INTERNAL_AUDIENCE = "flotilla-internal"
CONTROL_AUDIENCE = "flotilla-control"
ALGORITHM = "HS256"
MASK_PREFIX = "****"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Check ``password`` against an Argon2 hash, in constant time."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _derive(secret_key: str, purpose: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(
        secret_key.encode()
    )


class SecretBox:
    """Encrypts a dict of secrets at rest with Fernet, keyed from the orchestrator secret key."""

    def __init__(self, secret_key: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret_key, b"flotilla-secrets")))

    def encrypt(self, values: dict[str, str]) -> str:
        """Encrypt ``values`` (empty dict → empty string)."""
        if not values:
            return ""
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def decrypt(self, token: str) -> dict[str, str]:
        """Decrypt what :meth:`encrypt` made.

        Raises:
            ValueError: the token was made with another key or is damaged.
        """
        if not token:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("secrets cannot be decrypted with this secret key") from exc
        return {str(k): str(v) for k, v in data.items()}


def mask_secret(value: str | None, *, tail: bool = False) -> str:
    """``"****"`` for a set secret, ``""`` unset.

    With ``tail`` (for admins and the owner, never guests) the mask ends in the secret's last
    4 characters (fewer for short ones), so one can tell which key is set: ``"****abcd"``.
    """
    if not value:
        return ""
    if not tail:
        return MASK_PREFIX
    end = value[-4:] if len(value) >= 12 else value[-2:] if len(value) >= 6 else ""
    return MASK_PREFIX + end


def csrf_token(secret_key: str, session_token: str) -> str:
    """The admin UI's CSRF token for one session: an HMAC of the session token.

    Per session (a new sign-in gets a new one), checkable without any server-side state, and
    useless without the session cookie it was made for.
    """
    mac = hmac.new(_derive(secret_key, b"flotilla-csrf"), session_token.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def is_mask(value: str) -> bool:
    """Whether ``value`` is a mask from :func:`mask_secret` (a PUT echoing it keeps the secret)."""
    return value.startswith(MASK_PREFIX)


def create_access_token(
    secret_key: str, *, user_id: int, role: str, minutes: int
) -> tuple[str, int]:
    """Admin API bearer token for a user; returns ``(token, expires_in_seconds)``."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "role": role,
        "aud": ADMIN_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, _admin_key(secret_key), algorithm=ALGORITHM), minutes * 60


def decode_access_token(secret_key: str, token: str) -> dict[str, Any]:
    """Verify an admin token.

    Raises:
        jwt.InvalidTokenError: bad signature, expired, no expiry, wrong audience or malformed.
    """
    # ``exp`` is required: a token without one would never expire (we never mint such a token,
    # so one showing up was made elsewhere).
    return jwt.decode(
        token,
        _admin_key(secret_key),
        algorithms=[ALGORITHM],
        audience=ADMIN_AUDIENCE,
        options={"require": ["exp", "sub", "aud"]},
    )


def _admin_key(secret_key: str) -> bytes:
    return _derive(secret_key, b"flotilla-admin-jwt")


def internal_key(secret_key: str) -> bytes:
    """Key that signs bot → orchestrator tokens."""
    return _derive(secret_key, b"flotilla-internal-jwt")


def create_internal_token(
    secret_key: str, *, instance_id: str, kind: str, gen: int, minutes: int
) -> str:
    """JWT a bot uses on the internal API (``aud``, ``sub``, ``kind``, ``gen``, ``exp``)."""
    now = datetime.now(UTC)
    claims = {
        "sub": instance_id,
        "kind": kind,
        "gen": gen,
        "aud": INTERNAL_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, internal_key(secret_key), algorithm=ALGORITHM)


def decode_internal_token(secret_key: str, token: str) -> dict[str, Any]:
    """Verify a bot's internal token (signature, audience, expiry; the caller checks ``gen``).

    Raises:
        jwt.InvalidTokenError: the token is not acceptable.
    """
    return jwt.decode(
        token,
        internal_key(secret_key),
        algorithms=[ALGORITHM],
        audience=INTERNAL_AUDIENCE,
        options={"require": ["exp", "sub", "aud"]},
    )


def control_key(secret_key: str, instance_id: str, gen: int) -> str:
    """Per-spawn key for control tokens (re-derivable after an orchestrator restart)."""
    return hmac.new(
        secret_key.encode(), f"flotilla-control:{instance_id}:{gen}".encode(), hashlib.sha256
    ).hexdigest()


def create_control_token(secret_key: str, *, instance_id: str, gen: int, seconds: int = 60) -> str:
    """Short-lived token for a call to a bot's ``/control/*`` API."""
    now = datetime.now(UTC)
    claims = {
        "sub": instance_id,
        "aud": CONTROL_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=seconds),
    }
    return jwt.encode(claims, control_key(secret_key, instance_id, gen), algorithm=ALGORITHM)
