"""Make the service's queries slow without test-only code in it: hold a lock on `users`.

While the lock is held, a request that writes `users` waits inside the database (on every
engine) and so does one that reads it (PostgreSQL and MariaDB; SQLite's WAL readers never wait).
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pymysql
from sqlalchemy.engine import make_url


@contextmanager
def users_table_locked(database_url: str) -> Iterator[None]:
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        assert url.database is not None
        lite = sqlite3.connect(url.database, isolation_level=None)
        try:
            lite.execute("BEGIN IMMEDIATE")  # the write lock; WAL readers go on
            yield
            lite.execute("ROLLBACK")
        finally:
            lite.close()
    elif backend == "postgresql":
        with psycopg.connect(host=url.host, user=url.username, dbname=url.database) as pg:
            pg.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            yield
            pg.rollback()
    else:
        maria = pymysql.connect(host=url.host, user=url.username, database=url.database)
        try:
            with maria.cursor() as cursor:
                cursor.execute("LOCK TABLES users WRITE")
                yield
                cursor.execute("UNLOCK TABLES")
        finally:
            maria.close()
