"""Schema operations a revision can run again after an interruption: each checks first.

MariaDB commits each DDL statement as it runs (no transactional DDL), so a `userbase migrate`
killed in the middle of a revision leaves the revision's first tables, columns and indexes in
place, and the revision unrecorded: the re-run would fail on them ("Duplicate key name",
"Table already exists"). Revisions therefore use these instead of `alembic.op`'s own: each
looks with the inspector whether its object is already there (or already gone) and does
nothing if so. Each one is a single DDL statement, which MariaDB applies whole or not at all,
so "already there" means "done". On PostgreSQL and SQLite a revision runs in one transaction
and an interruption leaves nothing behind; the checks cost a catalog query each.

A statement still running on the server for a killed `userbase migrate` (the server finishes
an ALTER whose client is gone) is not yet visible to the check; the re-run's own statement
then waits for it and fails with "already exists". On MariaDB that error is taken as "done"
too, after looking again: its DDL has no transaction for the error to spoil.

Usage in a revision: `from userbase.migrations import rerunnable`, then
`rerunnable.create_index(op.f("ix_tokens_user_id"), "tokens", ["user_id"])`.
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import SchemaItem

# MariaDB's "it is already there / already gone" errors: 1050 table exists, 1060 duplicate
# column, 1061 duplicate key name, 1826 duplicate foreign key, 1051 unknown table, 1091 cannot
# drop (no such column or key). https://mariadb.com/kb/en/mariadb-error-code-reference/
_MARIADB_ALREADY_DONE = frozenset({1050, 1051, 1060, 1061, 1091, 1826})


def _inspector() -> Inspector:
    # A new inspector each time: an inspector caches what it read, and the schema changes.
    return sa.inspect(op.get_bind())


def _has_index(table: str, name: str) -> bool:
    inspector = _inspector()
    return inspector.has_table(table) and any(
        index["name"] == name for index in inspector.get_indexes(table)
    )


def _has_column(table: str, name: str) -> bool:
    inspector = _inspector()
    return inspector.has_table(table) and any(
        column["name"] == name for column in inspector.get_columns(table)
    )


def _has_constraint(table: str, name: str) -> bool:
    inspector = _inspector()
    if not inspector.has_table(table):
        return False
    names = [
        *(c["name"] for c in inspector.get_unique_constraints(table)),
        *(c["name"] for c in inspector.get_foreign_keys(table)),
        *(c["name"] for c in inspector.get_check_constraints(table)),
        inspector.get_pk_constraint(table).get("name"),
    ]
    return name in names


def _unless(done: Callable[[], bool], operation: Callable[[], object]) -> None:
    """Run `operation` unless `done()`; on MariaDB, an "already exists/gone" error raised
    while `done()` has become true (a killed run's statement finished meanwhile) is success."""
    if done():
        return
    try:
        operation()
    except DBAPIError as exc:
        errno = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
        if (
            op.get_bind().dialect.name in ("mysql", "mariadb")
            and errno in _MARIADB_ALREADY_DONE
            and done()
        ):
            return
        raise


def create_table(name: str, *columns: SchemaItem, **kw: Any) -> None:
    """`op.create_table`, unless the table exists (CREATE TABLE with its constraints is one
    statement: a table that exists is complete)."""
    _unless(lambda: _inspector().has_table(name), lambda: op.create_table(name, *columns, **kw))


def drop_table(name: str) -> None:
    _unless(lambda: not _inspector().has_table(name), lambda: op.drop_table(name))


def add_column(table: str, column: sa.Column[Any]) -> None:
    _unless(lambda: _has_column(table, column.name), lambda: op.add_column(table, column))


def drop_column(table: str, name: str) -> None:
    _unless(lambda: not _has_column(table, name), lambda: op.drop_column(table, name))


def create_index(name: str, table: str, columns: Sequence[str], **kw: Any) -> None:
    _unless(
        lambda: _has_index(table, name), lambda: op.create_index(name, table, list(columns), **kw)
    )


def drop_index(name: str, table_name: str) -> None:
    _unless(
        lambda: not _has_index(table_name, name), lambda: op.drop_index(name, table_name=table_name)
    )


def create_unique_constraint(name: str, table: str, columns: Sequence[str]) -> None:
    _unless(
        lambda: _has_constraint(table, name),
        lambda: op.create_unique_constraint(name, table, list(columns)),
    )


def create_foreign_key(
    name: str,
    source_table: str,
    referent_table: str,
    local_columns: Sequence[str],
    remote_columns: Sequence[str],
    **kw: Any,
) -> None:
    _unless(
        lambda: _has_constraint(source_table, name),
        lambda: op.create_foreign_key(
            name, source_table, referent_table, list(local_columns), list(remote_columns), **kw
        ),
    )


def drop_constraint(name: str, table: str, type_: str | None = None) -> None:
    _unless(
        lambda: not _has_constraint(table, name),
        lambda: op.drop_constraint(name, table, type_=type_),
    )
