"""The bench's own PostgreSQL database: made, migrated by userbase, loaded by COPY, dropped."""

import io
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
# The columns a loaded row sets; id is given so that ids are dense and known, the *_key columns
# are computed by PostgreSQL itself.
_COPY = (
    "COPY users (id, username, email, password_hash, display_name, is_active, is_admin, "
    "created_at, updated_at, version) FROM STDIN"
)
_ROWS_PER_CHUNK = 50_000
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BenchDatabase:
    host: str
    port: int
    name: str

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{self.name}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{self.name}"

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn, autocommit=True)

    def server_version(self) -> str:
        with self.connect() as connection:
            return str(_scalar(connection, "SHOW server_version"))

    def count_users(self) -> int:
        with self.connect() as connection:
            return int(_scalar(connection, "SELECT count(*) FROM users"))

    def id_before_last_page(self, page: int) -> int:
        """The `after` whose page is the table's last `page` rows."""
        with self.connect() as connection:
            return int(
                _scalar(connection, "SELECT id FROM users ORDER BY id DESC OFFSET %s LIMIT 1", page)
            )

    def load_users(self, total: int, password_hash: str) -> float:
        """Add users with COPY until the table holds `total`; returns the seconds it took."""
        started = datetime.now(UTC)
        with self.connect() as connection:
            missing = total - int(_scalar(connection, "SELECT count(*) FROM users"))
            if missing <= 0:
                return 0.0
            # Ids taken from the sequence, so a server inserting meanwhile cannot collide.
            first = int(
                _scalar(connection, "SELECT nextval(pg_get_serial_sequence('users', 'id'))")
            )
            connection.execute(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), %s)", (first + missing - 1,)
            )
            with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                for start in range(first, first + missing, _ROWS_PER_CHUNK):
                    end = min(start + _ROWS_PER_CHUNK, first + missing)
                    copy.write(_rows(start, end, password_hash))
            # Hint bits and the visibility map set, statistics fresh: the table as it would be
            # after autovacuum, not straight after a bulk load.
            connection.execute("VACUUM (ANALYZE) users")
        return (datetime.now(UTC) - started).total_seconds()


def _scalar(
    connection: psycopg.Connection[tuple[object, ...]], query: str, *params: object
) -> object:
    row = connection.execute(query, params or None).fetchone()
    assert row is not None, query
    return row[0]


def _rows(start: int, end: int, password_hash: str) -> bytes:
    out = io.StringIO()
    for n in range(start, end):
        created = (_EPOCH + timedelta(seconds=n)).isoformat()
        out.write(
            f"{n}\tuser{n}\tuser{n}@example.com\t{password_hash}\tUser {n}\tt\tf\t"
            f"{created}\t{created}\t1\n"
        )
    return out.getvalue().encode()


@contextmanager
def bench_database(host: str, port: int, userbase_cli: Path) -> Iterator[BenchDatabase]:
    """A new database, migrated by `userbase migrate`, dropped on the way out whatever happened."""
    database = BenchDatabase(host, port, f"userbase_bench_{secrets.token_hex(4)}")
    admin_dsn = f"postgresql://postgres@{host}:{port}/postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name)))
    try:
        subprocess.run(
            [str(userbase_cli), "migrate"],
            check=True,
            cwd=ROOT,
            # USERBASE_* as the servers get them: the signing keys migrate makes are sealed
            # under USERBASE_SECRET_KEY, which the servers must be able to open.
            env={
                **{k: v for k, v in os.environ.items() if k.startswith("USERBASE_")},
                "PATH": "/usr/bin:/bin",
                "DATABASE_URL": database.sqlalchemy_url,
            },
            capture_output=True,
        )
        yield database
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            # FORCE: a peer left stuck "idle in transaction" must not keep the database alive.
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database.name)
                )
            )
