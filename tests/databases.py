"""Throwaway databases on the three engines: one fresh database per test run, dropped after."""

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pymysql

ENGINES = ("sqlite", "postgresql", "mariadb")

POSTGRES_HOST = os.environ.get("USERBASE_TEST_POSTGRES_HOST", "127.0.0.1")
MARIADB_HOST = os.environ.get("USERBASE_TEST_MARIADB_HOST", "127.0.0.1")


@dataclass(frozen=True)
class TestDatabase:
    engine: str
    name: str
    url: str

    def drop(self) -> None:
        drop_database(self)


def create_database(engine: str) -> TestDatabase:
    """Make a new, empty database on `engine` and return its SQLAlchemy URL."""
    name = f"userbase_test_{os.getpid()}_{secrets.token_hex(3)}"
    if engine == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="userbase-test-")) / f"{name}.db"
        return TestDatabase(engine, str(path), f"sqlite:///{path}")
    if engine == "postgresql":
        with psycopg.connect(
            host=POSTGRES_HOST, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return TestDatabase(engine, name, f"postgresql+psycopg://postgres@{POSTGRES_HOST}/{name}")
    if engine == "mariadb":
        conn = pymysql.connect(host=MARIADB_HOST, user="root", password="")
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
        finally:
            conn.close()
        return TestDatabase(engine, name, f"mysql+pymysql://root@{MARIADB_HOST}/{name}")
    raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")


def drop_database(database: TestDatabase) -> None:
    if database.engine == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(database.name + suffix).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the run's own folder, if nothing else is left in it
            Path(database.name).parent.rmdir()
        return
    if database.engine == "postgresql":
        with psycopg.connect(
            host=POSTGRES_HOST, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
        return
    conn = pymysql.connect(host=MARIADB_HOST, user="root", password="")
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database.name}`")
    finally:
        conn.close()
