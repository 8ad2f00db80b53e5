"""`userbase` commands that administer accounts: admins, passwords, tokens, mail, audit events.

Each account action calls its workflow in accounts.py, recorded in the audit trail with the
channel "cli" (audit.CLI). userbase/cli.py adds these commands with register().
"""

from typing import Annotated, Any, NoReturn

import typer

from userbase.cli_output import console


def _password_option(envvar: str) -> Any:
    """A password read from --password, else the environment, else a prompt (asked twice)."""
    return typer.Option(
        envvar=envvar,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help=f"Read from {envvar} or a prompt when absent.",
    )


def _on_database_time() -> None:
    """Keep time by the database's clock, as the server does (clock.py): a purge on a host
    whose clock runs ahead must not delete what is still live."""
    from userbase.clock import CLOCK
    from userbase.database import engine

    CLOCK.synchronize(engine)


def _fail_on_invalid(errors: list[Any]) -> NoReturn:
    for error in errors:
        where = ".".join(map(str, error["loc"]))
        console.print(f"[red]{where + ': ' if where else ''}{error['msg']}[/red]")
    raise typer.Exit(1)


def create_admin(
    username: Annotated[str, typer.Option(help="The admin's username.")],
    email: Annotated[str, typer.Option(help="The admin's email address.")],
    password: Annotated[str, _password_option("USERBASE_ADMIN_PASSWORD")],
) -> None:
    """Create an active admin. An existing user with this username is made an admin (with this
    password) only when their address is this one; otherwise nothing changes (see
    promote-admin).

    Example: USERBASE_ADMIN_PASSWORD=... userbase create-admin --username root --email r@example.com
    """
    from pydantic import ValidationError

    from userbase import accounts, audit, users
    from userbase.database import SessionLocal
    from userbase.schemas import UserCreate

    try:
        data = UserCreate(username=username, email=email, password=password)
    except ValidationError as exc:
        _fail_on_invalid(exc.errors())
    try:
        with SessionLocal.begin() as session:
            user, created = accounts.create_admin(
                session,
                username=data.username,
                email=data.email,
                password=data.password,
                context=audit.CLI,
            )
            name, user_id = user.username, user.id
    except (accounts.EmailMismatch, users.UserExists) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if created:
        console.print(f"created admin {name} (id {user_id})")
    else:
        console.print(f"promoted {name} (id {user_id}) to admin; their tokens are revoked")


def promote_admin(
    user_id: Annotated[int, typer.Option("--id", min=1, help="The account's id.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask; promote the account as it is.")
    ] = False,
) -> None:
    """Make an existing account an active admin, named by its id; its address is shown first.

    Example: userbase promote-admin --id 42
    """
    from userbase import accounts, audit, users
    from userbase.database import SessionLocal

    try:
        with SessionLocal.begin() as session:
            user = users.lock_user(session, user_id)
            console.print(f"account {user.id}: {user.username} <{user.email}>")
            if not yes and not typer.confirm("Make this account an admin?", err=True):
                raise typer.Exit(1)
            accounts.promote_admin(session, user_id, context=audit.CLI)
    except users.UserNotFound as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"account {user_id} is an active admin")


def set_password(
    username: Annotated[str, typer.Argument(help="Whose password to set (any letter case).")],
    password: Annotated[str, _password_option("USERBASE_NEW_PASSWORD")],
) -> None:
    """Set a user's password (hashed like the API does); every token of theirs is revoked.

    Example: userbase set-password ada
    """
    from pydantic import TypeAdapter, ValidationError

    from userbase import accounts, audit, users
    from userbase.database import SessionLocal
    from userbase.schemas import Password

    try:
        TypeAdapter(Password).validate_python(password)
    except ValidationError as exc:
        _fail_on_invalid([{**error, "loc": ("password",)} for error in exc.errors()])
    with SessionLocal.begin() as session:
        user = users.find_by_username(session, username)
        if user is None:
            console.print(f"[red]no user named {username}[/red]")
            raise typer.Exit(1)
        accounts.set_password(session, user, password, context=audit.CLI)
        name = user.username
    console.print(f"password set for {name}; their tokens are revoked")


