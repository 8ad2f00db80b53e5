"""`userbase import` and `userbase export`: users in and out, in bulk, with progress."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from userbase.cli_output import console

if TYPE_CHECKING:
    from userbase.bulk_import import BulkImport
    from userbase.bulk_import import Progress as ImportProgress
    from userbase.import_checkpoint import Checkpoint


def _ensure_schema() -> None:
    """Upgrade the embedded default, or exit 1 when a server database is behind the code."""
    from userbase.config import get_settings
    from userbase.database import engine
    from userbase.readiness import NotFitToServe, ensure_schema

    try:
        ensure_schema(engine, get_settings())
    except NotFitToServe as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


class FileFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


def _progress(description: str) -> Progress:
    """A progress bar on stderr with rows and rows/s; the ETA follows bytes or ids."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        # Only for a person watching: in a pipe or a CI log, the closing summary line is enough.
        disable=not console.is_terminal,
    )


def import_users(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A .csv or .jsonl file."),
    ],
    fmt: Annotated[
        FileFormat | None,
        typer.Option("--format", help="csv or jsonl; by default, from the file's extension."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Rows per transaction.")
    ] = 1000,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue a stopped import after its last committed batch."),
    ] = False,
    skip: Annotated[
        int, typer.Option(min=0, help="Skip the first N records (resume by hand).")
    ] = 0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and report; write nothing.")
    ] = False,
    trust_account_state: Annotated[
        bool,
        typer.Option(
            "--trust-account-state",
            help="Import is_admin, is_active, email_verified and created_at (only from a file "
            "you trust: it can make admins).",
        ),
    ] = False,
    raw_csv: Annotated[
        bool,
        typer.Option(
            "--raw-csv", help="Take CSV cells as written (from `export --raw-csv` or elsewhere)."
        ),
    ] = False,
    rejected: Annotated[
        Path | None,
        typer.Option(help="Where rejected rows go.", show_default="FILE.rejected.csv"),
    ] = None,
) -> None:
    """Import users from CSV or JSON Lines: username, email, display_name, password_hash.

    The header (CSV) or keys (JSON) are username and email, and optionally display_name and
    password_hash (argon2, bcrypt, Django pbkdf2_sha256 or scrypt; replaced by argon2id at the
    user's first sign-in); with --trust-account-state also is_admin, is_active, email_verified
    and created_at. A row without a hash gets an unusable password: that user must reset it.
    A CSV cell written escaped by `export` ('=..., '+..., '-..., '@..., '') loses its quote.
    Invalid rows, and rows whose username or email is taken (in the database or earlier in the
    file), go to FILE.rejected.csv (FILE.rejected-2.csv when that exists) with the reason; a row
    already in the database as it is in the file counts as already imported. Each batch is one
    transaction, recorded in FILE.import-state.json once committed: after Ctrl-C (it stops after
    the current batch), a kill or a crash, --resume continues after the last committed batch.

    Example: userbase import users.csv --batch-size 2000

    Example: userbase import users.jsonl --dry-run

    Example: userbase import users.csv --resume   (continue after an interruption)

    Example: userbase import moved.csv --trust-account-state   (a file from `userbase export
    --include-account-state`)
    """
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from userbase import import_checkpoint
    from userbase.bulk_import import BulkImport
    from userbase.import_rows import ImportFileError, detect_format
    from userbase.readiness import error_summary

    if resume and (skip or dry_run):
        console.print(
            "[red]--resume takes up where the import stopped: not with --skip or --dry-run.[/]"
        )
        raise typer.Exit(1)
    _ensure_schema()
    try:
        file_format = fmt.value if fmt else detect_format(file)
        checkpoint = (
            _checkpoint_to_resume(file, file_format, raw_csv, trust_account_state, rejected)
            if resume
            else None
        )
    except ImportFileError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    if not resume and not dry_run and import_checkpoint.checkpoint_path_for(file).exists():
        console.print(
            f"[yellow]an earlier import of {file} did not finish; this one starts over (rows "
            "already in the database are counted as already imported). --resume would have "
            "continued it.[/]"
        )
    started = time.monotonic()
    with _progress("dry run" if dry_run else "importing") as bar, _ctrl_c_stops() as stop:
        task = bar.add_task("", total=file.stat().st_size or 1, rows=0, rate=0.0)
        if checkpoint is not None:
            console.print(f"resuming after record {checkpoint.records:,}")

        def on_batch(progress: "ImportProgress") -> None:
            rate = progress.records / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=progress.bytes_read, rows=progress.records, rate=rate)

        job = BulkImport(
            file,
            file_format,
            batch_size=batch_size,
            skip=skip,
            dry_run=dry_run,
            raw_csv=raw_csv,
            account_state=trust_account_state,
            rejected_path=rejected,
            resume_from=checkpoint,
            on_batch=on_batch,
            should_stop=stop.is_set,
        )
        try:
            job.run()
        except (ImportFileError, SQLAlchemyError) as exc:
            console.print(f"[red]{error_summary(exc)}[/]")
            _print_resume(file, _has_committed(job))
            raise typer.Exit(1) from exc
        except KeyboardInterrupt:  # the second Ctrl-C: the batch in flight was rolled back
            stop.set()
    _print_summary(job.progress, time.monotonic() - started, dry_run, job.rejected_file)
    if stop.is_set():
        _print_resume(file, _has_committed(job))
        raise typer.Exit(130)


