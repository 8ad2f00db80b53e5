"""Migrations: the models match them, the embedded default migrates itself, servers refuse."""

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.databases import create_database
from userbase.config import Settings
from userbase.database import build_engine, engine
from userbase.models import Base
from userbase.schema import SchemaBehind, current_revision, ensure_schema, head_revision


def test_the_test_database_is_at_head() -> None:
    assert current_revision(engine) == head_revision(engine)


def test_models_and_migrations_describe_the_same_schema() -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migration_files_are_named_by_date() -> None:
    from importlib.resources import files

    names = [p.name for p in (files("userbase") / "migrations" / "versions").iterdir()]
    migrations = [n for n in names if n.endswith(".py")]
    assert migrations
    assert all(n[:4].isdigit() and n[4] == "-" and n[10] == "_" for n in migrations)


@pytest.mark.engines("sqlite")
def test_embedded_sqlite_upgrades_itself_on_start() -> None:
    fresh = create_database("sqlite")
    settings = Settings(DATABASE_URL=fresh.url)  # type: ignore[call-arg]
    fresh_engine = build_engine(settings)
    try:
        assert settings.should_auto_migrate
        ensure_schema(fresh_engine, auto_migrate=settings.should_auto_migrate)
        assert current_revision(fresh_engine) == head_revision(fresh_engine)
    finally:
        fresh_engine.dispose()
        fresh.drop()


@pytest.mark.engines("postgresql", "mariadb")
def test_a_server_database_behind_head_refuses_to_start(db_engine_name: str) -> None:
    fresh = create_database(db_engine_name)
    settings = Settings(DATABASE_URL=fresh.url)  # type: ignore[call-arg]
    fresh_engine = build_engine(settings)
    try:
        assert not settings.should_auto_migrate
        with pytest.raises(SchemaBehind, match="userbase migrate"):
            ensure_schema(fresh_engine, auto_migrate=False)
        assert current_revision(fresh_engine) is None

        served = subprocess.run(
            [sys.executable, "-m", "userbase", "serve", "--port", "1"],
            env={"DATABASE_URL": fresh.url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert served.returncode == 1
        message = served.stderr.strip()
        assert "\n" not in message
        assert "run `userbase migrate`" in message
    finally:
        fresh_engine.dispose()
        fresh.drop()
