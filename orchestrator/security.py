"""Passwords, admin JWTs, secret encryption and masking.

Tokens between the orchestrator and its bots (internal and control) are minted and checked by
:mod:`shared.tokens`, the module the bots use; the two helpers below only adapt its units.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import zxcvbn
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

from shared.tokens import (
    ALGORITHM,
    control_key,
    derive_key,
    mint_control_token,
    mint_internal_token,
)

ADMIN_AUDIENCE = "flotilla-admin"
MASK_PREFIX = "****"

_hasher = PasswordHasher()
#: A hash of a random password, made once: a sign-in with an unknown username (or a disabled
#: user) is checked against it, so it costs the same Argon2 work as a wrong password and the
#: answer time does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash(uuid.uuid4().hex)


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Check ``password`` against an Argon2 hash, in constant time."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_password_check(password: str) -> None:
    """The Argon2 work of :func:`verify_password` for a user that does not exist (always fails)."""
    verify_password(password, _DUMMY_HASH)


# ---------------------------------------------------------------- password policy

#: zxcvbn keeps the user inputs of a call in a module-global dictionary: one call at a time.
_zxcvbn_lock = threading.Lock()
#: zxcvbn refuses longer input (its run time grows with length); the first 72 characters are
#: what it rates (a longer password is at least as strong as its start).
_ZXCVBN_MAX = 72


@dataclass(frozen=True)
class PasswordPolicy:
    """At least ``min_length`` characters and a zxcvbn score of at least ``min_score`` (0-4)."""

    min_length: int = 10
    min_score: int = 3

    def problem(self, password: str, *, user_inputs: tuple[str, ...] = ()) -> str | None:
        """Why ``password`` is refused (a sentence with zxcvbn's advice), or ``None`` if fine."""
        if len(password) < self.min_length:
            return f"password must have at least {self.min_length} characters"
        with _zxcvbn_lock:
            result = zxcvbn.zxcvbn(password[:_ZXCVBN_MAX], user_inputs=list(user_inputs))
        if int(result["score"]) >= self.min_score:
            return None
        feedback = result.get("feedback") or {}
        advice = [str(feedback.get("warning") or "")]
        advice += [str(s) for s in feedback.get("suggestions") or []]
        text = " ".join(a for a in advice if a)
        message = f"password is too easy to guess (strength {result['score']} of 4, needs "
        message += f"{self.min_score})"
        return f"{message}: {text}" if text else message

    def generate(self) -> str:
        """A random password this policy accepts."""
        while True:
            password = secrets.token_urlsafe(18)
            if self.problem(password) is None:
                return password


_derive = derive_key


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
    secret_key: str, *, user_uid: str, role: str, version: int, minutes: int
) -> tuple[str, int]:
    """Admin API bearer token for a user; returns ``(token, expires_in_seconds)``.

    ``sub`` is the user's random ``uid`` (never reused, unlike an integer key) and ``ver`` their
    ``token_version`` when signing in: a token whose version is not the user's current one is
    refused (sign-out, password or role change, deactivation bump it).
    """
    now = datetime.now(UTC)
    claims = {
        "sub": user_uid,
        "ver": version,
        "jti": uuid.uuid4().hex,
        "role": role,
        "aud": ADMIN_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, _admin_key(secret_key), algorithm=ALGORITHM), minutes * 60


def decode_access_token(secret_key: str, token: str) -> dict[str, Any]:
    """Verify an admin token (the caller checks ``sub`` and ``ver`` against the user).

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
        options={"require": ["exp", "sub", "aud", "ver"]},
    )


def _admin_key(secret_key: str) -> bytes:
    return _derive(secret_key, b"flotilla-admin-jwt")


def create_internal_token(
    secret_key: str, *, instance_id: str, kind: str, gen: int, minutes: int
) -> str:
    """JWT a bot uses on the internal API, minted by :func:`shared.tokens.mint_internal_token`."""
    return mint_internal_token(secret_key, instance_id, kind=kind, gen=gen, ttl_s=minutes * 60)


def create_control_token(secret_key: str, *, instance_id: str, gen: int, seconds: int = 60) -> str:
    """Short-lived token for a call to a bot's ``/control/*`` API (:mod:`shared.tokens`)."""
    key = control_key(secret_key, instance_id, gen)
    return mint_control_token(key, instance_id, ttl_s=seconds)
