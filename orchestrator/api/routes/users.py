"""Users API (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from sqlmodel import col, select

from orchestrator import crud
from orchestrator.api.deps import AdminUser, SessionDep, SettingsDep
from orchestrator.models import User
from orchestrator.schemas import UserCreate, UserPublic, UserUpdate

router = APIRouter(prefix="/admin/users", tags=["users"])

#: A user id as the database can hold it (SQLite and PostgreSQL integers are 64-bit): a larger
#: number is a 422, not an OverflowError in the driver.
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("", response_model=list[UserPublic])
def list_users(session: SessionDep, _admin: AdminUser) -> list[UserPublic]:
    """Every user."""
    return [_public(u) for u in session.exec(select(User).order_by(col(User.id))).all()]


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(
    user_in: UserCreate, session: SessionDep, admin: AdminUser, settings: SettingsDep
) -> UserPublic:
    """Create a user with a role. A weak password is a 422 saying why (the password policy:
    ``FLOTILLA_PASSWORD_MIN_LENGTH`` and a zxcvbn score of ``FLOTILLA_PASSWORD_MIN_SCORE``)."""
    user = crud.create_user(session=session, user_in=user_in, policy=settings.password_policy())
    crud.audit(
        session=session,
        actor=admin,
        action="user.create",
        object_type="user",
        object_id=str(user.id),
        detail={"username": user.username, "role": user.role},
    )
    return _public(user)


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(
    user_id: UserId,
    user_in: UserUpdate,
    session: SessionDep,
    admin: AdminUser,
    settings: SettingsDep,
) -> UserPublic:
    """Change a user's role, password or active flag. A new password, another role or
    deactivation signs the user out everywhere (their tokens are revoked)."""
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "user not found")
    if user.id == admin.id and (user_in.role not in (None, "admin") or user_in.active is False):
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot demote or disable yourself")
    user = crud.update_user(
        session=session, user=user, user_in=user_in, policy=settings.password_policy()
    )
    changed = user_in.model_dump(exclude_unset=True, exclude={"password"})
    if user_in.password is not None:
        changed["password"] = "changed"  # noqa: S105 - a marker, not a password
    crud.audit(
        session=session,
        actor=admin,
        action="user.update",
        object_type="user",
        object_id=str(user.id),
        detail=changed,
    )
    return _public(user)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: UserId, session: SessionDep, admin: AdminUser) -> Response:
    """Delete a user who owns nothing. One who still owns bots or knowledge bases is a 409
    whose detail lists them (``bots``, ``knowledge_bases``: ids) to reassign or delete first.
    The user's tokens die with them (tokens name the user's random uid, never reused)."""
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "user not found")
    if user.id == admin.id:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot delete yourself")
    owned = crud.owned_by(session=session, user_id=user_id)
    if any(owned.values()):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            {
                "message": (
                    f"user {user.username!r} still owns bots or knowledge bases; reassign them "
                    "(owner_id) or delete them first"
                ),
                **owned,
            },
        )
    session.delete(user)
    crud.audit(
        session=session,
        actor=admin,
        action="user.delete",
        object_type="user",
        object_id=str(user_id),
        detail={"username": user.username},
        commit=False,
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
