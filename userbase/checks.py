"""`userbase check`: is this configuration ready to serve? Each check says ok, warn or fail."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Literal

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from userbase.config import Settings
from userbase.database import SQLITE_BEGIN_OPTION
from userbase.schema_revision import current_revision, head_revision

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


def config_summary(settings: Settings, workers: int) -> list[tuple[str, str]]:
    """The settings that matter, as (name, value) pairs; passwords and tokens never shown."""
    url = make_url(settings.database_url)
    redis = settings.redis_url
    return [
        ("database", url.render_as_string(hide_password=True)),
        ("auto-migrate", "on" if settings.should_auto_migrate else "off"),
        (
            "pool",
            f"{settings.pool_size} + {settings.max_overflow} overflow per worker, {workers} "
            f"worker(s), {settings.pool_timeout:g} s timeout",
        ),
        (
            "argon2id",
            f"t={settings.argon2_time_cost}, m={settings.argon2_memory_kib} KiB, "
            f"p={settings.argon2_parallelism}, {settings.hash_concurrency} at once",
        ),
        (
            "logs",
            f"{settings.log_format}, level {settings.log_level}, access log "
            f"{'on' if settings.access_log else 'off'}",
        ),
        ("metrics token", "set" if settings.metrics_token else "not set (GET /metrics is open)"),
        ("CORS origins", ", ".join(settings.cors_origins) or "none"),
        (
            "redis",
            make_url(redis.get_secret_value()).render_as_string(hide_password=True)
            if redis
            else "not set",
        ),
    ]


def run_checks(engine: Engine, settings: Settings, workers: int) -> Iterator[Check]:
    """The database answers, its schema is at head, connections fit, commits are durable."""
    try:
        # DEFERRED: on SQLite, reading must not take the write lock (database.py) that the
        # schema check's own connection would then wait for.
        connection = engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
    except Exception as exc:  # not reaching the database is this check's answer, not a crash
        yield _failed("database reachable", exc)
    else:
        with connection:
            yield Check("database reachable", "ok", _server_version(connection))
            yield _guarded("schema at head", lambda: _schema_check(engine))
            yield _guarded(
                "connection budget", lambda: _connection_budget(connection, settings, workers)
            )
            yield from _durability(connection)
    if settings.redis_url is not None:
        yield _guarded("redis reachable", _redis_check)


def _failed(name: str, exc: Exception) -> Check:
    return Check(name, "fail", error_summary(exc))


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """The check's answer, or a failure naming the error it met (a refused query, a timeout)."""
    try:
        return check()
    except Exception as exc:
        return _failed(name, exc)


def error_summary(exc: Exception) -> str:
    """An error in one line: a database's own messages run to several, with the SQL."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def _server_version(connection: Connection) -> str:
    dialect = connection.dialect.name
    query = {"sqlite": "SELECT sqlite_version()", "postgresql": "SHOW server_version"}.get(
        dialect, "SELECT VERSION()"
    )
    return f"{dialect} {connection.execute(text(query)).scalar_one()}"


def _schema_check(engine: Engine) -> Check:
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return Check("schema at head", "ok", f"revision {head}")
    return Check(
        "schema at head", "fail", f"at {current or 'none'}, needs {head}: run `userbase migrate`"
    )


def _setting(connection: Connection, query: str) -> str:
    return str(connection.execute(text(query)).scalar_one())


def _connection_budget(connection: Connection, settings: Settings, workers: int) -> Check:
    """Every worker's full pool must fit in the server's max_connections (less its reserve)."""
    needed = settings.max_sessions * workers
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return Check("connection budget", "ok", f"embedded SQLite: {needed} connections, no limit")
    if dialect == "postgresql":
        limit = int(_setting(connection, "SHOW max_connections"))
        reserved = int(_setting(connection, "SHOW superuser_reserved_connections"))
    else:
        limit, reserved = int(_setting(connection, "SELECT @@max_connections")), 0
    available = limit - reserved
    detail = f"{needed} needed by {workers} worker(s), {available} available on the server"
    if needed > available:
        return Check("connection budget", "fail", detail + ": lower USERBASE_POOL_SIZE")
    if needed > available * 0.8:
        return Check("connection budget", "warn", detail + ": little room for anything else")
    return Check("connection budget", "ok", detail)


@dataclass(frozen=True, slots=True)
class Setting:
    """A server setting that commits rely on, and the values that keep them durable."""

    name: str
    query: str
    durable: frozenset[str]

    def check(self, connection: Connection) -> Check:
        value = _setting(connection, self.query)
        if value in self.durable:
            return Check(f"durability: {self.name}", "ok", value)
        wanted = " or ".join(sorted(self.durable))
        return Check(f"durability: {self.name}", "fail", f"{value}; want {wanted}")


# A commit that answered success must survive a crash (and, on SQLite, a power cut).
_MARIADB_SETTINGS = (
    Setting(
        "innodb_flush_log_at_trx_commit",
        "SELECT @@innodb_flush_log_at_trx_commit",
        frozenset({"1"}),
    ),
    Setting("innodb_doublewrite", "SELECT @@innodb_doublewrite", frozenset({"1", "ON"})),
    Setting(
        "users table engine",
        "SELECT COALESCE(MAX(engine), 'none') FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'users'",
        frozenset({"InnoDB"}),
    ),
)
DURABILITY_SETTINGS: dict[str, tuple[Setting, ...]] = {
    "sqlite": (
        Setting("journal_mode", "PRAGMA journal_mode", frozenset({"wal"})),
        # 2 is FULL, 3 is EXTRA (database.py asks for FULL).
        Setting("synchronous", "PRAGMA synchronous", frozenset({"2", "3"})),
    ),
    "postgresql": (
        Setting("fsync", "SHOW fsync", frozenset({"on"})),
        # Every value but "off" waits for the local disk before a commit is acknowledged.
        Setting(
            "synchronous_commit",
            "SHOW synchronous_commit",
            frozenset({"on", "local", "remote_write", "remote_apply"}),
        ),
        Setting("full_page_writes", "SHOW full_page_writes", frozenset({"on"})),
    ),
    "mysql": _MARIADB_SETTINGS,
    "mariadb": _MARIADB_SETTINGS,
}


def _durability(connection: Connection) -> Iterator[Check]:
    for setting in DURABILITY_SETTINGS.get(connection.dialect.name, ()):
        yield _guarded(f"durability: {setting.name}", partial(setting.check, connection))


def _redis_check() -> Check:
    from userbase.redis_client import redis_client

    client = redis_client()
    if client is None:
        return Check("redis reachable", "ok", "not configured")
    client.ping()
    return Check("redis reachable", "ok", "PING answered")
