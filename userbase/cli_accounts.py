"""`userbase` commands that administer accounts: admins, passwords, tokens, mail, audit events.

They register themselves on the `userbase` command (userbase/cli.py imports this module).
"""

from typing import Annotated, Any

import typer
from sqlalchemy import select

from userbase.cli import app, console


def _password_option(envvar: str) -> Any:
    """A password read from --password, else the environment, else a prompt (asked twice)."""
    return typer.Option(
        envvar=envvar,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help=f"Read from {envvar} or a prompt when absent.",
    )


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="The admin's username.")],
    email: Annotated[str, typer.Option(help="The admin's email address.")],
    password: Annotated[str, _password_option("USERBASE_ADMIN_PASSWORD")],
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
                is_admin=True,
            )
        except users.UserExists as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        console.print(f"created admin {user.username} (id {user.id})")


@app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="Whose password to set (any letter case).")],
    password: Annotated[str, _password_option("USERBASE_NEW_PASSWORD")],
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
