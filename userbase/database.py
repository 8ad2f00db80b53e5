"""The bridge to the database: the tutorial's `engine`, `SessionLocal` and `get_db`, kept by name.

One session per request, opened by `get_db`, committed once when the route returned normally,
rolled back on any exception, closed always. Nothing else in userbase commits a request's work.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from userbase import read_timeouts
from userbase.admission import claim_commit, database_slot
from userbase.config import Settings, get_settings
from userbase.refusals import Refusal

# Methods that never write: their transactions may begin lazily (SQLite: deferred BEGIN).
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Connection option read by the SQLite `begin` hook below.
SQLITE_BEGIN_OPTION = "userbase_sqlite_begin"


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """Make SQLite behave like a server: WAL, busy timeout, foreign keys, writers that queue.

    pysqlite's legacy transaction handling is switched off so that SQLAlchemy emits BEGIN
    itself (SQLAlchemy docs, "Enabling Non-Legacy SQLite Transactional Modes"). Write
    transactions use BEGIN IMMEDIATE: they take the write lock at BEGIN and wait for it up to
    busy_timeout, instead of failing with "database is locked" when a deferred transaction
    tries to upgrade its read lock.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that answered success survives a power cut, not just a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def build_engine(settings: Settings) -> Engine:
    """The engine for `settings.database_url`, with the pool sized from the settings."""
    url = make_url(settings.database_url)
    kwargs: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        # Statement parameters (emails, password hashes) stay out of exception messages and logs.
        "hide_parameters": True,
    }
    if url.get_backend_name() == "sqlite":
        # A file cannot drop a connection: nothing to ping.
        kwargs["connect_args"] = {"check_same_thread": False}
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": settings.connect_timeout}
    if url.get_backend_name() in ("mysql", "mariadb"):
        url = url.update_query_dict({"charset": "utf8mb4"})
        # MariaDB counts max_statement_time in seconds; 0 means no limit, as ours does.
        seconds = settings.statement_timeout_ms / 1000
        connect_args["init_command"] = f"SET SESSION max_statement_time={seconds}"
        # A server that stops answering: read_timeouts.py.
        connect_args.update(read_timeouts.mariadb_connect_args(settings))
    else:
        # application_name lets an operator find our sessions in pg_stat_activity.
        connect_args["application_name"] = "userbase"
        # A server that stops answering: read_timeouts.py (and its connect_postgresql below).
        connect_args.update(read_timeouts.postgresql_connect_args(settings))
        if settings.pgbouncer:
            # Transaction pooling: psycopg's prepared statements would live on a server
            # connection the next transaction may not get, and PgBouncer refuses `options`.
            connect_args["prepare_threshold"] = None
        else:
            # TimeZone=UTC: timestamps come back in UTC, with no conversion (models.UTCDateTime).
            connect_args["options"] = (
                f"-c statement_timeout={settings.statement_timeout_ms} -c TimeZone=UTC"
            )
    kwargs["connect_args"] = connect_args
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "postgresql":

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            return read_timeouts.connect_postgresql(cargs, cparams, settings)

    _ping_connections_idle_for(engine, IDLE_PING_SECONDS)
    if settings.pgbouncer and url.get_backend_name() == "postgresql":
        _set_timeout_per_transaction(engine, settings.statement_timeout_ms)
    return engine


# A pooled connection is checked with a round trip before it is lent only when it sat idle for
# longer than this. pool_pre_ping checks every checkout, which on a busy pool costs a round trip
# per request (~100 µs of CPU here, bench/ab.py) for connections used milliseconds ago. A busy
# connection that died (a restart) fails its first statement instead: that request gets 503,
# SQLAlchemy invalidates the whole pool on the disconnect, and the next requests reconnect.
IDLE_PING_SECONDS = 1.0


