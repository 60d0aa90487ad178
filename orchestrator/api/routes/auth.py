"""Sign-in: OAuth2 password flow with a per-username and per-address failure limit."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from orchestrator import crud
from orchestrator.api.deps import CurrentUser, SessionDep, SettingsDep
from orchestrator.schemas import Token, UserPublic
from orchestrator.security import create_access_token, verify_password

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginLimiter:
    """Counts failed sign-ins per username and per client address in a sliding minute."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> bool:
        """Whether any key already used up its failures in the window."""
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(k, now)) >= self.limit for k in keys)

    def fail(self, *keys: str) -> None:
        """Record one failure for each key."""
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)


def _limiter(request: Request, settings: SettingsDep) -> LoginLimiter:
    state = request.app.state
    if not hasattr(state, "login_limiter"):
        state.login_limiter = LoginLimiter(settings.login_attempts_per_minute)
    return state.login_limiter  # type: ignore[no-any-return]


@router.post("/token", response_model=Token)
def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    limiter: Annotated[LoginLimiter, Depends(_limiter)],
) -> Token:
    """Exchange username and password for a bearer token."""
    client = request.client.host if request.client else "unknown"
    keys = (f"user:{form.username.lower()}", f"addr:{client}")
    if limiter.blocked(*keys):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed sign-ins; wait a minute",
            headers={"Retry-After": "60"},
        )
    user = crud.get_user_by_username(session=session, username=form.username)
    if user is None or not user.active or not verify_password(form.password, user.password_hash):
        limiter.fail(*keys)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token, expires_in = create_access_token(
        settings.resolved_secret_key(),
        user_id=user.id or 0,
        role=user.role,
        minutes=settings.access_token_minutes,
    )
    return Token(access_token=token, expires_in=expires_in)


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return UserPublic.model_validate(user, from_attributes=True)
