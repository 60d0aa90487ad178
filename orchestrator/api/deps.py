"""FastAPI dependencies: settings, DB session, supervisor, current user and role checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from orchestrator.models import User
from orchestrator.security import SecretBox, decode_access_token
from orchestrator.settings import Settings
from orchestrator.supervisor import Supervisor

SESSION_COOKIE = "flotilla_session"

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    """The app's settings (built once in ``create_app``)."""
    return request.app.state.settings  # type: ignore[no-any-return]


def get_engine(request: Request) -> Engine:
    """The app's database engine."""
    return request.app.state.engine  # type: ignore[no-any-return]


def get_db(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """One session per request."""
    with Session(engine) as session:
        yield session


def get_box(request: Request) -> SecretBox:
    """The secret encryptor keyed from the orchestrator secret key."""
    return request.app.state.box  # type: ignore[no-any-return]


def get_supervisor(request: Request) -> Supervisor:
    """The app's bot supervisor (one per app, built in ``create_app``)."""
    return request.app.state.supervisor  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
BoxDep = Annotated[SecretBox, Depends(get_box)]
SupervisorDep = Annotated[Supervisor, Depends(get_supervisor)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def get_current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The signed-in user, from a bearer token or the admin UI's session cookie."""
    user = user_for_token(session, settings, token or request.cookies.get(SESSION_COOKIE))
    request.state.user = user
    return user


def user_for_token(session: Session, settings: Settings, token: str | None) -> User:
    """The active user an admin token (bearer or session cookie) names.

    The one place a token becomes a user: :func:`get_current_user` and the body-limit
    middleware (which checks the token before a large body is read) both call it.

    Raises:
        HTTPException: 401 when there is no token, it is invalid or expired, or its user is
            disabled or gone.
    """
    if not token:
        raise _unauthorized("not authenticated")
    try:
        claims = decode_access_token(settings.resolved_secret_key(), token)
        uid = str(claims["sub"])
        version = int(claims["ver"])
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
        raise _unauthorized("invalid or expired token") from exc
    # ``sub`` is the user's random uid, never reused: a deleted user's token names nobody, even
    # when a new user gets the old integer id. ``ver`` must be the user's current token version
    # (bumped on sign-out, password or role change, deactivation).
    user = session.exec(select(User).where(User.uid == uid)).first()
    if user is None or not user.active:
        raise _unauthorized("user is disabled or gone")
    if version != user.token_version:
        raise _unauthorized("token was revoked; sign in again")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_admin(user: CurrentUser) -> User:
    """Only admins pass."""
    if user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin role required")
    return user


def require_writer(user: CurrentUser) -> User:
    """Admins and users pass; guests are read-only."""
    if user.role == "guest":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "guests have read-only access")
    return user


AdminUser = Annotated[User, Depends(require_admin)]
WriterUser = Annotated[User, Depends(require_writer)]
