"""Migration 0007 (tokens): re-runnable after an interruption (MariaDB commits each DDL
statement as it goes), and reversible."""

from alembic import command
from sqlalchemy import inspect, text

from tests.databases import create_database
from userbase.config import Settings
from userbase.database import build_engine
from userbase.schema_revision import alembic_config, current_revision


def test_migration_0007_runs_again_over_what_an_interrupted_run_left_and_reverses(
    db_engine_name: str,
) -> None:
    fresh = create_database(db_engine_name)
    engine = build_engine(Settings(DATABASE_URL=fresh.url))  # type: ignore[call-arg]
    try:
        config = alembic_config(engine)
        command.upgrade(config, "0007")
        # As if the run had died after its DDL but before Alembic recorded the revision.
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0006'"))
        command.upgrade(config, "0007")
        assert current_revision(engine) == "0007"

        command.downgrade(config, "0006")
        tables = set(inspect(engine).get_table_names())
        assert not {"signing_keys", "oauth_clients", "refresh_tokens"} & tables
        assert "client_id" not in {c["name"] for c in inspect(engine).get_columns("tokens")}
        command.upgrade(config, "0007")
        assert {"signing_keys", "oauth_clients", "refresh_tokens"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
        fresh.drop()
