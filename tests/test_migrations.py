"""`userbase migrate` says what it runs, and completes a revision an interruption left halfway
(MariaDB commits each DDL statement as it runs: a killed run leaves part of a revision)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, text

from tests import databases
from userbase.config import Settings
from userbase.database import build_engine
from userbase.models import Base
from userbase.read_timeouts import no_read_timeout
from userbase.schema_revision import (
    SCHEMA_HEAD,
    alembic_config,
    current_revision,
    upgrade_to_head,
)


def _revisions() -> list[tuple[str, str]]:
    """Every revision, oldest first, with its title: a new revision is tested here by itself."""
    from alembic.script import ScriptDirectory

    from userbase.database import engine

    scripts = ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()
    return [(script.revision, script.doc) for script in reversed(list(scripts))]


REVISIONS = tuple(revision for revision, _ in _revisions())


class FreshDatabase:
    """An empty database of the run's engine, its engine, and `userbase migrate` on it."""

    def __init__(self, engine_name: str) -> None:
        self.database = databases.create_database(engine_name)
        self.engine: Engine = build_engine(Settings(DATABASE_URL=self.database.url))  # type: ignore[call-arg]

    def upgrade_to(self, revision: str) -> None:
        from alembic import command

        command.upgrade(alembic_config(self.engine), revision)

    def migrate(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "userbase", "migrate"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "USERBASE_REDIS_URL"}
        # A production-like migrate: a secret of its own, so no development-key warning.
        return {
            **env,
            "DATABASE_URL": self.database.url,
            "COLUMNS": "200",
            "USERBASE_SECRET_KEY": "migrations-test-secret-" + "x" * 32,
        }

    def differences_from_the_models(self) -> list[Any]:
        with self.engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    def drop(self) -> None:
        self.engine.dispose()
        self.database.drop()


@pytest.fixture
def fresh(db_engine_name: str) -> Iterator[FreshDatabase]:
    database = FreshDatabase(db_engine_name)
    yield database
    database.drop()


def test_migrate_names_each_revision_as_it_runs(fresh: FreshDatabase) -> None:
    done = fresh.migrate()

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        *(f"applying revision {revision}: {title}" for revision, title in _revisions()),
        f"schema at revision {SCHEMA_HEAD}",
    ]
    assert "applying revision 0002: accounts: bearer tokens and throttle events" in done.stderr
    again = fresh.migrate()
    assert again.returncode == 0
    assert again.stderr.splitlines() == [f"schema at revision {SCHEMA_HEAD}"]


def test_migrate_without_a_secret_key_warns_that_keys_are_sealed_under_the_development_key(
    fresh: FreshDatabase,
) -> None:
    env = {k: v for k, v in fresh.env().items() if k != "USERBASE_SECRET_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "userbase", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "USERBASE_SECRET_KEY" in line]
    assert len(warnings) == 1
    assert "development key" in warnings[0]


def test_a_revision_partly_applied_by_hand_is_completed_by_migrate(fresh: FreshDatabase) -> None:
    fresh.upgrade_to("0003")
    with fresh.engine.begin() as connection:
        connection.execute(text("CREATE INDEX ix_users_is_active_id ON users (is_active, id)"))

    done = fresh.migrate()

    assert done.returncode == 0, done.stderr
    assert current_revision(fresh.engine) == SCHEMA_HEAD
    assert fresh.differences_from_the_models() == []


def test_a_failed_migrate_says_which_revision_failed_and_how_to_recover(
    fresh: FreshDatabase,
) -> None:
    fresh.upgrade_to("0003")
    # A cause that re-running cannot fix: the table 0004 indexes is gone.
    with fresh.engine.begin() as connection:
        connection.execute(text("ALTER TABLE users RENAME TO users_elsewhere"))

    done = fresh.migrate()

    assert done.returncode == 1
    assert "applying revision 0004" in done.stderr
    assert "revision 0004 failed: " in done.stderr
    assert "The schema is at revision 0003" in done.stderr
    assert "run `userbase migrate` again" in done.stderr
    assert "Traceback" not in done.stderr


def _ddl_statements_of(revision: str, engine_name: str) -> int:
    database = FreshDatabase(engine_name)
    try:
        previous = REVISIONS[REVISIONS.index(revision) - 1] if revision != "0001" else "base"
        database.upgrade_to(previous)
        with _counting_ddl(database.engine) as count:
            database.upgrade_to(revision)
        return count[0]
    finally:
        database.drop()


class _Interrupted(Exception):
    pass


class _counting_ddl:  # noqa: N801 (a context manager read like a function)
    """Counts DDL statements run on `engine`; raises _Interrupted before the `stop_at`th one."""

    def __init__(self, engine: Engine, stop_at: int | None = None) -> None:
        self.engine, self.stop_at, self.count = engine, stop_at, [0]

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("CREATE", "ALTER", "DROP")):
            self.count[0] += 1
            if self.count[0] == self.stop_at:
                raise _Interrupted(statement)

    def __enter__(self) -> list[int]:
        event.listen(self.engine, "before_cursor_execute", self._before)
        return self.count

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)


