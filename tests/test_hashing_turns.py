"""A burst of sign-ins or sign-ups waits for the password hash without taking every session."""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer, new_user
from userbase.config import Settings
from userbase.hashing_turns import hashing_turns

BURST = 8


@pytest.fixture(scope="module")
def slow_hashing_server(database_url: str) -> Iterator[LiveServer]:
    """Two sessions, one hashing thread, and a hash slow enough (~0.1-0.3 s) to queue behind."""
    server = LiveServer(
        database_url,
        USERBASE_POOL_SIZE="2",
        USERBASE_MAX_OVERFLOW="0",
        USERBASE_POOL_TIMEOUT="60",
        USERBASE_HASH_CONCURRENCY="1",
        USERBASE_ARGON2_TIME_COST="12",
    )
    yield server
    server.stop()


def _sign_in(client: httpx.Client, n: int) -> httpx.Response:
    form = {"username": "user0", "password": "correct horse battery"}
    return client.post("/auth/token", data=form)


def _sign_up(client: httpx.Client, n: int) -> httpx.Response:
    return client.post("/users/", json=new_user(n + 1))


@pytest.mark.live
@pytest.mark.parametrize(("burst", "status"), [(_sign_in, 200), (_sign_up, 201)])
def test_a_read_is_served_while_a_burst_waits_for_its_hashes(
    slow_hashing_server: LiveServer,
    burst: Callable[[httpx.Client, int], httpx.Response],
    status: int,
) -> None:
    with httpx.Client(base_url=slow_hashing_server.url, timeout=60) as client:
        created = client.post("/users/", json=new_user(0))
        assert created.status_code == 201
        user_id = created.json()["id"]
        started = time.monotonic()
        assert _sign_in(client, 0).status_code == 200
        one_hash = time.monotonic() - started

        with ThreadPoolExecutor(BURST) as pool:
            started = time.monotonic()
            answers = [pool.submit(burst, client, n) for n in range(BURST)]
            time.sleep(one_hash)  # the burst now holds the hashing thread and has a queue
            read = client.get(f"/users/{user_id}")
            read_answered = time.monotonic() - started
            statuses = [answer.result().status_code for answer in answers]
            burst_done = time.monotonic() - started

    assert read.status_code == 200
    assert statuses == [status] * BURST
    # The burst needs BURST hashes one after another; the read waited for none of them, where
    # it used to queue for a session behind every request of the burst.
    assert burst_done > BURST / 2 * one_hash
    assert read_answered < burst_done / 2


def test_routes_that_hash_leave_sessions_for_the_others() -> None:
    assert hashing_turns(Settings(hash_concurrency=1, pool_size=2, max_overflow=0)) == 1
    assert hashing_turns(Settings(hash_concurrency=2, pool_size=5, max_overflow=10)) == 4
    assert hashing_turns(Settings(hash_concurrency=8, pool_size=5, max_overflow=5)) == 5
    assert hashing_turns(Settings(hash_concurrency=1, pool_size=1, max_overflow=0)) == 1


@pytest.mark.live
def test_a_sign_in_that_waits_too_long_for_its_turn_gets_503(database_url: str) -> None:
    server = LiveServer(
        database_url,
        USERBASE_POOL_SIZE="2",
        USERBASE_MAX_OVERFLOW="0",
        USERBASE_POOL_TIMEOUT="1",
        USERBASE_HASH_CONCURRENCY="1",
        USERBASE_ARGON2_TIME_COST="40",
    )
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.post("/users/", json=new_user(0)).status_code == 201
            with ThreadPoolExecutor(BURST) as pool:
                answers = list(pool.map(lambda n: _sign_in(client, n), range(BURST)))
    finally:
        server.stop()

    statuses = sorted(answer.status_code for answer in answers)
    # One turn, hashes of ~0.3-1 s, a 1 s wait at most: the first ones in got a token.
    assert statuses[0] == 200
    assert statuses[-1] == 503
    refused = [answer for answer in answers if answer.status_code == 503]
    assert all(a.headers["content-type"] == "application/problem+json" for a in refused)
    assert all(a.headers["retry-after"] for a in refused)
    assert "busy checking passwords" in refused[0].json()["detail"]


def test_every_route_that_hashes_documents_its_503(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    hashing = [
        ("/auth/token", "post"),
        ("/auth/reset-password", "post"),
        ("/users/", "post"),
        ("/users/batch", "post"),
        ("/users/me/password", "put"),
    ]
    for path, method in hashing:
        assert "503" in paths[path][method]["responses"], (method, path)
