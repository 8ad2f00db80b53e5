"""The `userbase` command: serve, migrate, and administer users."""

from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from userbase import __version__

app = typer.Typer(
    help="userbase: the users service. Settings come from DATABASE_URL and USERBASE_*.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"userbase {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """userbase: the users service."""


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision.

    Example: DATABASE_URL=postgresql+psycopg://app@db/app userbase migrate
    """
    from userbase.database import engine
    from userbase.schema import current_revision, upgrade_to_head

    upgrade_to_head(engine)
    console.print(f"schema at revision {current_revision(engine)}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HOST", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(envvar="WORKERS", help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart when the code changes.")] = False,
) -> None:
    """Serve the API with uvicorn (what `make run` calls).

    Example: userbase serve --host 0.0.0.0 --port 8000 --workers 2
    """
    import copy

    import uvicorn
    import uvicorn.config

    from userbase.config import get_settings
    from userbase.database import engine
    from userbase.schema import SchemaBehind, ensure_schema
    from userbase.server_checks import NotEnoughConnections, check_capacity

    settings = get_settings()
    try:
        ensure_schema(engine, auto_migrate=settings.should_auto_migrate)
        check_capacity(engine, settings, workers=1 if reload else workers)
    except (SchemaBehind, NotEnoughConnections) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    engine.dispose()
    # userbase's own log lines (database unavailable, durability, shutdown) beside uvicorn's.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["userbase"] = {
        "handlers": ["default"],
        "level": settings.log_level.upper(),
        "propagate": False,
    }
    uvicorn.run(
        "userbase.app:app",
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        log_level=settings.log_level,
        log_config=log_config,
        timeout_graceful_shutdown=settings.shutdown_grace,
    )


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="The admin's username.")],
    email: Annotated[str, typer.Option(help="The admin's email address.")],
    password: Annotated[
        str,
        typer.Option(
            envvar="USERBASE_ADMIN_PASSWORD",
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Read from USERBASE_ADMIN_PASSWORD or a prompt when absent.",
        ),
    ],
) -> None:
    """Create an active admin, or promote the existing user with that username.

    Example: USERBASE_ADMIN_PASSWORD=... userbase create-admin --username root --email r@example.com
    """
    from pydantic import ValidationError

    from userbase import auth, users
    from userbase.database import SessionLocal
    from userbase.models import User
    from userbase.schemas import UserCreate
    from userbase.security import hash_password

    try:
        data = UserCreate(username=username, email=email, password=password)
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]{'.'.join(map(str, error['loc']))}: {error['msg']}[/red]")
        raise typer.Exit(1) from exc
    password_hash = hash_password(data.password)
    with SessionLocal.begin() as session:
        existing = session.scalar(select(User).where(User.username_key == data.username.lower()))
        if existing is not None:
            existing.is_admin = True
            existing.is_active = True
            existing.password_hash = password_hash
            auth.revoke_tokens_for(session, existing.id)  # a new password ends old sessions
            console.print(f"promoted {existing.username} (id {existing.id}) to admin")
            return
        try:
            user = users.create_user(
                session,
                username=data.username,
                email=data.email,
                password_hash=password_hash,
                display_name=None,
            )
        except users.UserExists as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        user.is_admin = True
        console.print(f"created admin {user.username} (id {user.id})")


@app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="Whose password to set (any letter case).")],
    password: Annotated[
        str,
        typer.Option(
            envvar="USERBASE_NEW_PASSWORD",
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="Read from USERBASE_NEW_PASSWORD or a prompt when absent.",
        ),
    ],
) -> None:
    """Set a user's password (hashed like the API does); every token of theirs is revoked.

    Example: userbase set-password ada
    """
    from pydantic import TypeAdapter, ValidationError

    from userbase import users
    from userbase.database import SessionLocal
    from userbase.models import User
    from userbase.schemas import Password

    try:
        TypeAdapter(Password).validate_python(password)
    except ValidationError as exc:
        console.print(f"[red]password: {exc.errors()[0]['msg']}[/red]")
        raise typer.Exit(1) from exc
    with SessionLocal.begin() as session:
        user = session.scalar(select(User).where(User.username_key == username.lower()))
        if user is None:
            console.print(f"[red]no user named {username}[/red]")
            raise typer.Exit(1)
        users.set_password(session, user, password)
        console.print(f"password set for {user.username}; their tokens are revoked")


@app.command("purge-tokens")
def purge_tokens(
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Rows per transaction.")] = 1000,
) -> None:
    """Delete expired bearer tokens, a batch per transaction (no long lock on a live table).

    Example: userbase purge-tokens   (run it from cron, e.g. hourly)
    """
    from userbase import auth
    from userbase.database import SessionLocal

    total = 0
    while True:
        with SessionLocal.begin() as session:
            purged = auth.purge_expired_tokens(session, batch_size=batch_size)
        total += purged
        if purged < batch_size:
            break
    console.print(f"purged {total} expired tokens")


@app.command("send-mail")
def send_mail() -> None:
    """Deliver the mails that are due in the outbox, once (the server also does it by itself).

    Example: USERBASE_SMTP_URL=smtp://user:pw@mail.example.com:587 userbase send-mail
    """
    from userbase import mail
    from userbase.database import SessionLocal

    report = mail.deliver_due(SessionLocal, limit=10_000)
    console.print(f"sent {report.sent}, failed {report.failed} (failed ones are retried later)")
    if report.failed:
        raise typer.Exit(1)


@app.command("purge-events")
def purge_events(
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Keep this many days (default USERBASE_EVENTS_RETENTION_DAYS)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Rows per transaction.")] = 1000,
) -> None:
    """Delete audit events older than the retention period, a batch per transaction.

    Example: userbase purge-events --days 30
    """
    from userbase import audit
    from userbase.config import get_settings
    from userbase.database import SessionLocal

    cutoff = audit.retention_cutoff(days or get_settings().events_retention_days)
    total = 0
    while True:
        with SessionLocal.begin() as session:
            purged = audit.purge_events(session, older_than=cutoff, batch_size=batch_size)
        total += purged
        if purged < batch_size:
            break
    console.print(f"purged {total} events older than {cutoff:%Y-%m-%d %H:%M} UTC")
