"""Bulk import of users: a file streamed in batches, one transaction per batch, resumable.

Rows that cannot be imported (invalid, repeating an earlier row of the file, or whose username or
email is another user's) are rejected with a reason into FILE.rejected.csv, never a crash. A row
whose user is already in the database as the row describes it (a resumed or repeated import) is
counted as already imported. Memory holds one batch, whatever the size of the file. A user
imported without a password hash gets an unusable one (security.unusable_password_hash): nobody
can log in as them until it is reset. After each committed batch, import_checkpoint records where
the import stands, for --resume.
"""

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Row, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from userbase import import_checkpoint, users
from userbase.database import SQLITE_BEGIN_OPTION, SessionLocal, engine
from userbase.import_checkpoint import Checkpoint
from userbase.import_rejects import RejectedFile, rejected_path_for, unused_path
from userbase.import_rows import (
    ACCOUNT_STATE_FIELDS,
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

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A valid row, with where it came from (for a rejection found later, in the database)."""

    line: int
    row: ImportRow
    fields: Mapping[str, Any]
    username_key: str
    email_key: str


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of a batch's rows besides those inserted."""

    rejected: list[Rejected] = field(default_factory=list)
    already_imported: int = 0

    def __add__(self, other: "BatchOutcome") -> "BatchOutcome":
        return BatchOutcome(
            self.rejected + other.rejected, self.already_imported + other.already_imported
        )


@dataclass(slots=True)
class Progress:
    """Where this run stands after its last finished batch (records counted after the skip)."""

    records: int = 0
    already_imported: int = 0
    rejected: int = 0
    bytes_read: int = 0

    @property
    def imported(self) -> int:
        return self.records - self.already_imported - self.rejected


@dataclass
class BulkImport:
    """Import `path` in batches of `batch_size` records.

    `on_batch` is called after each batch; when `should_stop` answers True after a batch, the
    import stops there (its checkpoint stays, for `resume_from`). `account_state`: the rows may
    set is_admin, is_active, email_verified and created_at. `raw_csv`: CSV cells are taken as
    written, with no formula escaping to undo. A new import writes its rejected rows to a file of
    its own (FILE.rejected.csv, or FILE.rejected-2.csv when that one exists); `--skip` and
    `resume_from` append to theirs. No earlier rejected file is ever replaced or shortened.
    """

    path: Path
    fmt: Format
    batch_size: int = 1000
    skip: int = 0
    dry_run: bool = False
    raw_csv: bool = False
    account_state: bool = False
    rejected_path: Path | None = None
    resume_from: Checkpoint | None = None
    on_batch: Callable[[Progress], None] = lambda _progress: None
    should_stop: Callable[[], bool] = lambda: False
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        if self.resume_from is not None:
            self.skip = self.resume_from.records
            self.rejected_path = Path(self.resume_from.rejected_path)
        elif self.skip == 0:
            self.rejected_path = unused_path(self.rejected_path or rejected_path_for(self.path))
        else:
            self.rejected_path = self.rejected_path or rejected_path_for(self.path)
        self._rejected = RejectedFile(self.rejected_path, account_state=self.account_state)
        self._file_identity = import_checkpoint.file_identity(self.path)
        # A real run finds a row repeating one of an earlier batch in the database (the first
        # was committed); a dry run commits nothing, so it remembers every key it has seen.
        self._seen: dict[str, dict[str, int]] = {"username": {}, "email": {}}
        self._email_key = _case_key_function(engine.dialect.name)

    @property
    def rejected_file(self) -> Path:
        return self._rejected.path

    @property
    def resume_skip(self) -> int:
        """The records of the file handled so far, from its start: where a resume continues."""
        return self.skip + self.progress.records

    def run(self) -> Progress:
        if self.resume_from is not None:
            self._rejected.complete(self.resume_from)
        # utf-8-sig: a byte order mark (spreadsheets write one) is not part of the first name.
        with (
            self.path.open("rb") as raw,
            io.TextIOWrapper(raw, "utf-8-sig", newline="") as text,
            memoized_email_domains(),
        ):
            options = {"raw_csv": self.raw_csv, "account_state": self.account_state}
            records = islice(read_records(text, self.fmt, **options), self.skip, None)
            try:
                for batch in _batches(records, self.batch_size):
                    self._finish(len(batch), self._import(batch), raw.tell())
                    if self.should_stop():
                        return self.progress
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"{self.path.name} is not UTF-8 after record {self.resume_skip}."
                ) from exc
        if not self.dry_run:
            import_checkpoint.remove(self.path)  # read to the end: nothing left to resume
        return self.progress

    def _finish(self, records: int, outcome: BatchOutcome, bytes_read: int) -> None:
        """Count the batch, checkpoint it (it is committed), then write its rejected rows."""
        self.progress.records += records
        self.progress.rejected += len(outcome.rejected)
        self.progress.already_imported += outcome.already_imported
        self.progress.bytes_read = bytes_read
        rejected = self._rejected.render(outcome.rejected)
        self._save_checkpoint(rejected)
        self._rejected.append(rejected.encode())
        self.on_batch(self.progress)

    def _save_checkpoint(self, pending_rejects: str) -> None:
        if self.dry_run:
            return
        file_size, file_mtime_ns = self._file_identity
        checkpoint = Checkpoint(
            file_size=file_size,
            file_mtime_ns=file_mtime_ns,
            format=self.fmt,
            raw_csv=self.raw_csv,
            account_state=self.account_state,
            records=self.resume_skip,
            # Absolute: --resume may be run from another directory.
            rejected_path=str(self._rejected.path.absolute()),
            rejected_size=self._rejected.size,
            pending_rejects=pending_rejects,
        )
        import_checkpoint.save(self.path, checkpoint)

    def _import(self, batch: Sequence[Record]) -> BatchOutcome:
        candidates, rejected = self._candidates(batch)
        if self.dry_run:
            read_only = {SQLITE_BEGIN_OPTION: "DEFERRED"}
            with SessionLocal(execution_options=read_only) as session:
                return BatchOutcome(rejected) + sort_out_taken(session, candidates)[1]
        with SessionLocal.begin() as session:
            return BatchOutcome(rejected) + insert_candidates(session, candidates)

    def _candidates(self, batch: Sequence[Record]) -> tuple[list[Candidate], list[Rejected]]:
        """The valid rows, and the rejected ones: invalid, or repeating an earlier row."""
        if not self.dry_run:
            for seen in self._seen.values():
                seen.clear()
        candidates, rejected = [], []
        for record in batch:
            row = validate(record, account_state=self.account_state)
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


