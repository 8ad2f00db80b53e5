"""Start-up checks against the database server: enough connections for us, and durable commits."""

import logging

from sqlalchemy import Connection, Engine

from userbase.config import Settings

logger = logging.getLogger("userbase")


class NotEnoughConnections(RuntimeError):
    """workers x (pool_size + max_overflow) is more than the server accepts."""


def _show(connection: Connection, name: str) -> int:
    return int(connection.exec_driver_sql(f"SHOW {name}").scalar_one())


def usable_connections(connection: Connection) -> tuple[int, str]:
    """How many connections the server accepts from ordinary clients, and how that was read."""
    if connection.dialect.name == "postgresql":
        total = _show(connection, "max_connections")
        # PostgreSQL keeps superuser_reserved_connections for superusers only.
        reserved = _show(connection, "superuser_reserved_connections")
        return total - reserved, (
            f"PostgreSQL's max_connections = {total} less superuser_reserved_connections = "
            f"{reserved}"
        )
    # MariaDB allows one connection more than max_connections, for a SUPER user only.
    total = int(connection.exec_driver_sql("SELECT @@max_connections").scalar_one())
    return total, f"MariaDB's max_connections = {total}"


def check_capacity(engine: Engine, settings: Settings, *, workers: int) -> None:
    """Refuse a configuration whose pools together could open more connections than allowed."""
    if engine.dialect.name == "sqlite":
        return
    if settings.pgbouncer:
        # Our connections go to PgBouncer (max_client_conn), not to PostgreSQL; PgBouncer's
        # pools (default_pool_size, max_db_connections) must fit max_connections instead.
        return
    with engine.connect() as connection:
        usable, source = usable_connections(connection)
    wanted = workers * settings.max_sessions
    if wanted > usable:
        raise NotEnoughConnections(
            f"{workers} worker(s) x (USERBASE_POOL_SIZE {settings.pool_size} + "
            f"USERBASE_MAX_OVERFLOW {settings.max_overflow}) = {wanted} connections, more than "
            f"the {usable} the server allows ({source}): lower WORKERS, USERBASE_POOL_SIZE or "
            "USERBASE_MAX_OVERFLOW, or raise max_connections on the server."
        )


def durability_warnings(engine: Engine) -> list[str]:
    """What in the server's settings could lose a commit that we answered as done."""
    if engine.dialect.name != "postgresql":
        return []
    warnings = []
    with engine.connect() as connection:
        for name in ("fsync", "synchronous_commit"):
            value = connection.exec_driver_sql(f"SHOW {name}").scalar_one()
            if value == "off":
                warnings.append(
                    f"PostgreSQL {name} is off: a write answered with 2xx can be lost in a crash "
                    f"(set {name} = on in postgresql.conf)."
                )
    return warnings


def warn_about_durability(engine: Engine) -> None:
    for warning in durability_warnings(engine):
        logger.warning("DURABILITY AT RISK: %s", warning)
