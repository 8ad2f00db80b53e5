"""Each readiness check on the run's engine; start-up, `userbase check` and /readyz agree."""

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from tests.conftest import LiveServer
from tests.databases import create_database
from tests.test_clock import userbase_under_skew
from userbase import readiness
from userbase.config import Settings, get_settings
from userbase.database import build_engine, engine
from userbase.readiness import (
    BUDGET,
    CLOCK,
    DATABASE,
    DATABASE_DISK,
    DURABILITY_SETTINGS,
    MAIL,
    REDIS,
    SCHEMA,
    SECRET_KEY,
    Check,
    NotFitToServe,
    connection_budget,
    database_reachable,
    durability,
    ensure_fit_to_serve,
    host_clock,
    probes,
    redis_reachable,
    run_checks,
    schema_at_head,
)
from userbase.redis_client import redis_client
from userbase.schema_revision import SCHEMA_HEAD

# The machine's Redis (README: `make test` needs it), and a port where nothing listens.
REDIS_URL = "redis://127.0.0.1:6379/0"
NO_REDIS_URL = "redis://127.0.0.1:1/0"
UNREACHABLE = {
    "sqlite": "sqlite:////nonexistent-dir/never/db.sqlite",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/none",
    "mariadb": "mysql+pymysql://root@127.0.0.1:1/none",
}
# SQLite's one more check: room on the database's disk (disk_space.py).
DISK = [DATABASE_DISK] if engine.dialect.name == "sqlite" else []
# More than the test servers accept (PostgreSQL's and MariaDB's defaults: 100 and 151).
TOO_MANY = {"pool_size": 200, "max_overflow": 200}