def _has_committed(job: "BulkImport") -> bool:
    """Whether the job leaves a checkpoint to resume from: its own, or the one it resumed."""
    return not job.dry_run and (job.progress.records > 0 or job.resume_from is not None)


def _checkpoint_to_resume(
    file: Path, file_format: str, raw_csv: bool, account_state: bool, rejected: Path | None
) -> "Checkpoint":
    """The checkpoint of the stopped import of `file`, if it fits the options given."""
    from userbase import import_checkpoint

    checkpoint = import_checkpoint.load(file)
    import_checkpoint.check_resumable(
        checkpoint,
        file,
        "csv" if file_format == "csv" else "jsonl",
        raw_csv=raw_csv,
        account_state=account_state,
    )
    if rejected is not None and rejected != Path(checkpoint.rejected_path):
        raise import_checkpoint.CannotResume(
            f"The import of {file} writes its rejected rows to {checkpoint.rejected_path}: "
            "resume it without --rejected."
        )
    return checkpoint


@contextmanager
def _ctrl_c_stops() -> Iterator[threading.Event]:
    """The first Ctrl-C sets the event (stop after this batch); a second one interrupts."""
    stop = threading.Event()

    def on_sigint(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]stopping after this batch (Ctrl-C again to stop at once)[/]")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_summary(
    progress: "ImportProgress", seconds: float, dry_run: bool, rejected_path: Path
) -> None:
    rate = progress.records / max(seconds, 1e-6)
    console.print(
        f"{'would import' if dry_run else 'imported'} {progress.imported:,} rows, "
        f"rejected {progress.rejected:,}{f' (see {rejected_path})' if progress.rejected else ''}, "
        f"already imported {progress.already_imported:,}; "
        f"{progress.records:,} records in {seconds:.1f} s ({rate:,.0f} rows/s)"
    )


def _print_resume(file: Path, committed: bool) -> None:
    """The command that continues the import, when it committed something to continue."""
    from userbase import import_checkpoint

    if not committed:
        return
    try:
        checkpoint = import_checkpoint.load(file)
    except import_checkpoint.CannotResume:
        return
    options = " ".join(import_checkpoint.resume_options(checkpoint, file))
    console.print(
        f"[yellow]stopped after record {checkpoint.records:,}: every finished batch is "
        f"committed. Resume with:[/]\n  userbase import {file} {options}"
    )


def export(
    fmt: Annotated[FileFormat, typer.Option("--format", help="csv or jsonl.")] = FileFormat.csv,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write.", show_default="stdout"),
    ] = None,
    include_hashes: Annotated[
        bool, typer.Option("--include-hashes", help="Also export the password hashes.")
    ] = False,
    include_account_state: Annotated[
        bool,
        typer.Option(
            "--include-account-state",
            help="Also export is_admin, is_active, email_verified and created_at.",
        ),
    ] = False,
    raw_csv: Annotated[
        bool,
        typer.Option(
            "--raw-csv",
            help="Write CSV cells as they are, without the quote that stops spreadsheet formulas.",
        ),
    ] = False,
    page_size: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per query.")] = 1000,
) -> None:
    """Export every user (username, email, display_name) in the format `import` reads.

    Streams the table a keyset page at a time; password hashes only with --include-hashes,
    the account state (is_admin, is_active, email_verified, created_at) only with
    --include-account-state: with both, `import --trust-account-state` into an empty database
    gives back the same users, but not their ids, sign-ins, mail or audit trail: to keep a copy
    of the service, dump the database with its own tools (docs/operations.md). A CSV cell that a
    spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return) or
    that starts with ' is written after a ' (OWASP), which `import` removes; --raw-csv writes
    cells as they are.
    A file given with --output appears complete or not at all.

    Example: userbase export --format jsonl --output users.jsonl

    Example: userbase export --include-hashes --include-account-state -o users.csv   (to move
    users to another userbase)
    """
    import os
    import sys
    import time

    from userbase.bulk_export import export_users, last_id

    _ensure_schema()
    started = time.monotonic()
    with _progress("exporting") as bar:
        task = bar.add_task("", total=last_id() or 1, rows=0, rate=0.0)

        def on_page(rows: int, last: int) -> None:
            rate = rows / max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=last, rows=rows, rate=rate)

        def write(out: TextIO) -> int:
            return export_users(
                out,
                fmt.value,
                include_hashes=include_hashes,
                include_account_state=include_account_state,
                raw_csv=raw_csv,
                page_size=page_size,
                on_page=on_page,
            )

        if output is None:
            written = write(sys.stdout)
        else:
            partial = output.with_name(output.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8", newline="") as out:
                    written = write(out)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            os.replace(partial, output)
    console.print(f"exported {written:,} users in {time.monotonic() - started:.1f} s")


def register(app: typer.Typer) -> None:
    """Add `import` and `export` to the `userbase` command."""
    app.command("import")(import_users)
    app.command("export")(export)