@pytest.mark.reliability  # ~50 s on MariaDB: a fresh database per statement of each revision
@pytest.mark.engines("mariadb")
@pytest.mark.parametrize("revision", REVISIONS)
def test_a_revision_stopped_before_any_of_its_statements_is_completed_by_migrate(
    db_engine_name: str, revision: str
) -> None:
    """MariaDB keeps every statement before the one stopped: each such state must migrate."""
    statements = _ddl_statements_of(revision, db_engine_name)
    assert statements >= 1
    previous = REVISIONS[REVISIONS.index(revision) - 1] if revision != "0001" else "base"
    for stop_at in range(1, statements + 1):
        database = FreshDatabase(db_engine_name)
        try:
            database.upgrade_to(previous)
            with _counting_ddl(database.engine, stop_at), pytest.raises(_Interrupted):
                database.upgrade_to(revision)
            assert current_revision(database.engine) == (None if previous == "base" else previous)

            upgrade_to_head(database.engine)

            assert current_revision(database.engine) == SCHEMA_HEAD
            assert database.differences_from_the_models() == [], (revision, stop_at)
        finally:
            database.drop()


def _processes_running(engine: Engine, fragment: str) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID() AND info LIKE :fragment"
                ),
                {"fragment": f"%{fragment}%"},
            ).scalars()
        )


def _poll(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds:g} s")
        time.sleep(0.005)


@pytest.mark.reliability  # ~25 s: 300,000 users to index
@pytest.mark.engines("mariadb")
def test_migrate_killed_while_building_an_index_completes_on_the_next_run(
    fresh: FreshDatabase,
) -> None:
    """SIGKILL `userbase migrate` while revision 0004 builds its second index on a large users
    table, for real: the first index stays (MariaDB committed it), the revision is unrecorded,
    the server may still be finishing the second. The next run reaches head."""
    fresh.upgrade_to("0003")
    with (
        fresh.engine.begin() as connection,
        no_read_timeout(connection.connection.dbapi_connection),
    ):
        connection.execute(text("SET SESSION max_statement_time = 0"))
        # MariaDB's sequence engine: 300,000 users in one statement, enough that each index of
        # 0004 takes a moment to build (~0.3 s here).
        connection.execute(
            text(
                "INSERT INTO users (username, email, password_hash, is_active, is_admin, "
                "email_verified, created_at, updated_at, version) "
                "SELECT CONCAT('u', seq), CONCAT('u', seq, '@example.com'), 'x', seq % 2, 0, 0, "
                "NOW() - INTERVAL seq SECOND, NOW(), 1 FROM seq_1_to_300000"
            )
        )

    migrate = subprocess.Popen(
        [sys.executable, "-m", "userbase", "migrate"],
        env=fresh.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _poll(
            lambda: (
                migrate.poll() is not None
                or _processes_running(fresh.engine, "ix_users_is_active_id")
            ),
            120,
            "the second index of revision 0004 being built",
        )
        migrate.send_signal(signal.SIGKILL)
        migrate.wait(timeout=10)
    finally:
        if migrate.poll() is None:
            migrate.kill()
            migrate.wait()
    assert migrate.returncode == -signal.SIGKILL, "migrate ended before it was killed"
    assert current_revision(fresh.engine) == "0003"
    with fresh.engine.connect() as connection:
        indexes = {row.Key_name for row in connection.execute(text("SHOW INDEX FROM users"))}
    assert "ix_users_is_admin_id" in indexes  # the revision's first index, committed

    done = fresh.migrate()

    assert done.returncode == 0, done.stderr
    assert "applying revision 0004" in done.stderr
    assert current_revision(fresh.engine) == SCHEMA_HEAD
    assert fresh.differences_from_the_models() == []
    with fresh.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM users")).scalar() == 300_000
