"""Bulk export of users as CSV or JSON Lines, a keyset page at a time, in the import's format.

Each page is read in its own short transaction (`WHERE id > last ORDER BY id LIMIT n`), so the
export never loads the table, never holds a long transaction, and costs the same per page however
deep it is. It is not a snapshot: a user created behind the cursor during the export is not in it.
Password hashes are written only when asked for; an unusable hash (a user imported without a
password) is written empty, so exporting and importing again gives the same users.
"""

import csv
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

import orjson
from sqlalchemy import Row, bindparam, func, select

from userbase.database import SQLITE_BEGIN_OPTION, engine
from userbase.import_rows import FIELDS, Format
from userbase.models import User
from userbase.security import is_usable_password_hash

_READ_ONLY = {SQLITE_BEGIN_OPTION: "DEFERRED"}


def _page_statement(include_hashes: bool) -> Any:
    columns = [User.id, User.username, User.email, User.display_name]
    if include_hashes:
        columns.append(User.password_hash)
    return (
        select(*columns)
        .where(User.id > bindparam("after"))
        .order_by(User.id)
        .limit(bindparam("limit"))
    )


def last_id() -> int:
    """The highest id now: the export's progress is measured against it (no COUNT(*))."""
    with engine.connect().execution_options(**_READ_ONLY) as connection:
        return connection.scalar(select(func.max(User.id))) or 0


def pages(*, include_hashes: bool, page_size: int) -> Iterator[Sequence[Row[Any]]]:
    """Every user, ordered by id, `page_size` rows at a time."""
    statement = _page_statement(include_hashes)
    after = 0
    while True:
        with engine.connect().execution_options(**_READ_ONLY) as connection:
            page = connection.execute(statement, {"after": after, "limit": page_size}).all()
        if not page:
            return
        yield page
        after = page[-1].id


def _fields(row: Row[Any], include_hashes: bool) -> dict[str, Any]:
    fields = {"username": row.username, "email": row.email, "display_name": row.display_name}
    if include_hashes:
        usable = is_usable_password_hash(row.password_hash)
        fields["password_hash"] = row.password_hash if usable else None
    return fields


def export_users(
    out: TextIO,
    fmt: Format,
    *,
    include_hashes: bool = False,
    page_size: int = 1000,
    on_page: Callable[[int, int], None] = lambda _rows, _last_id: None,
) -> int:
    """Write every user to `out`; `on_page(rows so far, last id)` after each page. Returns rows."""
    columns = FIELDS if include_hashes else FIELDS[:3]
    writer = csv.writer(out, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(columns)
    written = 0
    for page in pages(include_hashes=include_hashes, page_size=page_size):
        for row in page:
            fields = _fields(row, include_hashes)
            if fmt == "csv":
                writer.writerow(["" if fields[c] is None else fields[c] for c in columns])
            else:
                out.write(orjson.dumps(fields).decode() + "\n")
        written += len(page)
        on_page(written, page[-1].id)
    return written
