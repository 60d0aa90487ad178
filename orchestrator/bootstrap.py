"""First-run setup: the initial admin account."""

from __future__ import annotations

import os

from sqlalchemy.engine import Engine
from sqlmodel import Session

from orchestrator import crud
from orchestrator.schemas import UserCreate
from orchestrator.settings import Settings


class WeakAdminPasswordError(RuntimeError):
    """``FLOTILLA_ADMIN_PASSWORD`` does not satisfy the password policy."""


def ensure_admin(settings: Settings, engine: Engine) -> str | None:
    """Create ``admin`` when no user exists.

    The password is ``FLOTILLA_ADMIN_PASSWORD``, else a random one written to
    ``<data dir>/initial-admin.txt`` (0600). Returns the random password (for the CLI to print
    once), or ``None`` when nothing was generated.

    Raises:
        WeakAdminPasswordError: ``FLOTILLA_ADMIN_PASSWORD`` is too short or too guessable.
    """
    with Session(engine) as session:
        if crud.count_users(session=session) > 0:
            return None
        generated = not settings.admin_password
        policy = settings.password_policy()
        password = settings.admin_password or policy.generate()
        try:
            crud.create_user(
                session=session,
                user_in=UserCreate(username="admin", password=password, role="admin"),
                policy=policy,
            )
        except crud.FieldError as exc:
            raise WeakAdminPasswordError(
                f"FLOTILLA_ADMIN_PASSWORD is refused: {exc.msg}. Choose a longer, less "
                "guessable one (or unset it to get a random password)."
            ) from exc
        crud.audit(
            session=session,
            actor=None,
            action="user.bootstrap",
            object_type="user",
            object_id="admin",
        )
    if not generated:
        return None
    path = settings.data_dir / "initial-admin.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"username: admin\npassword: {password}\n")
    return password
