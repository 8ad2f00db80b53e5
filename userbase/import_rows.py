"""The rows of an import file (CSV or JSON Lines), read as a stream and validated like the API."""

import csv
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, ValidationError

from userbase.csv_cells import unescape_cell
from userbase.schemas import DisplayName, Email, Username
from userbase.security import hash_format

Format = Literal["csv", "jsonl"]
FIELDS = ("username", "email", "display_name", "password_hash")
# What an account is beyond its profile: imported only when the operator trusts the file
# (--trust-account-state), since a file that may say is_admin may mint admins.
ACCOUNT_STATE_FIELDS = ("is_admin", "is_active", "email_verified", "created_at")
ALL_FIELDS = (*FIELDS, *ACCOUNT_STATE_FIELDS)
_ACCOUNT_STATE = frozenset(ACCOUNT_STATE_FIELDS)
REQUIRED_FIELDS = ("username", "email")
_OPTIONAL_FIELDS = frozenset(ALL_FIELDS) - frozenset(REQUIRED_FIELDS)
_EXTRA_CELLS = "\0extra"
UNTRUSTED_ACCOUNT_STATE = "imported only with --trust-account-state"

# The formats security.py can verify: argon2 (any parameters), bcrypt ($2a$, $2b$, $2y$),
# Django's pbkdf2_sha256 and scrypt (docs/migrating.md). At most 255 characters, the column's.
UNSUPPORTED_HASH = (
    "unsupported password_hash format; expected argon2, bcrypt ($2a$/$2b$/$2y$), "
    "Django pbkdf2_sha256 or Django scrypt"
)


def _supported_hash(value: str) -> str:
    if len(value) > 255 or hash_format(value) is None:
        raise ValueError(UNSUPPORTED_HASH)
    return value


_EARLIEST_ACCOUNT = datetime(1970, 1, 1, tzinfo=UTC)
# Another host's clock may run a little ahead of this one; a day more is a mistake.
_CLOCK_SKEW = timedelta(days=1)


def _past_timestamp(value: datetime) -> datetime:
    if not _EARLIEST_ACCOUNT <= value <= datetime.now(UTC) + _CLOCK_SKEW:
        raise ValueError("must be between 1970-01-01 and now")
    return value


class ImportRow(BaseModel):
    """One user to import: the API's rules (schemas.py), with a hash instead of a password.

    The account state fields are read only from a trusted file (`validate`); absent, they are
    those of a new sign-up (active, not an admin, address not verified, created now).
    """

    model_config = ConfigDict(extra="forbid")

    username: Username
    email: Email
    display_name: DisplayName | None = None
    password_hash: Annotated[str, AfterValidator(_supported_hash)] | None = None
    is_admin: bool = False
    is_active: bool = True
    email_verified: bool = False
    created_at: Annotated[AwareDatetime, AfterValidator(_past_timestamp)] | None = None


class ImportFileError(ValueError):
    """The file cannot be imported at all: unknown format, a bad CSV header, not UTF-8."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the file as read: its first line, its fields, or why it cannot be read."""

    line: int
    fields: Mapping[str, Any]
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not imported, and why."""

    line: int
    reason: str
    fields: Mapping[str, Any]


def detect_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ImportFileError(f"Cannot tell the format of {path.name}: pass --format csv or jsonl.")


def read_records(
    stream: TextIO, fmt: Format, *, raw_csv: bool = False, account_state: bool = False
) -> Iterator[Record]:
    """The file's records. `raw_csv`: CSV cells as written (no escaping to undo);
    `account_state`: a CSV header may name the account state columns."""
    if fmt == "jsonl":
        return read_jsonl(stream)
    return read_csv(stream, raw=raw_csv, account_state=account_state)


def read_csv(stream: TextIO, *, raw: bool = False, account_state: bool = False) -> Iterator[Record]:
    """Records of a CSV file whose header names username, email and optionally the others."""
    reader = csv.DictReader(stream, restkey=_EXTRA_CELLS)
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in ALL_FIELDS]
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise ImportFileError(
            f"The CSV header must name {' and '.join(REQUIRED_FIELDS)}, and may name "
            f"{', '.join(ALL_FIELDS[2:])}, each once; it has: {','.join(header) or 'nothing'}."
        )
    untrusted = [name for name in header if name in ACCOUNT_STATE_FIELDS and not account_state]
    if untrusted:
        raise ImportFileError(
            f"The CSV header names {','.join(untrusted)}: account state is "
            f"{UNTRUSTED_ACCOUNT_STATE} (a file that may say is_admin can make admins); "
            "pass it if you trust this file, or remove those columns."
        )
    line = reader.line_num + 1
    for row in reader:
        problem = None
        if _EXTRA_CELLS in row:
            problem = f"more fields than the header's {len(header)}"
            del row[_EXTRA_CELLS]
        elif None in row.values():
            problem = f"fewer fields than the header's {len(header)}"
        elif not raw:
            # In place, and only for cells that start with ': the loop costs ~0.3 µs a row.
            for name, cell in row.items():
                if cell[:1] == "'":
                    row[name] = unescape_cell(cell)
        yield Record(line, row, problem)
        line = reader.line_num + 1


def read_jsonl(stream: TextIO) -> Iterator[Record]:
    """One JSON object per line; blank lines are not records."""
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            yield Record(line, {}, "not valid JSON")
            continue
        if isinstance(value, dict):
            yield Record(line, value)
        else:
            yield Record(line, {}, "not a JSON object")


def validate(record: Record, *, account_state: bool = False) -> ImportRow | Rejected:
    """The row, or why it is rejected (field names and rules; never the values).

    Without `account_state`, a record that gives one of its fields is rejected: importing it
    is the operator's explicit choice.
    """
    if record.problem is not None:
        return Rejected(record.line, record.problem, record.fields)
    # An empty optional cell is an absent one: a CSV cell cannot say null.
    fields = {
        k: v for k, v in record.fields.items() if not (k in _OPTIONAL_FIELDS and v in ("", None))
    }
    if not account_state and not _ACCOUNT_STATE.isdisjoint(fields):
        untrusted = [name for name in ACCOUNT_STATE_FIELDS if name in fields]
        if untrusted:
            reason = "; ".join(f"{name}: {UNTRUSTED_ACCOUNT_STATE}" for name in untrusted)
            return Rejected(record.line, reason, record.fields)
    try:
        return ImportRow.model_validate(fields)
    except ValidationError as exc:
        return Rejected(record.line, _reasons(exc), record.fields)


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, error['loc']))}: {error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors(include_url=False, include_input=False)
    )


@contextmanager
def memoized_email_domains() -> Iterator[None]:
    """While an import runs, validate each distinct email domain once.

    Measured on this machine kind: email_validator (behind schemas.Email) spends half of its
    60 µs per address checking the domain, a pure function of the domain string, and an import
    file has few domains for many addresses. The library's own function still decides; its
    answer for a domain it has already accepted is reused (errors are not cached).
    """
    module = sys.modules.get("email_validator.validate_email")
    original = getattr(module, "validate_email_domain_name", None)
    if module is None or original is None:  # another email_validator layout: just slower
        yield
        return
    cached = lru_cache(maxsize=4096)(original)

    def validate_domain(*args: Any, **kwargs: Any) -> Any:
        return dict(cached(*args, **kwargs))  # a copy: a caller may change what it gets

    module.validate_email_domain_name = validate_domain  # type: ignore[attr-defined]
    try:
        yield
    finally:
        module.validate_email_domain_name = original  # type: ignore[attr-defined]
