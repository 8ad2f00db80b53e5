"""No pool or thread-pool stall: bounded waits for a session, /healthz throughout, sizes checked."""

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import httpx2 as httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from tests.accounts import bearer, sign_up, token_for
from tests.conftest import LiveServer
from tests.locks import users_table_locked
from userbase.config import Settings, get_settings
from userbase.database import IDLE_PING_SECONDS, build_engine, engine
from userbase.readiness import NotFitToServe, ensure_fit_to_serve


@pytest.fixture(scope="module")
def two_session_server(database_url: str) -> Iterator[LiveServer]:
    """Two sessions at most; a waiting request gives up after 2 s; statements may take 30 s."""
    server = LiveServer(
        database_url,
        USERBASE_POOL_SIZE="2",
        USERBASE_MAX_OVERFLOW="0",
        USERBASE_POOL_TIMEOUT="2",
        USERBASE_STATEMENT_TIMEOUT_MS="30000",
        USERBASE_SQLITE_BUSY_TIMEOUT_MS="30000",
    )
    yield server
    server.stop()


def test_readyz_reports_the_pool_with_nothing_checked_out(client: Any) -> None:
    client.get("/users/")
    pool = client.get("/readyz").json()["pool"]
    assert pool["checked_out"] == 0
    assert pool["size"] == get_settings().pool_size


def test_default_pool_timeout_is_five_seconds() -> None:
    assert Settings().pool_timeout == 5


def test_thread_pool_has_a_thread_for_every_session(client: Any) -> None:
    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert client.portal.call(tokens) >= get_settings().max_sessions


@pytest.mark.live
def test_with_every_session_busy_a_request_waits_pool_timeout_then_503(
    two_session_server: LiveServer, database_url: str
) -> None:
    url = two_session_server.url
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        # Writes that hash no password: requests that hash take at most half the sessions
        # (hashing_turns.py), and this test needs both held.
        ids = [sign_up(client, n)["id"] for n in (1, 2)]
        tokens = [token_for(client, f"user{n}") for n in (1, 2)]
        with users_table_locked(database_url):
            writes = [
                pool.submit(
                    client.patch, f"/users/{i}", json={"display_name": "x"}, headers=bearer(t)
                )
                for i, t in zip(ids, tokens, strict=True)
            ]
            time.sleep(0.5)  # both sessions are now held, waiting on the lock
            probes: list[float] = []
            with ThreadPoolExecutor(1) as prober:
                started = time.monotonic()
                waiting = prober.submit(client.get, "/users/")
                while not waiting.done():
                    probe_started = time.monotonic()
                    assert client.get("/healthz").status_code == 200
                    probes.append(time.monotonic() - probe_started)
                    time.sleep(0.1)
                waited = waiting.result()
                wait_time = time.monotonic() - started
            # The queued request gave up; nothing else changed.
            assert all(not w.done() for w in writes)
        statuses = [w.result().status_code for w in writes]

    assert waited.status_code == 503
    assert waited.headers["content-type"] == "application/problem+json"
    assert waited.headers["retry-after"]
    assert len(probes) >= 10  # /healthz answered all along the 2 s wait
    assert max(probes) < 0.5
    assert 1.9 < wait_time < 3.5  # USERBASE_POOL_TIMEOUT=2
    assert statuses == [200, 200]
    assert httpx.get(f"{url}/readyz").json()["pool"]["checked_out"] == 0


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
