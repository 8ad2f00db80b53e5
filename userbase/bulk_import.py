"""Bulk import of users: a file streamed in batches, one transaction per batch.

Rows that cannot be imported (invalid, repeating an earlier row of the file, or whose username or
email is already taken) are rejected with a reason into FILE.rejected.csv, never a crash. Memory
holds one batch, whatever the size of the file. A user imported without a password hash gets an
unusable one (security.unusable_password_hash): nobody can log in as them until it is reset.
"""

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import psycopg
from sqlalchemy import Connection, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from userbase import users
from userbase.database import SQLITE_BEGIN_OPTION, SessionLocal, engine
from userbase.import_rows import (
    FIELDS,
    Format,
    ImportFileError,
    ImportRow,
    Record,
    Rejected,
    memoized_email_domains,
    read_records,
    validate,
)
from userbase.models import User, utcnow
from userbase.security import unusable_password_hash

REJECTED_COLUMNS = ("line", "reason", *FIELDS)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A valid row, with where it came from (for a rejection found later, in the database)."""

    line: int
    row: ImportRow
    fields: Mapping[str, Any]
    username_key: str
    email_key: str


@dataclass(slots=True)
class Progress:
    """Where an import stands after its last finished batch (records counted after --skip)."""

    records: int = 0
    rejected: int = 0
    bytes_read: int = 0


def rejected_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".rejected.csv")


@dataclass
class BulkImport:
    """Import `path` in batches of `batch_size` records.

    `on_batch` is called after each batch; when `should_stop` answers True after a batch, the
    import stops there and `resume_skip` is the --skip that continues it.
    """

    path: Path
    fmt: Format
    batch_size: int = 1000
    skip: int = 0
    dry_run: bool = False
    rejected_path: Path | None = None
    on_batch: Callable[[Progress], None] = lambda _progress: None
    should_stop: Callable[[], bool] = lambda: False
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        self._rejected = RejectedFile(
            self.rejected_path or rejected_path_for(self.path), append=self.skip > 0
        )
        # A real run finds a row repeating one of an earlier batch in the database (the first
        # was committed); a dry run commits nothing, so it remembers every key it has seen.
        self._seen: dict[str, dict[str, int]] = {"username": {}, "email": {}}
        self._email_key = _case_key_function(engine.dialect.name)

    @property
    def resume_skip(self) -> int:
        """The --skip that continues this import after its last finished batch."""
        return self.skip + self.progress.records

    def run(self) -> Progress:
        self._rejected.start()
        # utf-8-sig: a byte order mark (spreadsheets write one) is not part of the first name.
        with (
            self.path.open("rb") as raw,
            io.TextIOWrapper(raw, "utf-8-sig", newline="") as text,
            memoized_email_domains(),
        ):
            records = islice(read_records(text, self.fmt), self.skip, None)
            try:
                for batch in _batches(records, self.batch_size):
                    rejected = self._import(batch)
                    self._rejected.write(rejected)
                    self._advance(len(batch), len(rejected), raw.tell())
                    if self.should_stop():
                        break
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"{self.path.name} is not UTF-8 after record {self.resume_skip}."
                ) from exc
            finally:
                self._rejected.close()
        return self.progress

    def _advance(self, records: int, rejected: int, bytes_read: int) -> None:
        self.progress.records += records
        self.progress.rejected += rejected
        self.progress.bytes_read = bytes_read
        self.on_batch(self.progress)

    def _import(self, batch: Sequence[Record]) -> list[Rejected]:
        candidates, rejected = self._candidates(batch)
        if self.dry_run:
            read_only = {SQLITE_BEGIN_OPTION: "DEFERRED"}
            with SessionLocal(execution_options=read_only) as session:
                return rejected + reject_taken(session, candidates)[1]
        with SessionLocal.begin() as session:
            return rejected + insert_candidates(session, candidates)

    def _candidates(self, batch: Sequence[Record]) -> tuple[list[Candidate], list[Rejected]]:
        """The valid rows, and the rejected ones: invalid, or repeating an earlier row."""
        if not self.dry_run:
            for seen in self._seen.values():
                seen.clear()
        candidates, rejected = [], []
        for record in batch:
            row = validate(record)
            if isinstance(row, Rejected):
                rejected.append(row)
                continue
            # Usernames are ASCII (schemas.Username): str.lower() is what every engine computes.
            keys = {"username": row.username.lower(), "email": self._email_key(row.email)}
            repeated = next((name for name, key in keys.items() if key in self._seen[name]), None)
            if repeated is not None:
                first = self._seen[repeated][keys[repeated]]
                reason = f"{repeated}: repeats line {first} of this file"
                rejected.append(Rejected(record.line, reason, record.fields))
                continue
            for name, key in keys.items():
                self._seen[name][key] = record.line
            candidates.append(
                Candidate(record.line, row, record.fields, keys["username"], keys["email"])
            )
        return candidates, rejected


def _batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    # itertools.batched arrives with Python 3.12; userbase supports 3.11.
    while batch := list(islice(records, size)):
        yield batch


def _case_key_function(dialect: str) -> Callable[[str], str]:
    """lower() as the database computes the *_key columns: SQLite folds ASCII letters only."""
    if dialect == "sqlite":
        return lambda value: value.translate(_ASCII_LOWER)
    return str.lower


def reject_taken(
    session: Session, candidates: Sequence[Candidate]
) -> tuple[list[Candidate], list[Rejected]]:
    """Split `candidates` into those still free and those whose username or email is taken."""
    if not candidates:
        return [], []
    taken = session.execute(
        select(User.username_key, User.email_key).where(
            or_(
                User.username_key.in_([c.username_key for c in candidates]),
                User.email_key.in_([c.email_key for c in candidates]),
            )
        )
    ).all()
    taken_usernames = {row.username_key for row in taken}
    taken_emails = {row.email_key for row in taken}
    fresh, rejected = [], []
    for candidate in candidates:
        if candidate.username_key in taken_usernames:
            rejected.append(_taken(candidate, "username"))
        elif candidate.email_key in taken_emails:
            rejected.append(_taken(candidate, "email"))
        else:
            fresh.append(candidate)
    return fresh, rejected


def _taken(candidate: Candidate, field_name: str) -> Rejected:
    return Rejected(candidate.line, str(users.UserExists(field_name)), candidate.fields)


# The columns an import writes, in COPY's order; username_key and email_key are computed.
COLUMNS = (
    "username",
    "email",
    "display_name",
    "password_hash",
    "is_active",
    "is_admin",
    "created_at",
    "updated_at",
    "version",
)
_COPY = f"COPY users ({', '.join(COLUMNS)}) FROM STDIN"


def insert_candidates(session: Session, candidates: Sequence[Candidate]) -> list[Rejected]:
    """Insert the batch and return the rows refused as taken. Never commits.

    The whole batch goes in one statement, in a savepoint. Only when that hits a unique
    constraint are the taken rows looked up and set aside, so a file of new users costs no
    lookup at all, and a file imported twice costs one lookup per batch.
    """
    if not candidates:
        return []
    now = utcnow()
    rows = {c.line: _row(c.row, now) for c in candidates}
    if _insert_in_savepoint(session, list(rows.values())):
        return []
    fresh, rejected = reject_taken(session, candidates)
    if _insert_in_savepoint(session, [rows[c.line] for c in fresh]):
        return rejected
    # Taken between the lookup and the insert (a concurrent writer), or a letter case that the
    # database folds differently from Python: find those rows one at a time.
    return rejected + _insert_one_at_a_time(session, fresh)


def _row(row: ImportRow, now: datetime) -> tuple[Any, ...]:
    password_hash = row.password_hash or unusable_password_hash()
    return (row.username, row.email, row.display_name, password_hash, True, False, now, now, 1)


def _insert_in_savepoint(session: Session, rows: Sequence[tuple[Any, ...]]) -> bool:
    """Insert `rows`; False (and nothing inserted) when one of them breaks a unique constraint."""
    if not rows:
        return True
    try:
        with session.begin_nested():
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                _copy(connection, rows)
            else:
                session.execute(insert(User), [dict(zip(COLUMNS, r, strict=True)) for r in rows])
    except (IntegrityError, psycopg.IntegrityError):
        return False
    return True


def _copy(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    # COPY, not executemany: measured 27 µs a row against 75 (docs/performance.md, "Import").
    driver_connection: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    with driver_connection.cursor() as cursor, cursor.copy(_COPY) as copy:
        for row in rows:
            copy.write_row(row)


def _insert_one_at_a_time(session: Session, candidates: Sequence[Candidate]) -> list[Rejected]:
    rejected = []
    for candidate in candidates:
        row = candidate.row
        try:
            with session.begin_nested():
                users.insert_user(
                    session,
                    username=row.username,
                    email=row.email,
                    password_hash=row.password_hash or unusable_password_hash(),
                    display_name=row.display_name,
                )
        except users.UserExists as exc:
            rejected.append(Rejected(candidate.line, str(exc), candidate.fields))
    return rejected


class RejectedFile:
    """FILE.rejected.csv: created at the first rejected row, appended to when resuming."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        self.append = append
        self._stream: TextIO | None = None

    def start(self) -> None:
        """A new import (not a resumed one) leaves no rejected rows of an earlier run behind."""
        if not self.append:
            self.path.unlink(missing_ok=True)

    def write(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        if self._stream is None:
            new = not (self.append and self.path.exists() and self.path.stat().st_size > 0)
            self._stream = self.path.open("w" if new else "a", encoding="utf-8", newline="")
            if new:
                csv.writer(self._stream, lineterminator="\n").writerow(REJECTED_COLUMNS)
        writer = csv.writer(self._stream, lineterminator="\n")
        for row in sorted(rejected, key=lambda r: r.line):
            writer.writerow([row.line, row.reason, *(row.fields.get(f, "") for f in FIELDS)])
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
