"""The database restarts under load: no acknowledged write is lost, every failure is a clean 503.

Eight clients create users in a loop against a live server while its database server (a private
one, see private_servers.py) is stopped in fast mode, kept down 2 s and started again.
Runs in `make test-reliability`.
"""

import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import LiveServer, new_user
from tests.private_servers import PrivateMariaDB, PrivatePostgres, PrivateServer

pytestmark = [pytest.mark.live, pytest.mark.reliability]

CLIENTS = 8
WARM_UP_SECONDS = 2.0
DOWN_SECONDS = 2.0
AFTER_SECONDS = 6.0
# What "no hang" means: well under the client timeout, above connect + pool + statement timeouts.
SLOWEST_ANSWER_SECONDS = 12.0
RECOVERY_SECONDS = 5.0


@dataclass(frozen=True)
class Attempt:
    username: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    content_type: str | None = None
    retry_after: str | None = None
    error: str | None = None


def create_in_a_loop(url: str, client_no: int, stop: threading.Event) -> list[Attempt]:
    attempts = []
    with httpx.Client(base_url=url, timeout=30) as client:
        n = 0
        while not stop.is_set():
            body = new_user(f"c{client_no}n{n}")
            n += 1
            started = time.monotonic()
            try:
                response = client.post("/users/", json=body)
            except httpx.TransportError as exc:
                attempts.append(
                    Attempt(body["username"], started, time.monotonic(), None, error=repr(exc))
                )
                continue
            attempts.append(
                Attempt(
                    body["username"],
                    started,
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("content-type"),
                    response.headers.get("retry-after"),
                )
            )
            if response.status_code != 201:
                time.sleep(0.05)
    return attempts


def stored_usernames(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(text("SELECT username FROM users")).scalars())
    finally:
        engine.dispose()


def run_through_a_restart(database: PrivateServer) -> None:
    database.create_database()  # type: ignore[attr-defined]
    subprocess.run(
        [sys.executable, "-m", "userbase", "migrate"],
        env={"DATABASE_URL": database.url, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    server = LiveServer(database.url)
    stop = threading.Event()
    results: list[list[Attempt]] = [[] for _ in range(CLIENTS)]

    def client(no: int) -> None:
        results[no] = create_in_a_loop(server.url, no, stop)

    threads = [threading.Thread(target=client, args=(no,)) for no in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(WARM_UP_SECONDS)
        went_down = time.monotonic()
        back_at = database.restart(down_for=DOWN_SECONDS)
        time.sleep(AFTER_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        server.stop()

    attempts = [a for batch in results for a in batch]
    stored = stored_usernames(database.url)
    acknowledged = {a.username for a in attempts if a.status == 201}
    failed = [a for a in attempts if a.status != 201]
    in_doubt = {a.username for a in failed} & stored
    recovered = min(a.ended for a in attempts if a.status == 201 and a.started >= back_at)
    print(
        f"\n{type(database).__name__}: {len(attempts)} creates, {len(acknowledged)} x 201, "
        f"statuses {dict(Counter(a.status for a in attempts))}, down {back_at - went_down:.1f} s, "
        f"first 201 {recovered - back_at:.2f} s after it was back, "
        f"slowest answer {max(a.ended - a.started for a in attempts):.2f} s, "
        f"{len(in_doubt)} failed creates that had committed"
    )

    assert acknowledged, "no create succeeded at all"
    assert failed, "the outage was not noticed: nothing to check"
    assert acknowledged <= stored, f"acknowledged but lost: {sorted(acknowledged - stored)}"
    assert [a for a in failed if a.status is None] == [], "a request got no HTTP answer"
    assert Counter(a.status for a in failed) == Counter({503: len(failed)})
    assert all(a.content_type == "application/problem+json" for a in failed)
    assert all(a.retry_after for a in failed)
    assert max(a.ended - a.started for a in attempts) < SLOWEST_ANSWER_SECONDS
    assert recovered - back_at <= RECOVERY_SECONDS


@pytest.mark.engines("postgresql")
def test_postgresql_restart_in_fast_mode_loses_nothing_and_fails_cleanly() -> None:
    with PrivatePostgres() as database:
        run_through_a_restart(database)


@pytest.mark.engines("mariadb")
def test_mariadb_shutdown_and_start_loses_nothing_and_fails_cleanly() -> None:
    with PrivateMariaDB() as database:
        run_through_a_restart(database)
