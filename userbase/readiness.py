"""Is the database fit to serve? One set of checks, each ok, warn or fail with a one-line detail.

Three callers, one rule each: a server's start-up (refuses to serve when the schema or the
connection budget fails, logs every durability failure as DURABILITY AT RISK), `userbase check`
(prints them all, exits 1 on a failure) and `/readyz` (polled: only the cheap `probes`, does the
database answer, does Redis).
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Literal

from sqlalchemy import Connection, Engine, text

from userbase.clock import WARN_ABOVE_SECONDS, measure_offset
from userbase.config import Settings
from userbase.database import SQLITE_BEGIN_OPTION
from userbase.disk_space import DiskFull, check_room_for_writes
from userbase.mail import given_up_count
from userbase.redis_client import redis_client
from userbase.schema_revision import SCHEMA_HEAD, current_revision, upgrade_to_head
from userbase.sealing import uses_development_key

logger = logging.getLogger("userbase")

Status = Literal["ok", "warn", "fail"]

DATABASE = "database reachable"
SCHEMA = "schema at head"
BUDGET = "connection budget"
CLOCK = "host clock"
REDIS = "redis reachable"
DATABASE_DISK = "database disk"
MAIL = "mail delivery"
SECRET_KEY = "secret key"
DURABILITY = "durability: "

# Past this share of the server's connections, the budget warns: migrations, cron jobs and
# administrators need connections too.
_BUDGET_WARN_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


class NotFitToServe(RuntimeError):
    """A check a server must pass before it serves failed: the schema, or the connection budget."""

    def __init__(self, check: Check) -> None:
        super().__init__(f"Not fit to serve: {check.name}: {check.detail}.")
        self.check = check


def run_checks(engine: Engine, settings: Settings, workers: int) -> Iterator[Check]:
    """Every check, for `userbase check`: the database answers, its schema is at head, the
    connections fit, this host's clock agrees with it, commits are durable, no mail gave up;
    and Redis answers, when it is configured. USERBASE_SECRET_KEY is said first: it needs
    no database."""
    yield secret_key(settings)
    reachable = database_reachable(engine)
    yield reachable
    if reachable.status == "ok":
        yield from database_disk(engine)
        yield _guarded(SCHEMA, partial(schema_at_head, engine))
        yield _guarded(BUDGET, partial(connection_budget, engine, settings, workers))
        yield _guarded(CLOCK, partial(host_clock, engine))
        yield from durability(engine)
        yield _guarded(MAIL, partial(mail_delivery, engine, settings))
    redis = redis_reachable()
    if redis is not None:
        yield redis


def probes(engine: Engine) -> Iterator[Check]:
    """The cheap checks `/readyz` runs at every poll: the database answers (SQLite: and has
    room on its disk), and Redis if set."""
    reachable = database_reachable(engine)
    yield reachable
    if reachable.status == "ok":
        yield from database_disk(engine)
    redis = redis_reachable()
    if redis is not None:
        yield redis


def ensure_schema(engine: Engine, settings: Settings) -> None:
    """Upgrade the embedded default to head; on a server, refuse a schema that is not at head."""
    schema = schema_at_head(engine)
    if schema.status != "ok" and settings.should_auto_migrate:
        upgrade_to_head(engine)
        schema = schema_at_head(engine)
    if schema.status == "fail":
        raise NotFitToServe(schema)


def ensure_fit_to_serve(engine: Engine, settings: Settings, *, workers: int) -> None:
    """Start-up: the schema (as `ensure_schema`) and the connection budget of `workers` workers
    must pass, else NotFitToServe; a budget near the server's limit is logged as a warning."""
    ensure_schema(engine, settings)
    budget = connection_budget(engine, settings, workers)
    if budget.status == "fail":
        raise NotFitToServe(budget)
    if budget.status == "warn":
        logger.warning("%s: %s", budget.name, budget.detail)


def warn_about_durability(engine: Engine) -> None:
    """Log each setting that could lose a commit we answered as done (start-up serves anyway)."""
    for check in durability(engine):
        if check.status != "ok":
            setting = check.name.removeprefix(DURABILITY)
            logger.warning(
                "DURABILITY AT RISK: %s is %s: a write answered with 2xx can be lost in a crash.",
                setting,
                check.detail,
            )


def error_summary(exc: Exception) -> str:
    """An error in one line: a database's own messages run to several, with the SQL."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """The check's answer, or a failure naming the error it met (a refused query, a timeout)."""
    try:
        return check()
    except Exception as exc:  # not getting an answer is this check's answer, not a crash
        return Check(name, "fail", error_summary(exc))


