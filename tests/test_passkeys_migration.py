"""Migration 0010 (passkeys): re-runnable after an interruption (MariaDB commits each DDL
statement as it goes), and reversible."""

from alembic import command
from sqlalchemy import inspect, text

from tests.databases import create_database
from userbase.config import Settings
from userbase.database import build_engine
from userbase.schema_revision import alembic_config, current_revision

TABLES = {"passkeys", "passkey_challenges"}


def test_migration_0010_runs_again_over_what_an_interrupted_run_left_and_reverses(
    db_engine_name: str,
) -> None:
    fresh = create_database(db_engine_name)
    engine = build_engine(Settings(DATABASE_URL=fresh.url))  # type: ignore[call-arg]
    try:
        config = alembic_config(engine)
        command.upgrade(config, "0010")
        assert set(inspect(engine).get_table_names()) >= TABLES
        # As if the run had died after its DDL but before Alembic recorded the revision.
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0009'"))
        command.upgrade(config, "0010")
        assert current_revision(engine) == "0010"

        command.downgrade(config, "0009")
        assert not TABLES & set(inspect(engine).get_table_names())
        command.upgrade(config, "0010")
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
        fresh.drop()
