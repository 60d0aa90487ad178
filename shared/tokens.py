"""JWTs between the orchestrator and its bots (see docs/internals.md).

* Internal API tokens: minted by the orchestrator, ``aud="flotilla-internal"``; a bot only reads
  their expiry to refresh in time.
* Control tokens: minted by the orchestrator with the bot's ``BOT_CONTROL_KEY`` (a hex string,
  used as the HMAC key as-is), ``aud="flotilla-control"``, ``sub=<instance id>``; the bot verifies.
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


def derive_control_key(secret_key: str, instance_id: str, gen: int) -> str:
    """Return the hex control key for one spawn of one bot.

    Args:
        secret_key: the orchestrator's secret.
        instance_id: bot instance id.
        gen: spawn generation.

    Returns:
        ``HMAC-SHA256(secret_key, "flotilla-control:{id}:{gen}")`` as hex.
    """
    message = f"flotilla-control:{instance_id}:{gen}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def mint_control_token(control_key: str, instance_id: str, *, ttl_s: int = 300) -> str:
    """Mint a control-API token (what the orchestrator sends to a bot).

    Args:
        control_key: the bot's ``BOT_CONTROL_KEY``.
        instance_id: the bot it is for (``sub``).
        ttl_s: lifetime in seconds.

    Returns:
        The encoded JWT.
    """
    now = int(time.time())
    claims = {"aud": CONTROL_AUDIENCE, "sub": instance_id, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, control_key, algorithm=ALGORITHM)


def verify_control_token(token: str, control_key: str, instance_id: str) -> dict[str, Any]:
    """Check a control-API token.

    Args:
        token: the bearer token.
        control_key: this bot's ``BOT_CONTROL_KEY``.
        instance_id: this bot's id; ``sub`` must equal it.

    Returns:
        The verified claims.

    Raises:
        TokenError: bad signature, wrong audience or subject, expired, malformed.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            control_key,
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
    secret: str, instance_id: str, *, kind: str, gen: int, ttl_s: int = 3600
) -> str:
    """Mint an internal-API token (orchestrator side; also used by test fakes).

    Args:
        secret: the orchestrator's signing secret.
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
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


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