def _ping_connections_idle_for(engine: Engine, seconds: float) -> None:
    """Ping connections idle for over `seconds` at checkout; replace those that fail."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= seconds:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out another (SQLAlchemy's
            # "pessimistic disconnect handling" with a custom check).
            raise DisconnectionError("connection lost while idle in the pool") from exc


def _set_timeout_per_transaction(engine: Engine, statement_timeout_ms: int) -> None:
    """SET LOCAL statement_timeout first in every transaction: one round trip more each.

    Behind PgBouncer in transaction mode a session-level SET would stay on a server connection
    that other clients get next, and our own next transaction may run on another one.
    """
    statement = f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(statement)


engine = build_engine(get_settings())

SessionLocal = sessionmaker(
    autocommit=False,
    autoflush=False,
    bind=engine,
    # Objects stay readable after commit: we answer from them without another round trip.
    expire_on_commit=False,
)


def _read_engine(engine: Engine, settings: Settings) -> tuple[Engine, bool]:
    """The engine read-only requests use, and whether ending their session needs no I/O.

    PostgreSQL reads run in autocommit: one round trip per statement instead of BEGIN, the
    statement and COMMIT (psycopg's autocommit is a client-side flag: switching costs nothing).
    SQLite reads take a deferred BEGIN, so they neither take nor wait for the write lock, and
    their COMMIT only releases a read lock. Either way the session ends without waiting on the
    database, so get_db ends it on the event loop instead of in another thread. MariaDB's
    COMMIT (and PyMySQL's autocommit switch) is a round trip, and behind PgBouncer a read needs
    its transaction for SET LOCAL: there reads end in a worker thread, like writes.
    """
    backend = engine.dialect.name
    if backend == "postgresql" and not settings.pgbouncer:
        return engine.execution_options(isolation_level="AUTOCOMMIT"), True
    if backend == "sqlite":
        return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"}), True
    return engine, False


read_engine, _READS_END_WITHOUT_IO = _read_engine(engine, get_settings())
# The engine whose sessions commit on the event loop: reads' where that needs no I/O, else none.
_COMMITS_ON_THE_LOOP = read_engine if _READS_END_WITHOUT_IO else None


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One session per request: yield it, commit if the route returned, roll back if it raised
    (request_session has the steps)."""
    async with request_session(request) as db:
        yield db


@asynccontextmanager
async def request_session(
    request: Request, *, writes: bool | None = None
) -> AsyncIterator[Session]:
    """The tutorial's steps, inside a database slot (admission.py) that bounds the sessions open
    at once to the connections the pool can lend: get_db's, and the session of a route that
    takes no dependencies (the OAuth endpoints, routers/tokens.py). `writes` is whether the
    request may write; by default, whether its method is not a read's.
    """
    if writes is None:
        writes = request.method not in READ_ONLY_METHODS
    async with database_slot():
        db = _open_session(writes)
        try:
            yield db
        except Refusal:
            # Refused, but what the refusal counted and recorded must outlive it (refusals.py).
            await _commit(db)
            raise
        except BaseException:
            await _roll_back(db)
            raise
        else:
            await _commit(db)
        finally:
            # After a commit or rollback the connection is back in the pool: no I/O here.
            db.close()


def _open_session(writes: bool) -> Session:
    """A write's session on the engine, a read's on the read engine (see _read_engine).

    Opened on the event loop: that touches no database (the connection is taken at the first
    statement, in the route's worker thread).
    """
    return SessionLocal() if writes else SessionLocal(bind=read_engine)


async def _commit(db: Session) -> None:
    """Commit on the event loop when that costs no round trip (a read, see _read_engine); else
    claim the request deadline first (admission.claim_commit: past it, roll back and answer 504)
    and commit in a worker thread, so the event loop never waits on the database. A commit that
    fails is rolled back."""
    try:
        if db.bind is _COMMITS_ON_THE_LOOP:
            db.commit()
        else:
            claim_commit()
            await run_in_threadpool(db.commit)
    except BaseException:
        await _roll_back(db)
        raise


async def _roll_back(db: Session) -> None:
    """Roll back and close in a worker thread: both may wait on the database."""
    await run_in_threadpool(_roll_back_and_close, db)


def _roll_back_and_close(db: Session) -> None:
    try:
        db.rollback()
    finally:
        db.close()


# scope="function": get_db exits (and commits) before the response is sent, so a client that
# got 201 can read the row at once. Its database slot (admission.py): a request waits for a
# session without holding a worker thread, at most pool_timeout, and never holds one the pool
# cannot back with a connection; the tutorial's recipe deadlocks at 100 concurrent requests.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