# What a row already in the database is compared on, to tell a row imported before from a clash.
_STORED = (
    User.id,
    User.username_key,
    User.email_key,
    User.username,
    User.email,
    User.display_name,
    User.password_hash,
    *(getattr(User, name) for name in ACCOUNT_STATE_FIELDS),
)


def sort_out_taken(
    session: Session, candidates: Sequence[Candidate]
) -> tuple[list[Candidate], BatchOutcome]:
    """Split `candidates` into those still free, those already imported (their user is in the
    database as they describe it) and the rejected (their username or email is someone else's)."""
    if not candidates:
        return [], BatchOutcome()
    stored = session.execute(
        select(*_STORED).where(
            or_(
                User.username_key.in_([c.username_key for c in candidates]),
                User.email_key.in_([c.email_key for c in candidates]),
            )
        )
    ).all()
    by_username = {row.username_key: row for row in stored}
    by_email = {row.email_key: row for row in stored}
    fresh, rejected, already_imported = [], [], 0
    for candidate in candidates:
        outcome = _outcome(
            candidate, by_username.get(candidate.username_key), by_email.get(candidate.email_key)
        )
        if outcome is None:
            fresh.append(candidate)
        elif isinstance(outcome, Rejected):
            rejected.append(outcome)
        else:
            already_imported += 1
    return fresh, BatchOutcome(rejected, already_imported)


