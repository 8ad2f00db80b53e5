"""Noticing a database server that stops answering without closing the connection.

A silent network partition, or a server that hangs, leaves a query waiting for an answer that
never comes: the server's own statement timeout cannot fire for a server we cannot hear, and
TCP notices only through keep-alive, after two hours by default. So the client bounds its own
waits: no read on a PostgreSQL or MariaDB connection waits longer than the statement timeout
plus READ_TIMEOUT_MARGIN_SECONDS, after which the connection is closed and the request answers
503 (a lost connection: db_errors.py). The margin lets the server's statement timeout answer
first, with its more precise error. With the statement timeout off (0) reads wait as long as
they must, and only the kernel's checks below apply.

The kernel's checks come on top, for PostgreSQL (libpq's parameters): keep-alive probes on idle
connections and a TCP user timeout on unacknowledged data, both of DEAD_PEER_SECONDS or the
read timeout. They notice a real partition even with no statement timeout; they cannot notice a
peer whose kernel still acknowledges (a proxy that stopped forwarding), which the read timeout
does. PyMySQL turns keep-alive on with the kernel's timings and offers no more.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from userbase.config import Settings

# Seconds a read may wait beyond the statement timeout: the server cancels a slow statement
# at the statement timeout and answers within this (a round trip and a rollback).
READ_TIMEOUT_MARGIN_SECONDS = 2.0
# Kernel checks when reads are unbounded (no statement timeout): a dead peer within a minute.
DEAD_PEER_SECONDS = 60


def read_timeout_seconds(settings: Settings) -> float | None:
    """How long a read may wait for the server, or None when statements may run forever."""
    if settings.statement_timeout_ms == 0:
        return None
    return settings.statement_timeout_ms / 1000 + READ_TIMEOUT_MARGIN_SECONDS


def mariadb_connect_args(settings: Settings) -> dict[str, Any]:
    """PyMySQL's socket timeouts: a read or write waiting longer fails with 2013 (lost)."""
    timeout = read_timeout_seconds(settings)
    return {} if timeout is None else {"read_timeout": timeout, "write_timeout": timeout}


def postgresql_connect_args(settings: Settings) -> dict[str, Any]:
    """libpq's keep-alive and TCP user timeout (https://www.postgresql.org/docs/current/
    libpq-connect.html): a peer silent for about the read timeout is given up."""
    dead_after = int(read_timeout_seconds(settings) or DEAD_PEER_SECONDS)
    probes = 3
    return {
        "keepalives": 1,
        "keepalives_idle": max(1, dead_after - probes),
        "keepalives_interval": 1,
        "keepalives_count": probes,
        "tcp_user_timeout": dead_after * 1000,
    }


def connect_postgresql(cargs: Any, cparams: Any, settings: Settings) -> Any:
    """A psycopg connection whose every wait for the server ends after the read timeout.

    libpq has no read timeout; psycopg waits for the socket in Python (Connection.wait), with a
    timeout it uses for cancellation and Ctrl-C. Waits given no timeout get the read timeout.
    """
    connection = _psycopg_with_read_timeout().connect(*cargs, **cparams)
    connection.read_timeout = read_timeout_seconds(settings)
    return connection


@contextmanager
def no_read_timeout(dbapi_connection: Any) -> Iterator[None]:
    """Reads on this connection wait as long as they must (migrations: a statement may rewrite
    a large table), until the block ends."""
    # PyMySQL's own attribute, or ours on psycopg; SQLite has no read timeout.
    attribute = next(
        (a for a in ("_read_timeout", "read_timeout") if hasattr(dbapi_connection, a)), None
    )
    if attribute is None:
        yield
        return
    saved = getattr(dbapi_connection, attribute)
    setattr(dbapi_connection, attribute, None)
    try:
        yield
    finally:
        setattr(dbapi_connection, attribute, saved)


@cache
def _psycopg_with_read_timeout() -> Any:
    # Built on first use: SQLite deployments never import psycopg.
    import psycopg
    from psycopg import errors

    class ReadTimeoutConnection(psycopg.Connection[Any]):
        read_timeout: float | None = None

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            if timeout is not None or self.read_timeout is None:
                return super().wait(gen, interval, timeout)
            try:
                return super().wait(gen, interval, self.read_timeout)
            except errors._WaitTimeout as exc:
                # The exchange stopped halfway: nothing more can be read or sent on this
                # connection. Closed, it counts as lost (SQLAlchemy invalidates the pool).
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"could not receive data from server: no answer within {self.read_timeout:g} s"
                ) from exc

    return ReadTimeoutConnection
