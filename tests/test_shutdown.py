"""Graceful shutdown: on SIGTERM in-flight requests finish, new ones are refused, pool closed."""

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from sqlalchemy import func, select, text

from tests.conftest import _free_port, new_user
from tests.locks import users_table_locked
from userbase.database import SessionLocal, engine
from userbase.models import User

pytestmark = pytest.mark.live

# uvicorn re-raises the signal it handled once its shutdown is done, as a daemon should.
GRACEFUL_EXIT = -signal.SIGTERM


def serve(database_url: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    """`userbase serve` as an operator runs it, with its log captured."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "userbase", "serve", "--port", str(port)],
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("userbase serve did not answer")


def idle_in_transaction(database_url: str) -> int:
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
                )
            ).scalar_one()
        )


def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_ones(
    database_url: str,
) -> None:
    process, url = serve(database_url, USERBASE_SHUTDOWN_GRACE="10")
    try:
        with ThreadPoolExecutor(1) as pool:
            with users_table_locked(database_url):
                in_flight = pool.submit(httpx.post, f"{url}/users/", json=new_user(1), timeout=30)
                time.sleep(0.5)  # the request now waits on the lock, inside its transaction
                process.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                with pytest.raises(httpx.ConnectError):
                    httpx.get(f"{url}/healthz", timeout=2)
                assert not in_flight.done()
            response = in_flight.result()
        _, log = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert response.status_code == 201
    assert process.returncode == GRACEFUL_EXIT
    assert "closing the pool" in log
    assert "Checked out connections: 0" in log
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
    assert idle_in_transaction(database_url) == 0


def test_past_the_grace_period_the_request_is_cut_off_and_rolled_back(
    database_url: str,
) -> None:
    process, url = serve(database_url, USERBASE_SHUTDOWN_GRACE="1")
    try:
        with ThreadPoolExecutor(1) as pool, users_table_locked(database_url):
            in_flight = pool.submit(httpx.post, f"{url}/users/", json=new_user(1), timeout=30)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            # The process exits although the lock is still held.
            _, log = process.communicate(timeout=30)
            outcome = in_flight.exception() or in_flight.result()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == GRACEFUL_EXIT, log
    assert "timeout graceful shutdown exceeded" in log
    # No answer at all, or an error: never a 201 for a row that is not there.
    assert isinstance(outcome, httpx.TransportError) or outcome.status_code >= 500
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
    assert idle_in_transaction(database_url) == 0