def _outcome(
    candidate: Candidate, same_username: Row[Any] | None, same_email: Row[Any] | None
) -> Rejected | bool | None:
    """None: free; True: already imported; else why it is rejected."""
    if same_username is None and same_email is None:
        return None
    if (
        same_username is not None
        and same_email is not None
        and same_username.id == same_email.id
        and is_same_user(candidate.row, same_username)
    ):
        return True
    taken = "username" if same_username is not None else "email"
    return Rejected(candidate.line, str(users.UserExists(taken)), candidate.fields)


def is_same_user(row: ImportRow, stored: Row[Any]) -> bool:
    """The stored user is the one `row` describes: the same names, the same hash when the row
    has one, the same account state where the row gives it."""
    if (stored.username, stored.email, stored.display_name) != (
        row.username,
        row.email,
        row.display_name,
    ):
        return False
    if row.password_hash is not None and stored.password_hash != row.password_hash:
        return False
    given = row.model_fields_set.intersection(ACCOUNT_STATE_FIELDS)
    return all(getattr(stored, name) == getattr(row, name) for name in given)


# The columns an import writes, in COPY's order; username_key and email_key are computed.
COLUMNS = (
    "username",
    "email",
    "display_name",
    "password_hash",
    "is_active",
    "is_admin",
    "email_verified",
    "created_at",
    "updated_at",
    "version",
)
_COPY = f"COPY users ({', '.join(COLUMNS)}) FROM STDIN"


def insert_candidates(session: Session, candidates: Sequence[Candidate]) -> BatchOutcome:
    """Insert the batch; return the rows found already imported and those refused. Never commits.

    The whole batch goes in one statement, in a savepoint. Only when that hits a unique
    constraint are the taken rows looked up and set aside, so a file of new users costs no
    lookup at all, and a file imported twice costs one lookup per batch.
    """
    if not candidates:
        return BatchOutcome()
    now = utcnow()
    rows = {c.line: _row(c.row, now) for c in candidates}
    if _insert_in_savepoint(session, list(rows.values())):
        return BatchOutcome()
    fresh, outcome = sort_out_taken(session, candidates)
    if _insert_in_savepoint(session, [rows[c.line] for c in fresh]):
        return outcome
    # Taken between the lookup and the insert (a concurrent writer), or a letter case that the
    # database folds differently from Python: find those rows one at a time.
    return outcome + _insert_one_at_a_time(session, fresh, rows)


def _row(row: ImportRow, now: datetime) -> tuple[Any, ...]:
    return (
        row.username,
        row.email,
        row.display_name,
        row.password_hash or unusable_password_hash(),
        row.is_active,
        row.is_admin,
        row.email_verified,
        row.created_at or now,
        now,
        1,
    )


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


def _insert_one_at_a_time(
    session: Session, candidates: Sequence[Candidate], rows: Mapping[int, tuple[Any, ...]]
) -> BatchOutcome:
    outcome = BatchOutcome()
    for candidate in candidates:
        if not _insert_in_savepoint(session, [rows[candidate.line]]):
            outcome += _clash(session, candidate)
    return outcome


def _clash(session: Session, candidate: Candidate) -> BatchOutcome:
    """Why `candidate` could not be inserted, found with the keys as the database folds them."""
    row = candidate.row
    same_username, same_email = (
        session.execute(select(*_STORED).where(key == func.lower(value))).first()
        for key, value in ((User.username_key, row.username), (User.email_key, row.email))
    )
    if same_username is None and same_email is None:
        # Gone when looked for (deleted meanwhile): the clash is reported all the same.
        taken = users.UserExists("username or email")
        return BatchOutcome([Rejected(candidate.line, str(taken), candidate.fields)])
    found = _outcome(candidate, same_username, same_email)
    return (
        BatchOutcome([found]) if isinstance(found, Rejected) else BatchOutcome(already_imported=1)
    )