def by_name(checks: Iterator[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """USERBASE_REDIS_URL set to the given URL for this test (param), in this process."""
    monkeypatch.setattr(get_settings(), "redis_url", SecretStr(request.param))
    redis_client.cache_clear()
    yield request.param
    redis_client.cache_clear()


def test_every_check_of_the_test_database_is_ok() -> None:
    configured = Settings(secret_key=SecretStr("a secret from the vault, 32 characters"))
    results = list(run_checks(engine, configured, workers=1))
    assert {r.status for r in results} == {"ok"}, results
    settings = DURABILITY_SETTINGS[engine.dialect.name]
    assert [r.name for r in results] == [
        SECRET_KEY,
        DATABASE,
        *DISK,
        SCHEMA,
        BUDGET,
        CLOCK,
        *(f"durability: {setting.name}" for setting in settings),
        MAIL,
    ]


def test_database_reachable_names_the_engine_and_its_version() -> None:
    check = database_reachable(engine)
    assert check.status == "ok"
    assert check.detail.startswith(engine.dialect.name)
    assert any(c.isdigit() for c in check.detail)


def test_an_unreachable_database_fails_its_check_and_skips_the_rest(db_engine_name: str) -> None:
    dead = build_engine(Settings(DATABASE_URL=UNREACHABLE[db_engine_name], connect_timeout=2))  # type: ignore[call-arg]
    try:
        results = list(run_checks(dead, Settings(), workers=1))
        probed = list(probes(dead))
    finally:
        dead.dispose()
    # The secret key needs no database; the tests run without one (the development key).
    assert [(r.name, r.status) for r in results] == [(SECRET_KEY, "warn"), (DATABASE, "fail")]
    assert results[1].detail.startswith("OperationalError: ")
    assert "\n" not in results[1].detail
    assert [(r.name, r.status) for r in probed] == [(DATABASE, "fail")]


def test_schema_at_head_names_the_revision() -> None:
    assert schema_at_head(engine) == Check(SCHEMA, "ok", f"revision {SCHEMA_HEAD}")


def test_an_empty_database_is_not_at_head_and_is_told_to_migrate(db_engine_name: str) -> None:
    fresh = create_database(db_engine_name)
    settings = Settings(DATABASE_URL=fresh.url, auto_migrate=False)  # type: ignore[call-arg]
    fresh_engine = build_engine(settings)
    try:
        check = schema_at_head(fresh_engine)
        with pytest.raises(NotFitToServe, match="run `userbase migrate`"):
            ensure_fit_to_serve(fresh_engine, settings, workers=1)
    finally:
        fresh_engine.dispose()
        fresh.drop()
    assert check.status == "fail"
    assert f"at revision none, this version needs {SCHEMA_HEAD}" in check.detail


@pytest.mark.engines("sqlite")
def test_embedded_sqlite_has_no_connection_limit() -> None:
    check = connection_budget(engine, Settings(**TOO_MANY), workers=4)
    assert check.status == "ok"
    assert "1600 connections; embedded SQLite has no connection limit" in check.detail


@pytest.mark.engines("postgresql", "mariadb")
def test_a_pool_larger_than_the_server_allows_fails_the_budget() -> None:
    check = connection_budget(engine, Settings(**TOO_MANY), workers=4)
    assert check.status == "fail"
    assert "4 worker(s) x (USERBASE_POOL_SIZE 200 + USERBASE_MAX_OVERFLOW 200)" in check.detail
    assert "max_connections" in check.detail
    assert "lower WORKERS, USERBASE_POOL_SIZE or USERBASE_MAX_OVERFLOW" in check.detail


def _usable_connections() -> int:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            total = connection.execute(text("SHOW max_connections")).scalar_one()
            reserved = connection.execute(text("SHOW superuser_reserved_connections")).scalar_one()
            return int(total) - int(reserved)
        return int(connection.execute(text("SELECT @@max_connections")).scalar_one())


@pytest.mark.engines("postgresql", "mariadb")
def test_a_pool_that_takes_every_connection_warns_and_one_more_fails() -> None:
    usable = _usable_connections()
    one_each = Settings(pool_size=1, max_overflow=0)
    fits = connection_budget(engine, one_each, workers=usable)
    too_many = connection_budget(engine, one_each, workers=usable + 1)
    assert (fits.status, too_many.status) == ("warn", "fail")
    assert f"{usable} available" in fits.detail
    assert "little room for anything else" in fits.detail


@pytest.mark.engines("postgresql")
def test_behind_pgbouncer_the_budget_is_not_measured_against_postgresql() -> None:
    """Through PgBouncer, SHOW max_connections is PostgreSQL's: it does not limit our pools."""
    check = connection_budget(engine, Settings(pgbouncer=True, **TOO_MANY), workers=4)
    assert check.status == "ok"
    assert "1600 connections to PgBouncer" in check.detail


@pytest.mark.engines("postgresql", "mariadb")
def test_start_up_and_userbase_check_apply_one_budget_rule(db_engine_name: str) -> None:
    cases = [Settings(), Settings(**TOO_MANY)]
    if db_engine_name == "postgresql":
        cases.append(Settings(pgbouncer=True, **TOO_MANY))
    for settings in cases:
        budget = by_name(run_checks(engine, settings, workers=4))[BUDGET]
        refused: Check | None = None
        try:
            ensure_fit_to_serve(engine, settings, workers=4)
        except NotFitToServe as exc:
            refused = exc.check
        assert refused == (budget if budget.status == "fail" else None), settings


@pytest.mark.live
@pytest.mark.engines("postgresql")
def test_with_pgbouncer_set_a_large_pool_passes_the_check_and_starts(database_url: str) -> None:
    """`userbase check` measured the pools against PostgreSQL's max_connections even behind
    PgBouncer, where start-up did not: now both leave that budget to PgBouncer."""
    env = {
        "USERBASE_PGBOUNCER": "true",
        "USERBASE_POOL_SIZE": "200",
        "USERBASE_MAX_OVERFLOW": "200",
    }
    checked = subprocess.run(
        [sys.executable, "-m", "userbase", "check", "--workers", "4"],
        env={"PATH": os.environ["PATH"], "COLUMNS": "200", "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout
    line = next(x for x in checked.stdout.splitlines() if BUDGET in x)
    assert " ok " in line
    assert "PgBouncer" in line

    server = LiveServer(database_url, **env)  # the app's lifespan: it started
    try:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        server.stop()


def test_a_database_on_this_host_keeps_its_time() -> None:
    check = host_clock(engine)
    assert check.status == "ok"
    assert check.detail.endswith(" the database's")


@pytest.mark.engines("postgresql", "mariadb")
def test_a_host_clock_ten_minutes_ahead_is_a_warning_of_userbase_check() -> None:
    checked = userbase_under_skew("+10m", "check")
    assert checked.returncode == 0, checked.stdout  # a warning, not a failure
    line = next(x for x in checked.stdout.splitlines() if CLOCK in x)
    assert " warn " in line
    assert "ahead of" in line


@pytest.mark.engines("postgresql")
def test_postgresql_without_synchronous_commit_fails_durability_and_start_up_warns(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = engine.url.database
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    fresh_engine = build_engine(Settings(DATABASE_URL=database_url))  # type: ignore[call-arg]
    try:
        checks = by_name(durability(fresh_engine))
        with caplog.at_level(logging.WARNING, logger="userbase"):
            readiness.warn_about_durability(fresh_engine)
    finally:
        fresh_engine.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" RESET synchronous_commit'))
    failed = checks["durability: synchronous_commit"]
    assert failed.status == "fail"
    assert failed.detail.startswith("off, want ")
    assert [c.name for c in checks.values() if c.status != "ok"] == [failed.name]
    assert [r.getMessage() for r in caplog.records] == [
        f"DURABILITY AT RISK: synchronous_commit is {failed.detail}: a write answered with 2xx "
        "can be lost in a crash."
    ]


@pytest.mark.engines("sqlite")
def test_sqlite_without_wal_fails_durability(tmp_path: Path) -> None:
    # A plain engine: none of database.py's pragmas, so SQLite's default rollback journal.
    plain = create_engine(f"sqlite:///{tmp_path}/plain.db")
    try:
        checks = by_name(durability(plain))
    finally:
        plain.dispose()
    assert checks["durability: journal_mode"] == Check(
        "durability: journal_mode", "fail", "delete, want wal"
    )
    assert checks["durability: synchronous"].status == "ok"


@pytest.mark.engines("mariadb")
def test_a_users_table_that_is_not_innodb_fails_durability() -> None:
    fresh = create_database("mariadb")
    fresh_engine = build_engine(Settings(DATABASE_URL=fresh.url))  # type: ignore[call-arg]
    try:
        with fresh_engine.begin() as connection:
            connection.execute(text("CREATE TABLE users (id INT) ENGINE=MyISAM"))
        checks = by_name(durability(fresh_engine))
    finally:
        fresh_engine.dispose()
        fresh.drop()
    assert checks["durability: users table engine"].status == "fail"
    assert checks["durability: users table engine"].detail == "MyISAM, want InnoDB"
    assert checks["durability: innodb_flush_log_at_trx_commit"].status == "ok"


def test_without_redis_configured_no_check_mentions_it() -> None:
    assert redis_reachable() is None
    assert [check.name for check in probes(engine)] == [DATABASE, *DISK]


@pytest.mark.parametrize("redis_url", [REDIS_URL], indirect=True)
@pytest.mark.usefixtures("redis_url")
def test_a_configured_redis_that_answers_is_ok_everywhere() -> None:
    assert redis_reachable() == Check(REDIS, "ok", "PING answered")
    assert [(c.name, c.status) for c in probes(engine)] == [
        (DATABASE, "ok"),
        *((name, "ok") for name in DISK),
        (REDIS, "ok"),
    ]
    assert by_name(run_checks(engine, Settings(), workers=1))[REDIS].status == "ok"


@pytest.mark.parametrize("redis_url", [NO_REDIS_URL], indirect=True)
@pytest.mark.usefixtures("redis_url")
def test_a_configured_redis_that_does_not_answer_fails_everywhere() -> None:
    check = redis_reachable()
    assert check is not None
    assert check.status == "fail"
    assert check.detail.startswith("ConnectionError: ")
    assert [(c.name, c.status) for c in probes(engine)] == [
        (DATABASE, "ok"),
        *((name, "ok") for name in DISK),
        (REDIS, "fail"),
    ]
    assert by_name(run_checks(engine, Settings(), workers=1))[REDIS].status == "fail"
