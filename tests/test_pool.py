"""The pool: its readings, its size against the server's limit, idle connections checked.

Waiting for a connection (database slots, bounded by the pool timeout): tests/test_admission.py.
"""

import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from userbase.config import Settings, get_settings
from userbase.database import IDLE_PING_SECONDS, build_engine, engine
from userbase.readiness import NotFitToServe, ensure_fit_to_serve


def test_readyz_reports_the_pool_with_nothing_checked_out(client: Any) -> None:
    client.get("/users/")
    pool = client.get("/readyz").json()["pool"]
    assert pool["checked_out"] == 0
    assert pool["size"] == get_settings().pool_size


def test_default_pool_timeout_is_five_seconds() -> None:
    assert Settings().pool_timeout == 5


@pytest.mark.engines("postgresql", "mariadb")
def test_start_up_refuses_more_connections_than_the_server_allows(database_url: str) -> None:
    with pytest.raises(NotFitToServe, match="lower WORKERS") as refused:
        ensure_fit_to_serve(engine, get_settings(), workers=1000)
    assert "max_connections" in str(refused.value)
    ensure_fit_to_serve(engine, get_settings(), workers=1)

    served = subprocess.run(
        [sys.executable, "-m", "userbase", "serve", "--port", "1", "--workers", "1000"],
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 1
    assert "max_connections" in served.stderr
    assert "lower WORKERS, USERBASE_POOL_SIZE or USERBASE_MAX_OVERFLOW" in served.stderr


@pytest.mark.engines("postgresql", "mariadb")
def test_a_single_process_whose_pool_cannot_fit_does_not_start(database_url: str) -> None:
    server = subprocess.run(
        [sys.executable, "-m", "uvicorn", "userbase.app:app", "--port", "1"],
        env={
            "DATABASE_URL": database_url,
            "USERBASE_POOL_SIZE": "200",
            "USERBASE_MAX_OVERFLOW": "200",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert server.returncode != 0
    assert "max_connections" in server.stderr


def _server_side_id(connection: Any) -> int:
    query = (
        "SELECT pg_backend_pid()"
        if engine.dialect.name == "postgresql"
        else "SELECT CONNECTION_ID()"
    )
    return int(connection.exec_driver_sql(query).scalar_one())


@pytest.mark.engines("postgresql", "mariadb")
def test_a_connection_killed_while_idle_in_the_pool_is_replaced_not_failed() -> None:
    # The check at checkout (database.py, IDLE_PING_SECONDS): a connection idle longer than that
    # is pinged, and a dead one swapped for a new one before the session sees it.
    one_connection = build_engine(
        Settings(DATABASE_URL=engine.url.render_as_string(hide_password=False), pool_size=1)
    )  # type: ignore[call-arg]
    outsider = create_engine(engine.url, poolclass=NullPool)
    try:
        with one_connection.connect() as connection:
            victim = _server_side_id(connection)
        with outsider.connect() as killer:
            if engine.dialect.name == "postgresql":
                killer.exec_driver_sql(f"SELECT pg_terminate_backend({victim})")
            else:
                killer.exec_driver_sql(f"KILL {victim}")
        time.sleep(IDLE_PING_SECONDS + 0.5)

        with one_connection.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
            assert _server_side_id(connection) != victim
    finally:
        one_connection.dispose()
        outsider.dispose()
