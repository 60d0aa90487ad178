"""``flotilla`` command line: serve, migrate, create-user."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
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


# Third-party libraries that talk on the console: FAISS's CPU-feature probes, model-loading
# chatter and Hugging Face warnings go below the console's level; progress bars are switched off.
QUIET_LOGGERS = {
    "faiss": logging.WARNING,
    "sentence_transformers": logging.WARNING,
    "transformers": logging.ERROR,
    "huggingface_hub": logging.ERROR,
}
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def quiet_third_party() -> None:
    """Keep third-party noise out of the console (call before those libraries are imported;
    settings in the environment win)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def listen_problem(host: str, port: int, port_setting: str = "FLOTILLA_PORT") -> str | None:
    """Why ``host:port`` cannot be listened on, as one line naming the setting to change
    (``port_setting`` for the port); ``None`` when it can (the check binds and closes a socket,
    as uvicorn will)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        return f"error: cannot listen on FLOTILLA_HOST={host!r} ({exc}); set FLOTILLA_HOST"
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"error: port {port} on {host} is already in use (another Flotilla or another "
                f"program); set {port_setting} to a free port, or stop the other program"
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return (
                f"error: no permission to listen on port {port}; set {port_setting} to a port "
                "above 1023"
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            return (
                f"error: {host} is not an address of this machine; set FLOTILLA_HOST "
                "(127.0.0.1 for this machine only, 0.0.0.0 for all interfaces)"
            )
        return f"error: cannot listen on {host}:{port} ({exc}); set FLOTILLA_HOST / {port_setting}"
    return None


def first_run_block(settings: Settings, password: str) -> str:
    """The first-run notice: the generated admin password, framed so it stands out."""
    rule = "=" * 68
    return (
        f"\n{rule}\n"
        "  First run: created the administrator account\n\n"
        "      username:  admin\n"
        f"      password:  {password}\n\n"
        f"  Sign in at {(settings.public_url or settings.orchestrator_url).rstrip('/')}/login\n"
        f"  (also saved in {settings.data_dir / 'initial-admin.txt'}; delete that file once\n"
        "  you have stored the password somewhere safe)\n"
        f"{rule}\n\n"
    )


def cmd_serve(settings: Settings) -> int:
    """Check the address, migrate, make the first admin if needed, then serve the API and UI."""
    # Before anything is printed or created: a busy port or a wrong host is one clear line.
    problem = listen_problem(settings.host, settings.port)
    if not problem and settings.sandbox:
        problem = listen_problem("127.0.0.1", settings.sandbox_port, "FLOTILLA_SANDBOX_PORT")
    if problem:
        sys.stderr.write(problem + "\n")
        return 1
    quiet_third_party()
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
        sys.stderr.write(first_run_block(settings, password))
        sys.stderr.flush()
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
