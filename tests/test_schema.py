"""Migrations: the models match them, the embedded default migrates itself, servers refuse."""

import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.databases import create_database
from userbase.config import Settings
from userbase.database import build_engine, engine
from userbase.models import Base
from userbase.readiness import NotFitToServe, ensure_schema
from userbase.schema_revision import SCHEMA_HEAD, current_revision, head_revision


def test_the_test_database_is_at_head() -> None:
    assert current_revision(engine) == head_revision(engine)


def test_schema_head_names_the_newest_migration() -> None:
    # Servers compare the database with SCHEMA_HEAD at start-up without importing Alembic.
    assert head_revision(engine) == SCHEMA_HEAD


def test_a_server_start_at_head_does_not_import_alembic() -> None:
    code = (
        "import sys; from userbase.app import app; from userbase.database import engine; "
        "from userbase.config import get_settings; from userbase import readiness; "
        "readiness.ensure_fit_to_serve(engine, get_settings(), workers=1); "
        "readiness.warn_about_durability(engine); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'redis')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    )
    assert done.stdout.strip() == "[]"


def test_models_and_migrations_describe_the_same_schema() -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "USERBASE_REDIS_URL"}
    return {**env, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}


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
        ensure_schema(fresh_engine, settings)
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
        with pytest.raises(NotFitToServe, match="userbase migrate"):
            ensure_schema(fresh_engine, settings)
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
