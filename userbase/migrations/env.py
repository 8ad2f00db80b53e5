"""Alembic environment: runs migrations on userbase's engine, or on DATABASE_URL from the CLI."""

from alembic import context
from sqlalchemy import Engine

from userbase.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        # Plain `alembic ...` from a checkout: the same engine the service would use.
        from userbase.database import engine as service_engine

        return service_engine
    return engine


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("userbase migrations run online only: `userbase migrate`.")
run_migrations_online()
