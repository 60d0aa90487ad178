"""Sign-in and sign-out: OAuth2 password flow with failure throttling that cannot lock the real
user out from elsewhere, and token revocation."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from orchestrator import crud
from orchestrator.api.deps import CurrentUser, SessionDep, SettingsDep
from orchestrator.schemas import PasswordChange, Token, UserPublic
from orchestrator.security import (
    burn_password_check,
    create_access_token,
    hash_password,
    verify_password,
)
from orchestrator.settings import Settings

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])


@dataclass
class _PairState:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


@dataclass
class LoginLimiter:
    """Failed sign-ins, counted three ways:

    * per username **and** client address: after ``free_failures`` failures each further one
      doubles a wait (``backoff_base`` … ``backoff_max`` seconds) before that address may try
      that username again; a success clears it. Another address is not affected, so failures
      from an attacker's address do not lock the real user out;
    * per address: at most ``per_address`` failures a minute over all usernames (spraying);
    * per username from all addresses: ``per_user_hour`` failures an hour (high; logged when
      reached), a ceiling against distributed guessing.
    """

    free_failures: int = 5
    backoff_base: float = 2.0
    backoff_max: float = 900.0
    per_address: int = 10
    per_user_hour: int = 500
    _pairs: dict[tuple[str, str], _PairState] = field(default_factory=dict)
    _addresses: dict[str, deque[float]] = field(default_factory=dict)
    _users: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimiter:
        """The limits of ``settings`` (``FLOTILLA_LOGIN_*``)."""
        return cls(
            free_failures=settings.login_free_failures,
            backoff_base=settings.login_backoff_base_s,
            backoff_max=settings.login_backoff_max_s,
            per_address=settings.login_attempts_per_minute,
            per_user_hour=settings.login_user_failures_per_hour,
        )

    @staticmethod
    def _window(q: deque[float], now: float, seconds: float) -> deque[float]:
        while q and now - q[0] > seconds:
            q.popleft()
        return q

    def wait(self, username: str, address: str) -> float:
        """Seconds before ``address`` may try ``username`` again (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [0.0]
            pair = self._pairs.get((username, address))
            if pair is not None:
                waits.append(pair.blocked_until - now)
            addr = self._window(self._addresses.get(address, deque()), now, 60.0)
            if len(addr) >= self.per_address:
                waits.append(60.0 - (now - addr[0]))
            user = self._window(self._users.get(username, deque()), now, 3600.0)
            if len(user) >= self.per_user_hour:
                waits.append(3600.0 - (now - user[0]))
            return max(waits)

    def fail(self, username: str, address: str) -> None:
        """Record a failed sign-in."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            pair = self._pairs.setdefault((username, address), _PairState())
            pair.failures += 1
            pair.last = now
            extra = pair.failures - self.free_failures
            if extra >= 0:
                delay = min(self.backoff_max, self.backoff_base * 2.0**min(extra, 30))
                pair.blocked_until = now + delay
            self._addresses.setdefault(address, deque()).append(now)
            user = self._window(self._users.setdefault(username, deque()), now, 3600.0)
            user.append(now)
            if len(user) == self.per_user_hour:
                logger.warning(
                    "sign-in failures for one username reached the hourly ceiling; it is "
                    "refused from every address for up to an hour",
                    extra={"username": username, "failures": len(user)},
                )

    def succeed(self, username: str, address: str) -> None:
        """A correct password: forget this pair's failures."""
        with self._lock:
            self._pairs.pop((username, address), None)

    def _prune(self, now: float) -> None:
        """Drop state nobody needs any more (bounded memory under a flood of usernames)."""
        if len(self._pairs) + len(self._addresses) + len(self._users) < 10_000:
            return
        keep = max(self.backoff_max, 3600.0)
        self._pairs = {
            k: v for k, v in self._pairs.items() if now - v.last < keep or now < v.blocked_until
        }
        self._addresses = {
            k: q for k, q in self._addresses.items() if self._window(q, now, 60.0)
        }
        self._users = {k: q for k, q in self._users.items() if self._window(q, now, 3600.0)}


def _limiter(request: Request, settings: SettingsDep) -> LoginLimiter:
    state = request.app.state
    if not hasattr(state, "login_limiter"):
        state.login_limiter = LoginLimiter.from_settings(settings)
    return state.login_limiter  # type: ignore[no-any-return]


@router.post("/token", response_model=Token)
def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    limiter: Annotated[LoginLimiter, Depends(_limiter)],
) -> Token:
    """Exchange username and password for a bearer token.

    Unknown usernames cost the same password-hashing work as wrong passwords (the answer time
    does not tell which usernames exist)."""
    client = request.client.host if request.client else "unknown"
    username = form.username.lower()
    wait = limiter.wait(username, client)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed sign-ins; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    user = crud.get_user_by_username(session=session, username=form.username)
    if user is None or not user.active:
        burn_password_check(form.password)
        ok = False
    else:
        ok = verify_password(form.password, user.password_hash)
    if user is None or not user.active or not ok:
        limiter.fail(username, client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    limiter.succeed(username, client)
    token, expires_in = create_access_token(
        settings.resolved_secret_key(),
        user_uid=user.uid,
        role=user.role,
        version=user.token_version,
        minutes=settings.access_token_minutes,
    )
    return Token(access_token=token, expires_in=expires_in)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUser, session: SessionDep) -> Response:
    """Sign out: every token of the signed-in user (this one, other devices') stops working."""
    crud.revoke_tokens(user)
    session.add(user)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password", response_model=Token)
def change_password(
    request: Request,
    body: PasswordChange,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    limiter: Annotated[LoginLimiter, Depends(_limiter)],
) -> Token:
    """Change your own password (any role, guests too): the current password, then a new one
    the password policy accepts (422 with the reason, as for a new user). A wrong current
    password is a 403 and counts as a failed sign-in (the same throttling: 429 with
    ``Retry-After``). On success every token of the user stops working (other sessions end)
    and the answer is a fresh token for this caller."""
    client = request.client.host if request.client else "unknown"
    username = user.username.lower()
    wait = limiter.wait(username, client)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many wrong passwords; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    if not verify_password(body.current_password, user.password_hash):
        limiter.fail(username, client)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is not right")
    limiter.succeed(username, client)
    if body.new_password == body.current_password:
        raise crud.FieldError(
            ["body", "new_password"], "the new password must differ from the current one"
        )
    crud.check_password(
        body.new_password,
        policy=settings.password_policy(),
        username=user.username,
        loc="new_password",
    )
    user.password_hash = hash_password(body.new_password)
    crud.revoke_tokens(user)
    session.add(user)
    crud.audit(
        session=session,
        actor=user,
        action="user.password",
        object_type="user",
        object_id=str(user.id),
        detail={"password": "changed"},
    )
    session.refresh(user)
    token, expires_in = create_access_token(
        settings.resolved_secret_key(),
        user_uid=user.uid,
        role=user.role,
        version=user.token_version,
        minutes=settings.access_token_minutes,
    )
    logger.info("password changed", extra={"user_id": user.id})
    return Token(access_token=token, expires_in=expires_in)


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return UserPublic.model_validate(user, from_attributes=True)