def _reading(engine: Engine) -> Connection:
    # DEFERRED: on SQLite, a check only reads, so it must neither take the write lock
    # (database.py) nor wait for a writer holding it.
    return engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})


def _setting(connection: Connection, query: str) -> str:
    return str(connection.execute(text(query)).scalar_one())


def database_reachable(engine: Engine) -> Check:
    def ask() -> Check:
        with _reading(engine) as connection:
            dialect = connection.dialect.name
            query = {"sqlite": "SELECT sqlite_version()", "postgresql": "SHOW server_version"}
            version = _setting(connection, query.get(dialect, "SELECT VERSION()"))
        return Check(DATABASE, "ok", f"{dialect} {version}")

    return _guarded(DATABASE, ask)


def database_disk(engine: Engine) -> Iterator[Check]:
    """SQLite: room on the database's filesystem. On a full disk reads still answer and every
    write fails (503), so "the database answers" is not enough. Nothing for the servers."""
    if engine.dialect.name != "sqlite":
        return

    def ask() -> Check:
        try:
            check_room_for_writes(engine)
        except DiskFull as exc:
            return Check(DATABASE_DISK, "fail", f"{exc}: writes fail until space is freed")
        return Check(DATABASE_DISK, "ok", "room for writes")

    yield _guarded(DATABASE_DISK, ask)


def schema_at_head(engine: Engine) -> Check:
    """The database's revision against SCHEMA_HEAD (tests/test_schema.py: Alembic's head)."""
    current = current_revision(engine)
    if current == SCHEMA_HEAD:
        return Check(SCHEMA, "ok", f"revision {SCHEMA_HEAD}")
    return Check(
        SCHEMA,
        "fail",
        f"the database is at revision {current or 'none'}, this version needs {SCHEMA_HEAD}: "
        "run `userbase migrate`",
    )


def connection_budget(engine: Engine, settings: Settings, workers: int) -> Check:
    """Every worker's pool at its fullest must fit in the connections the server accepts."""
    needed = workers * settings.max_sessions
    demand = (
        f"{workers} worker(s) x (USERBASE_POOL_SIZE {settings.pool_size} + "
        f"USERBASE_MAX_OVERFLOW {settings.max_overflow}) = {needed} connections"
    )
    if engine.dialect.name == "sqlite":
        return Check(BUDGET, "ok", f"{demand}; embedded SQLite has no connection limit")
    if settings.pgbouncer:
        # Our connections go to PgBouncer (max_client_conn), and through it every query,
        # SHOW max_connections too, reaches PostgreSQL, whose limit PgBouncer's own pools must
        # fit instead (docs/deployment.md): nothing here can see either number.
        return Check(
            BUDGET,
            "ok",
            f"{demand} to PgBouncer: not checked here; its max_client_conn must allow them",
        )
    with _reading(engine) as connection:
        usable, source = _usable_connections(connection)
    detail = f"{demand}, {usable} available ({source})"
    if needed > usable:
        return Check(
            BUDGET,
            "fail",
            f"{detail}: lower WORKERS, USERBASE_POOL_SIZE or USERBASE_MAX_OVERFLOW, or raise "
            "max_connections on the server",
        )
    if needed > usable * _BUDGET_WARN_SHARE:
        return Check(BUDGET, "warn", f"{detail}: little room for anything else")
    return Check(BUDGET, "ok", detail)


def host_clock(engine: Engine) -> Check:
    """This host's clock against the database's, which userbase keeps time by (clock.py): off
    by more than WARN_ABOVE_SECONDS, the host needs NTP (start-up warns HOST CLOCK OFF too)."""
    offset = measure_offset(engine).total_seconds()
    detail = f"{abs(offset):.3f} s {'behind' if offset > 0 else 'ahead of'} the database's"
    if abs(offset) > WARN_ABOVE_SECONDS:
        return Check(CLOCK, "warn", f"{detail}: fix this host's clock (NTP)")
    return Check(CLOCK, "ok", detail)


def _usable_connections(connection: Connection) -> tuple[int, str]:
    """How many connections the server accepts from ordinary clients, and how that was read."""
    if connection.dialect.name == "postgresql":
        total = int(_setting(connection, "SHOW max_connections"))
        # PostgreSQL keeps superuser_reserved_connections for superusers only.
        reserved = int(_setting(connection, "SHOW superuser_reserved_connections"))
        return total - reserved, (
            f"PostgreSQL's max_connections = {total} less superuser_reserved_connections = "
            f"{reserved}"
        )
    # MariaDB allows one connection more than max_connections, for a SUPER user only.
    total = int(_setting(connection, "SELECT @@max_connections"))
    return total, f"MariaDB's max_connections = {total}"


