"""The `userbase` command: serve, migrate, check, and administer users."""

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
    import uvicorn

    from userbase.config import get_settings
    from userbase.database import engine
    from userbase.logs import configure_logging
    from userbase.schema import SchemaBehind, ensure_schema

    try:
        ensure_schema(engine, auto_migrate=get_settings().should_auto_migrate)
    except SchemaBehind as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    engine.dispose()
    configure_logging(get_settings())
    uvicorn.run(
        "userbase.app:app",
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        log_level=get_settings().log_level,
        # userbase logs one line per request itself (observe.py), with the request id, and
        # formats uvicorn's own lines too (logs.py): uvicorn's logging set-up is not wanted.
        access_log=False,
        log_config=None,
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

    from userbase import users
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


@app.command()
def check(
    workers: Annotated[
        int, typer.Option(envvar="WORKERS", min=1, help="Workers that will serve (for the budget).")
    ] = 1,
) -> None:
    """Check the configuration: settings, database reachable, schema at head, connection budget,
    durability settings (and Redis when configured). Exits 1 when a check fails.

    Example: DATABASE_URL=postgresql+psycopg://app@db/app WORKERS=4 userbase check
    """
    from rich.table import Table

    from userbase.checks import config_summary, run_checks
    from userbase.config import get_settings
    from userbase.database import engine

    settings = get_settings()
    out = Console()
    summary = Table("setting", "value", title="configuration", title_justify="left")
    for name, value in config_summary(settings, workers):
        summary.add_row(name, value)
    out.print(summary)
    results = Table("check", "", "detail", title="checks", title_justify="left")
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    failed = False
    for result in run_checks(engine, settings, workers):
        results.add_row(result.name, f"[{colours[result.status]}]{result.status}", result.detail)
        failed = failed or result.status == "fail"
    out.print(results)
    raise typer.Exit(1 if failed else 0)
