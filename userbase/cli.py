"""The `userbase` command: serve, migrate, check, administer, import and export users."""

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from userbase import __version__, cli_accounts, cli_bulk, cli_tokens
from userbase.cli_output import console

if TYPE_CHECKING:
    from sqlalchemy import Engine


app = typer.Typer(
    help="userbase: the users service. Settings come from DATABASE_URL and USERBASE_*.",
    no_args_is_help=True,
    add_completion=False,
)


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
    """Upgrade the database schema to the latest revision, saying which revision runs.

    Interrupted or failed, it can be run again: it completes what the previous run left.

    Example: DATABASE_URL=postgresql+psycopg://app@db/app userbase migrate
    """
    from userbase.database import engine
    from userbase.schema_revision import current_revision, upgrade_to_head
    from userbase.tokens import keys

    running = "?"

    def starting(revision: str, title: str) -> None:
        nonlocal running
        running = revision
        console.print(f"applying revision {revision}: {title}", markup=False)

    try:
        upgrade_to_head(engine, on_revision=starting)
    except Exception as exc:
        console.print(
            f"revision {running} failed: {type(exc).__name__}: {exc}\n"
            f"The schema is at revision {_revision_or_unknown(engine)}; the revisions before "
            "it are complete. Fix the cause above, then run `userbase migrate` again: a "
            "revision that was interrupted or failed halfway is completed by the re-run.",
            markup=False,
        )
        raise typer.Exit(1) from exc
    keys.prepare()  # a new database gets its signing keys here
    console.print(f"schema at revision {current_revision(engine)}")


def _revision_or_unknown(engine: "Engine") -> str:
    from userbase.schema_revision import current_revision

    try:
        return current_revision(engine) or "none"
    except Exception:
        return "unknown (the database does not answer)"


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
    from userbase.worker_metrics import shared_by_workers

    # First: importing userbase's modules makes its metrics, in that directory if there is one.
    with shared_by_workers(1 if reload else workers):
        _serve(host, port, workers, reload)


def _serve(host: str, port: int, workers: int, reload: bool) -> None:
    import uvicorn

    from userbase.config import get_settings
    from userbase.database import engine
    from userbase.logs import configure_logging
    from userbase.readiness import NotFitToServe, ensure_fit_to_serve
    from userbase.serving import uvicorn_options, warn_if_metrics_exposed

    settings = get_settings()
    try:
        ensure_fit_to_serve(engine, settings, workers=1 if reload else workers)
    except NotFitToServe as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    engine.dispose()
    configure_logging(settings)
    warn_if_metrics_exposed(host, settings)
    uvicorn.run(
        "userbase.app:app",
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        log_level=settings.log_level,
        # userbase logs one line per request itself (observe.py), with the request id, and
        # formats uvicorn's own lines too (logs.py): uvicorn's logging set-up is not wanted.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_grace,
        # uvicorn kills a worker that does not answer its supervisor's ping within 5 s, and a
        # worker answers only once Python has started and imported the command: with `--workers
        # 2` on a busy 2-core machine (load 10), one was killed that way on each start.
        timeout_worker_healthcheck=30,
        **uvicorn_options(settings),
    )


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

    from userbase.config import get_settings
    from userbase.database import engine
    from userbase.readiness import run_checks

    settings = get_settings()
    out = Console()
    summary = Table("setting", "value", title="configuration", title_justify="left")
    for name, value in settings.summary(workers):
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


cli_accounts.register(app)
cli_bulk.register(app)
cli_tokens.register(app)
