"""Where an import stands: FILE.import-state.json, replaced atomically after each committed batch.

`userbase import FILE --resume` reads it, so a stopped or killed import continues after its last
committed batch without a number from anyone. It is written after the batch's commit, so it is
never ahead of the database; when it lags (killed between the commit and the write), the rows
read again are found in the database as they are in the file and counted as already imported.
The batch's rejected rows are in it too, before they are appended to the rejected file, so that
an append cut short by the kill is completed, not repeated (bulk_import.RejectedFile.complete).
"""

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from userbase.import_rows import Format, ImportFileError, detect_format

_VERSION = 1


class CannotResume(ImportFileError):
    """No checkpoint for the file, or one that does not fit the file or the options given."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An import of one file, after `records` records (from the file's start) were committed."""

    file_size: int
    file_mtime_ns: int
    format: Format
    raw_csv: bool
    account_state: bool
    records: int
    rejected_path: str
    # The rejected file's size before `pending_rejects` (this batch's rows, as CSV) is appended.
    rejected_size: int
    pending_rejects: str


def checkpoint_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".import-state.json")


def file_identity(path: Path) -> tuple[int, int]:
    """Size and modification time: a file changed since the checkpoint cannot be resumed."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint of `path` whole: a reader sees the old one or the new one."""
    target = checkpoint_path_for(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(orjson.dumps({"version": _VERSION, **asdict(checkpoint)}))
    os.replace(partial, target)


def remove(path: Path) -> None:
    checkpoint_path_for(path).unlink(missing_ok=True)


def load(path: Path) -> Checkpoint:
    target = checkpoint_path_for(path)
    try:
        state: dict[str, Any] = orjson.loads(target.read_bytes())
    except FileNotFoundError as exc:
        raise CannotResume(
            f"Nothing to resume: no unfinished import of {path.name} ({target.name} is absent)."
        ) from exc
    except orjson.JSONDecodeError as exc:
        raise CannotResume(_unreadable(target)) from exc
    if not isinstance(state, dict) or state.pop("version", None) != _VERSION:
        raise CannotResume(_unreadable(target))
    try:
        return Checkpoint(**state)
    except TypeError as exc:
        raise CannotResume(_unreadable(target)) from exc


def _unreadable(target: Path) -> str:
    return (
        f"{target.name} cannot be read. Import without --resume: the rows already in the "
        "database are counted as already imported."
    )


def check_resumable(
    checkpoint: Checkpoint, path: Path, fmt: Format, *, raw_csv: bool, account_state: bool
) -> None:
    """Raise CannotResume unless `path` and the options are those the import started with."""
    if file_identity(path) != (checkpoint.file_size, checkpoint.file_mtime_ns):
        raise CannotResume(
            f"{path.name} changed since its import stopped after record {checkpoint.records}: "
            "import it without --resume (rows already in the database are counted as already "
            f"imported), or with --skip {checkpoint.records} if only its end changed."
        )
    started_with = {
        "--format": (checkpoint.format, fmt),
        "--raw-csv": (checkpoint.raw_csv, raw_csv),
        "--trust-account-state": (checkpoint.account_state, account_state),
    }
    different = [option for option, (then, now) in started_with.items() if then != now]
    if different:
        raise CannotResume(
            f"The import of {path.name} started with other options ({', '.join(different)}): "
            f"resume it with: userbase import {path} {' '.join(resume_options(checkpoint, path))}"
        )


def resume_options(checkpoint: Checkpoint, path: Path) -> list[str]:
    """--resume, and the options that make the import go on as it started."""
    options = ["--resume"]
    try:
        detected: Format | None = detect_format(path)
    except ImportFileError:
        detected = None
    if detected != checkpoint.format:
        options.append(f"--format {checkpoint.format}")
    if checkpoint.raw_csv:
        options.append("--raw-csv")
    if checkpoint.account_state:
        options.append("--trust-account-state")
    return options
