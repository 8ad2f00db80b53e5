"""Timeouts: a slow statement ends as 503, a request past its deadline as 504, no stuck worker."""

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import LiveServer, new_user
from tests.locks import users_table_locked
from userbase.database import SessionLocal, engine
from userbase.models import User


def user_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


@pytest.mark.engines("postgresql")
def test_postgresql_sessions_carry_the_statement_timeout() -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "5s"
        name = connection.exec_driver_sql("SHOW application_name").scalar()
    assert name == "userbase"


@pytest.mark.engines("mariadb")
def test_mariadb_sessions_carry_the_statement_timeout() -> None:
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT @@max_statement_time").scalar() == 5.0


@pytest.mark.live
def test_a_statement_slower_than_the_timeout_is_503_and_writes_nothing(
    database_url: str,
) -> None:
    server = LiveServer(
        database_url,
        USERBASE_STATEMENT_TIMEOUT_MS="1000",
        USERBASE_SQLITE_BUSY_TIMEOUT_MS="1000",
    )
    try:
        with users_table_locked(database_url):
            started = time.monotonic()
            response = httpx.post(f"{server.url}/users/", json=new_user(1), timeout=30)
            elapsed = time.monotonic() - started

        assert_problem(response, 503)
        assert response.headers["retry-after"]
        assert 0.9 < elapsed < 5
        assert user_count() == 0
        # The connection that timed out is usable again: the next write succeeds.
        assert httpx.post(f"{server.url}/users/", json=new_user(2), timeout=30).status_code == 201
    finally:
        server.stop()


@pytest.mark.live
def test_past_the_request_deadline_is_504_and_commits_nothing(database_url: str) -> None:
    """One write waits in the database, one request waits for a session; both end at 1 s."""
    server = LiveServer(
        database_url,
        USERBASE_REQUEST_TIMEOUT="1",
        USERBASE_POOL_SIZE="1",
        USERBASE_MAX_OVERFLOW="0",
        USERBASE_POOL_TIMEOUT="30",
        USERBASE_STATEMENT_TIMEOUT_MS="30000",
        USERBASE_SQLITE_BUSY_TIMEOUT_MS="30000",
    )
    try:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            ThreadPoolExecutor(1) as pool,
        ):
            with users_table_locked(database_url):
                blocked_write = pool.submit(client.post, "/users/", json=new_user(1))
                time.sleep(0.5)  # the write now holds the only session, waiting on the lock
                started = time.monotonic()
                queued = client.get("/users/")
                queued_elapsed = time.monotonic() - started
                time.sleep(1)
            # The lock is gone: the write's statement returns after its deadline has passed.
            write = blocked_write.result()

        assert_problem(queued, 504)
        assert 0.3 < queued_elapsed < 2
        assert_problem(write, 504)
        assert user_count() == 0
        assert httpx.post(f"{server.url}/users/", json=new_user(2), timeout=30).status_code == 201
    finally:
        server.stop()
