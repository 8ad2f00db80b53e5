"""Bulk export of users as CSV or JSON Lines, a keyset page at a time, in the import's format.

Each page is read in its own short transaction (`WHERE id > last ORDER BY id LIMIT n`), so the
export never loads the table, never holds a long transaction, and costs the same per page however
deep it is. It is not a snapshot: a user created behind the cursor during the export is not in it.
Password hashes and the account state (admin, active, verified, created at) are written only when
asked for; an unusable hash (a user imported without a password) is written empty, so exporting
and importing again gives the same users. CSV cells are escaped against formula injection
(csv_cells.py) unless `raw_csv`.
"""

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TextIO

import orjson
from sqlalchemy import Row, bindparam, func, select

from userbase.csv_cells import CsvWriter
from userbase.database import SQLITE_BEGIN_OPTION, engine
from userbase.import_rows import ACCOUNT_STATE_FIELDS, FIELDS, Format
from userbase.models import User
from userbase.security import is_usable_password_hash

_READ_ONLY = {SQLITE_BEGIN_OPTION: "DEFERRED"}


def columns_for(*, include_hashes: bool, include_account_state: bool) -> tuple[str, ...]:
    """The export's columns (the CSV header), in the import's order."""
    return (
        *(FIELDS if include_hashes else FIELDS[:3]),
        *(ACCOUNT_STATE_FIELDS if include_account_state else ()),
    )


def _page_statement(columns: Sequence[str]) -> Any:
    return (
        select(User.id, *(getattr(User, name) for name in columns))
        .where(User.id > bindparam("after"))
        .order_by(User.id)
        .limit(bindparam("limit"))
    )


def last_id() -> int:
    """The highest id now: the export's progress is measured against it (no COUNT(*))."""
    with engine.connect().execution_options(**_READ_ONLY) as connection:
        return connection.scalar(select(func.max(User.id))) or 0


def pages(columns: Sequence[str], *, page_size: int) -> Iterator[Sequence[Row[Any]]]:
    """Every user's `columns` (and id), ordered by id, `page_size` rows at a time."""
    statement = _page_statement(columns)
    after = 0
    while True:
        with engine.connect().execution_options(**_READ_ONLY) as connection:
            page = connection.execute(statement, {"after": after, "limit": page_size}).all()
        if not page:
            return
        yield page
        after = page[-1].id


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC to the microsecond, always with its fraction: one spelling per instant."""
    return value.isoformat(timespec="microseconds")


def _fields(row: Row[Any], columns: Sequence[str]) -> dict[str, Any]:
    fields = {name: getattr(row, name) for name in columns}
    if "password_hash" in fields and not is_usable_password_hash(fields["password_hash"]):
        fields["password_hash"] = None
    if "created_at" in fields:
        fields["created_at"] = timestamp(fields["created_at"])
    return fields


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export_users(
    out: TextIO,
    fmt: Format,
    *,
    include_hashes: bool = False,
    include_account_state: bool = False,
    raw_csv: bool = False,
    page_size: int = 1000,
    on_page: Callable[[int, int], None] = lambda _rows, _last_id: None,
) -> int:
    """Write every user to `out`; `on_page(rows so far, last id)` after each page. Returns rows."""
    columns = columns_for(
        include_hashes=include_hashes, include_account_state=include_account_state
    )
    writer = CsvWriter(out, raw=raw_csv)
    if fmt == "csv":
        writer.writerow(columns)
    written = 0
    for page in pages(columns, page_size=page_size):
        for row in page:
            fields = _fields(row, columns)
            if fmt == "csv":
                writer.writerow([_cell(fields[c]) for c in columns])
            else:
                out.write(orjson.dumps(fields).decode() + "\n")
        written += len(page)
        on_page(written, page[-1].id)
    return written