def reset_mfa(
    user_id: Annotated[int, typer.Option("--id", min=1, help="The account's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask; reset as it is.")] = False,
) -> None:
    """Remove every second factor (authenticator app, recovery codes) of a user who lost their
    device, as an admin's DELETE /users/{id}/mfa does: audited, and the user is mailed.

    Example: userbase reset-mfa --id 42
    """
    from userbase import audit, users
    from userbase.database import SessionLocal
    from userbase.mfa import factors

    try:
        with SessionLocal.begin() as session:
            user = users.lock_user(session, user_id)
            console.print(f"account {user.id}: {user.username} <{user.email}>")
            if not yes and not typer.confirm("Remove this account's second factors?", err=True):
                raise typer.Exit(1)
            removed = factors.reset(session, None, user_id, context=audit.CLI)
    except users.UserNotFound as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if removed:
        console.print(f"account {user_id}: second factors removed; the user is mailed")
    else:
        console.print(f"account {user_id} had no second factor; nothing changed")


def purge_tokens(
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Rows per transaction.")] = 1000,
) -> None:
    """Delete expired bearer tokens (and mfa_tokens and passkey challenges), a batch per
    transaction (no long lock on a live table).

    Example: userbase purge-tokens   (run it from cron, e.g. hourly)
    """
    _on_database_time()
    from userbase import auth
    from userbase.database import SessionLocal
    from userbase.mfa import challenges, passkey_challenges

    total = 0
    for purge in (
        auth.purge_expired_tokens,
        challenges.purge_expired,
        passkey_challenges.purge_expired,
    ):
        while True:
            with SessionLocal.begin() as session:
                purged = purge(session, batch_size=batch_size)
            total += purged
            if purged < batch_size:
                break
    console.print(f"purged {total} expired tokens")


def send_mail() -> None:
    """Deliver the mails that are due in the outbox, once (the server also does it by itself).

    Batch after batch, until none is due or one fails. Exit code 1 if a mail failed: it is
    tried again after its back-off, or has given up (see `userbase resend-mail`).

    Example: USERBASE_SMTP_URL=smtp://user:pw@mail.example.com:587 userbase send-mail
    """
    _on_database_time()
    from userbase import mail, mail_delivery
    from userbase.database import SessionLocal

    report = mail_delivery.deliver_until_done(SessionLocal)
    with SessionLocal() as session:
        given_up = mail.given_up_count(session)
    console.print(
        f"sent {report.sent}, failed {report.failed} (retried after a back-off), "
        f"left for the next round {report.released}; {given_up} gave up"
        + (" (`userbase resend-mail` queues them again)" if given_up else "")
    )
    if report.failed:
        raise typer.Exit(1)


def resend_mail() -> None:
    """Queue the mails that gave up again (USERBASE_MAIL_MAX_ATTEMPTS failed attempts).

    Their links may have expired meanwhile: the mail still goes, and the user can ask for a
    new link. Example: userbase resend-mail
    """
    from userbase import mail
    from userbase.database import SessionLocal

    with SessionLocal.begin() as session:
        queued = mail.resend_given_up(session)
    console.print(f"queued {queued} mails that had given up; they go out with the next round")


def purge_mail(
    days: Annotated[
        int | None,
        typer.Option(min=1, help="Keep this many days (default USERBASE_MAIL_RETENTION_DAYS)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Rows per transaction.")] = 1000,
) -> None:
    """Delete mails sent longer ago than the retention period, a batch per transaction.

    Unsent mails, and mails that gave up, stay. Example: userbase purge-mail --days 7
    """
    from datetime import timedelta

    from userbase import mail
    from userbase.config import get_settings
    from userbase.database import SessionLocal

    kept = timedelta(days=days or get_settings().mail_retention_days)
    total = 0
    while True:
        with SessionLocal.begin() as session:
            purged = mail.purge_sent(session, older_than=kept, batch_size=batch_size)
        total += purged
        if purged < batch_size:
            break
    console.print(f"purged {total} mails sent more than {kept.days} days ago")


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
    _on_database_time()
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


def register(app: typer.Typer) -> None:
    """Add these commands to the `userbase` command."""
    app.command("create-admin")(create_admin)
    app.command("promote-admin")(promote_admin)
    app.command("set-password")(set_password)
    app.command("reset-mfa")(reset_mfa)
    app.command("purge-tokens")(purge_tokens)
    app.command("send-mail")(send_mail)
    app.command("resend-mail")(resend_mail)
    app.command("purge-mail")(purge_mail)
    app.command("purge-events")(purge_events)
