"""Alembic environment: runs migrations on userbase's engine, or on DATABASE_URL from the CLI."""

from alembic import context
from sqlalchemy import Engine

from userbase.models import Base
from userbase.read_timeouts import no_read_timeout

config = context.config
target_metadata = Base.metadata


def _engine() -> Engine:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        # Plain `alembic ...` from a checkout: the same engine the service would use.
        from userbase.database import engine as service_engine

        return service_engine
    return engine


# The service's statement timeout is for requests; rewriting a large table may take longer. The
# client's read timeout (read_timeouts.py) is lifted for the same reason.
# PostgreSQL: SET LOCAL, inside the migrations' one transaction, so that it ends with it, also
# behind PgBouncer in transaction mode (a session-wide SET would stay on a pooled connection).
_NO_STATEMENT_TIMEOUT_LOCAL = {"postgresql": "SET LOCAL statement_timeout = 0"}
_NO_STATEMENT_TIMEOUT_SESSION = {
    "mysql": "SET SESSION max_statement_time = 0",
    "mariadb": "SET SESSION max_statement_time = 0",
}


def run_migrations_online() -> None:
    with _engine().connect() as connection, no_read_timeout(connection.connection.dbapi_connection):
        lift_timeout = _NO_STATEMENT_TIMEOUT_SESSION.get(connection.dialect.name)
        if lift_timeout:
            connection.exec_driver_sql(lift_timeout)
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                lift_local = _NO_STATEMENT_TIMEOUT_LOCAL.get(connection.dialect.name)
                if lift_local:
                    connection.exec_driver_sql(lift_local)
                context.run_migrations()
        finally:
            if lift_timeout:
                # Never hand a request a connection without the timeout.
                connection.invalidate()


if context.is_offline_mode():
    raise SystemExit("userbase migrations run online only: `userbase migrate`.")
run_migrations_online()
