"""``flotilla`` command line: serve, migrate, create-user."""

from __future__ import annotations

import argparse
import sys

from sqlmodel import Session

from orchestrator import crud
from orchestrator.bootstrap import WeakAdminPasswordError, ensure_admin
from orchestrator.crud import FieldError
from orchestrator.db import make_engine, migrate
from orchestrator.logging_setup import configure_logging
from orchestrator.schemas import UserCreate
from orchestrator.settings import Settings


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_migrate(settings: Settings) -> int:
    """Bring the orchestrator database to the newest schema."""
    settings.ensure_dirs()
    settings.resolved_secret_key()
    migrate(settings.database_url)
    _out("database is up to date")
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    """Create a user from the command line."""
    settings.ensure_dirs()
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            user = crud.create_user(
                session=session,
                user_in=UserCreate(username=args.username, password=args.password, role=args.role),
                policy=settings.password_policy(),
            )
            _out(f"created {user.role} {user.username!r} (id {user.id})")
    except FieldError as exc:
        sys.stderr.write(f"error: {exc.msg}\n")
        return 2
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


def cmd_serve(settings: Settings) -> int:
    """Migrate, make the first admin if needed, then serve the API and UI."""
    import uvicorn

    from orchestrator.main import create_app

    configure_logging()
    settings.ensure_dirs()
    migrate(settings.database_url)
    try:
        password = ensure_admin(settings, make_engine(settings.database_url))
    except WeakAdminPasswordError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if password:
        sys.stderr.write(
            "\n  First run: created user 'admin' with password: "
            f"{password}\n  (also saved in {settings.data_dir / 'initial-admin.txt'})\n\n"
        )
    from orchestrator.api.limits import guarded_protocol

    app = create_app(settings, run_migrations=False)
    # Slow clients: a deadline for each request's headers, idle keep-alive connections closed
    # after a few seconds, headers capped at 64 KiB (the body limits are in the app).
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        http=guarded_protocol(settings.header_timeout_s),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)),
        h11_max_incomplete_event_size=64 * 1024,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flotilla`` console script."""
    parser = argparse.ArgumentParser(prog="flotilla", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the orchestrator (API, admin UI, supervisor)")
    sub.add_parser("migrate", help="bring the database to the newest schema")
    cu = sub.add_parser("create-user", help="create a user")
    cu.add_argument("--username", required=True)
    cu.add_argument("--password", required=True)
    cu.add_argument("--role", choices=["admin", "user", "guest"], default="user")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        return cmd_serve(settings)
    if args.command == "migrate":
        return cmd_migrate(settings)
    return cmd_create_user(settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
