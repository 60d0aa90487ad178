"""JWTs between the orchestrator and its bots (see docs/internals.md): the one place that mints
and checks them, for the orchestrator and the bots alike.

* Internal API tokens (bot → orchestrator): ``aud="flotilla-internal"``, ``sub=<instance id>``,
  ``kind``, ``gen`` (spawn generation), signed with :func:`internal_key` — a key derived from
  the orchestrator's secret, never the secret itself. The orchestrator mints and verifies them;
  a bot only reads their expiry to refresh in time.
* Control tokens (orchestrator → bot): signed with the bot's ``BOT_CONTROL_KEY`` (hex, from
  :func:`control_key`, used as the HMAC key as-is), ``aud="flotilla-control"``,
  ``sub=<instance id>``; the bot verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt

INTERNAL_AUDIENCE = "flotilla-internal"
CONTROL_AUDIENCE = "flotilla-control"
ALGORITHM = "HS256"


class TokenError(Exception):
    """A token is missing, malformed, expired, or for someone else."""


def derive_key(secret_key: str, purpose: bytes, length: int = 32) -> bytes:
    """A key for one purpose from the orchestrator's secret (HKDF-SHA256, ``info=purpose``).

    The orchestrator derives every key it signs or encrypts with through this function (admin
    JWTs, secrets at rest, CSRF tokens, internal tokens), so no two uses share a key.
    """
    # Imported here: a bot process never derives keys, and cryptography is slow to import.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(
        secret_key.encode()
    )


def internal_key(secret_key: str) -> bytes:
    """The key that signs internal-API (bot → orchestrator) tokens."""
    return derive_key(secret_key, b"flotilla-internal-jwt")


def control_key(secret_key: str, instance_id: str, gen: int) -> str:
    """Return the hex control key for one spawn of one bot (its ``BOT_CONTROL_KEY``).

    Re-derivable after an orchestrator restart: ``HMAC-SHA256(secret_key,
    "flotilla-control:{id}:{gen}")`` as hex.
    """
    message = f"flotilla-control:{instance_id}:{gen}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def mint_control_token(key: str, instance_id: str, *, ttl_s: int = 60) -> str:
    """Mint a control-API token (what the orchestrator sends to a bot).

    Args:
        key: the bot's ``BOT_CONTROL_KEY`` (see :func:`control_key`).
        instance_id: the bot it is for (``sub``).
        ttl_s: lifetime in seconds.

    Returns:
        The encoded JWT.
    """
    now = int(time.time())
    claims = {"aud": CONTROL_AUDIENCE, "sub": instance_id, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_control_token(token: str, key: str, instance_id: str) -> dict[str, Any]:
    """Check a control-API token.

    Args:
        token: the bearer token.
        key: this bot's ``BOT_CONTROL_KEY``.
        instance_id: this bot's id; ``sub`` must equal it.

    Returns:
        The verified claims.

    Raises:
        TokenError: bad signature, wrong audience or subject, expired, malformed.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=CONTROL_AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    if claims.get("sub") != instance_id:
        raise TokenError("token is for another instance")
    return claims


def mint_internal_token(
    secret_key: str, instance_id: str, *, kind: str, gen: int, ttl_s: int = 3600
) -> str:
    """Mint an internal-API token for one spawn of one bot.

    Args:
        secret_key: the orchestrator's secret (the token is signed with :func:`internal_key`).
        instance_id: ``sub``.
        kind: bot kind.
        gen: spawn generation.
        ttl_s: lifetime in seconds.

    Returns:
        The encoded JWT.
    """
    now = int(time.time())
    claims = {
        "aud": INTERNAL_AUDIENCE,
        "sub": instance_id,
        "kind": kind,
        "gen": gen,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, internal_key(secret_key), algorithm=ALGORITHM)


def verify_internal_token(secret_key: str, token: str) -> dict[str, Any]:
    """Check a bot's internal token: signature, audience, expiry (the caller checks ``sub``,
    ``kind`` and ``gen`` against its records).

    Raises:
        TokenError: the token is not acceptable.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            internal_key(secret_key),
            algorithms=[ALGORITHM],
            audience=INTERNAL_AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    return claims


def unverified_expiry(token: str) -> float | None:
    """Return a token's ``exp`` without verifying it (the bot cannot; it only schedules refresh).

    Args:
        token: an encoded JWT.

    Returns:
        ``exp`` as epoch seconds, or ``None`` when the token has none or is not a JWT.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None