@dataclass(frozen=True, slots=True)
class DurabilitySetting:
    """A server setting that commits rely on, and the values that keep them durable."""

    name: str
    query: str
    durable: frozenset[str]

    def check(self, connection: Connection) -> Check:
        value = _setting(connection, self.query)
        if value in self.durable:
            return Check(DURABILITY + self.name, "ok", value)
        wanted = " or ".join(sorted(self.durable))
        return Check(DURABILITY + self.name, "fail", f"{value}, want {wanted}")


# A commit that answered success must survive a crash (and, on SQLite, a power cut).
_MARIADB_DURABILITY = (
    DurabilitySetting(
        "innodb_flush_log_at_trx_commit",
        "SELECT @@innodb_flush_log_at_trx_commit",
        frozenset({"1"}),
    ),
    DurabilitySetting("innodb_doublewrite", "SELECT @@innodb_doublewrite", frozenset({"1", "ON"})),
    DurabilitySetting(
        "users table engine",
        "SELECT COALESCE(MAX(engine), 'none') FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'users'",
        frozenset({"InnoDB"}),
    ),
)
DURABILITY_SETTINGS: dict[str, tuple[DurabilitySetting, ...]] = {
    "sqlite": (
        DurabilitySetting("journal_mode", "PRAGMA journal_mode", frozenset({"wal"})),
        # 2 is FULL, 3 is EXTRA (database.py asks for FULL).
        DurabilitySetting("synchronous", "PRAGMA synchronous", frozenset({"2", "3"})),
    ),
    "postgresql": (
        DurabilitySetting("fsync", "SHOW fsync", frozenset({"on"})),
        # Every value but "off" waits for the local disk before a commit is acknowledged.
        DurabilitySetting(
            "synchronous_commit",
            "SHOW synchronous_commit",
            frozenset({"on", "local", "remote_write", "remote_apply"}),
        ),
        DurabilitySetting("full_page_writes", "SHOW full_page_writes", frozenset({"on"})),
    ),
    "mysql": _MARIADB_DURABILITY,
    "mariadb": _MARIADB_DURABILITY,
}


def durability(engine: Engine) -> Iterator[Check]:
    """One check per setting of DURABILITY_SETTINGS for the engine's database."""
    settings = DURABILITY_SETTINGS.get(engine.dialect.name, ())
    if not settings:
        return
    try:
        connection = _reading(engine)
    except Exception as exc:
        yield Check(DURABILITY + "settings", "fail", error_summary(exc))
        return
    with connection:
        for setting in settings:
            yield _guarded(DURABILITY + setting.name, partial(setting.check, connection))


def mail_given_up(engine: Engine) -> int:
    """Mails that gave up after USERBASE_MAIL_MAX_ATTEMPTS (mail.py), for /readyz."""
    with _reading(engine) as connection:
        return given_up_count(connection)


def mail_delivery(engine: Engine, settings: Settings) -> Check:
    """A warning, never a failure, when mails gave up: requests are served all the same."""
    given_up = mail_given_up(engine)
    if given_up:
        return Check(
            MAIL,
            "warn",
            f"{given_up} mail(s) gave up after {settings.mail_max_attempts} attempts (see "
            "outbox.last_error): `userbase resend-mail` queues them again",
        )
    return Check(MAIL, "ok", "no mail gave up")


def secret_key(settings: Settings) -> Check:
    """A warning, never a failure, without USERBASE_SECRET_KEY: the development key still
    works, but what it seals (private signing keys, links in queued mails) is readable by
    anyone with this code (sealing.py)."""
    if uses_development_key(settings):
        return Check(
            SECRET_KEY,
            "warn",
            "not set: signing keys and queued mails are sealed under the development key "
            "(in the source); set USERBASE_SECRET_KEY in production",
        )
    return Check(SECRET_KEY, "ok", "set")


def redis_reachable() -> Check | None:
    """Redis answers a PING; None when USERBASE_REDIS_URL is not set."""
    client = redis_client()
    if client is None:
        return None

    def ping() -> Check:
        client.ping()
        return Check(REDIS, "ok", "PING answered")

    return _guarded(REDIS, ping)
