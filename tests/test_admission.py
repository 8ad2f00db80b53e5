"""Admission: turns waited for in order, not for ever; database slots; hashing turns; deadline."""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import anyio.to_thread
import httpx2 as httpx
import pytest
from anyio import wait_all_tasks_blocked
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from tests.accounts import bearer, sign_up, token_for
from tests.conftest import LiveServer, new_user
from tests.locks import users_table_locked
from userbase.admission import (
    RequestDeadline,
    Turns,
    claim_commit,
    database_slot,
    hashing_turns,
)
from userbase.app import create_app
from userbase.config import Settings, get_settings
from userbase.database import SessionDep, SessionLocal
from userbase.models import User

# Turns: the one mechanism behind database slots and hashing turns.


class NoTurn(Exception):
    pass


def one_turn() -> Turns:
    return Turns("test_turns", size=lambda: 1, timed_out=lambda timeout: NoTurn(f"{timeout:g} s"))


def test_turns_are_given_in_the_order_they_were_asked_for() -> None:
    turns = one_turn()
    order: list[int] = []

    async def take(n: int) -> None:
        async with turns.held():
            order.append(n)

    async def main() -> None:
        async with anyio.create_task_group() as tasks, turns.held():
            for n in range(5):
                tasks.start_soon(take, n)
                await wait_all_tasks_blocked()  # n waits before n + 1 asks
            assert order == []  # nobody gets the turn while it is held

    anyio.run(main)
    assert order == [0, 1, 2, 3, 4]


def test_a_turn_not_free_within_pool_timeout_raises_the_turns_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "pool_timeout", 0.2)
    turns = one_turn()

    async def main() -> float:
        async with turns.held():
            started = anyio.current_time()
            with pytest.raises(NoTurn, match=r"^0\.2 s$"):
                async with turns.held():
                    pass
            return anyio.current_time() - started

    assert 0.2 <= anyio.run(main) < 1


def test_a_turn_is_given_back_when_its_holder_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "pool_timeout", 0.2)
    turns = one_turn()

    async def main() -> None:
        with pytest.raises(ValueError, match="the route failed"):
            async with turns.held():
                raise ValueError("the route failed")
        async with turns.held():  # free again: no wait, no NoTurn
            pass

    anyio.run(main)


# Database slots.


def test_slots_number_the_pools_connections_and_the_next_waits_then_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "pool_size", 2)
    monkeypatch.setattr(get_settings(), "max_overflow", 1)
    monkeypatch.setattr(get_settings(), "pool_timeout", 0.2)

    async def main() -> None:
        async with database_slot(), database_slot(), database_slot():
            with pytest.raises(PoolTimeoutError, match=r"^no database slot free within 0\.2 s$"):
                async with database_slot():
                    pass

    anyio.run(main)  # a fresh event loop: slots are counted per loop, from the settings


def test_thread_pool_has_a_thread_for_every_slot(client: Any) -> None:
    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert client.portal.call(tokens) >= get_settings().max_sessions


@pytest.fixture(scope="module")
def two_slot_server(database_url: str) -> Iterator[LiveServer]:
    """Two slots at most; a waiting request gives up after 2 s; statements may take 30 s."""
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


@pytest.mark.live
def test_with_every_slot_busy_a_request_waits_pool_timeout_then_503(
    two_slot_server: LiveServer, database_url: str
) -> None:
    url = two_slot_server.url
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        # Writes that hash no password: requests that hash take at most half the slots
        # (hashing turns, below), and this test needs both held.
        ids = [sign_up(client, n)["id"] for n in (1, 2)]
        tokens = [token_for(client, f"user{n}") for n in (1, 2)]
        with users_table_locked(database_url):
            writes = [
                pool.submit(
                    client.patch, f"/users/{i}", json={"display_name": "x"}, headers=bearer(t)
                )
                for i, t in zip(ids, tokens, strict=True)
            ]
            time.sleep(0.5)  # both slots are now held, waiting on the lock
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


# Hashing turns: a burst of sign-ins or sign-ups waits for its hashes without taking every slot.

BURST = 8


@pytest.fixture(scope="module")
def slow_hashing_server(database_url: str) -> Iterator[LiveServer]:
    """Two slots, one hashing thread, and a hash slow enough (~0.1-0.3 s) to queue behind."""
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
            still_waiting = sum(not answer.done() for answer in answers)
            statuses = [answer.result().status_code for answer in answers]
            burst_done = time.monotonic() - started

    assert read.status_code == 200
    assert statuses == [status] * BURST
    # The burst needs BURST hashes one after another; the read waited for none of them, where
    # it used to queue for a slot behind every request of the burst: when it was answered, most
    # of the burst was still waiting (counted, not timed: a loaded machine varies a hash's time).
    assert still_waiting >= BURST / 2
    assert read_answered < burst_done / 2


def test_routes_that_hash_leave_slots_for_the_others() -> None:
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


# The request deadline (the live 504s, a queued request's and a blocked write's, are in
# tests/test_timeouts.py).


async def _never_answers(scope: Scope, receive: Receive, send: Send) -> None:
    await anyio.sleep_forever()


def test_a_request_with_no_answer_by_its_deadline_gets_504_problem() -> None:
    # No `with`: these bare apps speak HTTP only, no lifespan.
    response = TestClient(RequestDeadline(_never_answers, seconds=0.1)).get("/somewhere")
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Gateway Timeout",
        "status": 504,
        "detail": "The request did not complete within 0.1 seconds.",
        "instance": "/somewhere",
    }


async def _starts_then_dawdles(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await anyio.sleep(0.3)  # past the deadline, after the answer started
    await send({"type": "http.response.body", "body": b"all of it"})


def test_an_answer_started_before_the_deadline_is_sent_whole() -> None:
    response = TestClient(RequestDeadline(_starts_then_dawdles, seconds=0.1)).get("/")
    assert (response.status_code, response.content) == (200, b"all of it")


def _user_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def _write_a_user(db: Session) -> None:
    db.add(User(username="late", email="late@example.com", password_hash="!"))
    db.flush()


def _app_with_deadline(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Any:
    monkeypatch.setattr(get_settings(), "request_timeout", seconds)
    return create_app()


def test_a_write_still_running_at_its_deadline_is_rolled_back_and_504(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _app_with_deadline(monkeypatch, 0.2)

    @app.post("/test/slow-write")
    def slow_write(db: SessionDep) -> None:
        _write_a_user(db)
        # Work in a worker thread (a slow statement) cannot be interrupted by the deadline:
        # it returns after the deadline, and get_db's claim_commit refuses the commit.
        time.sleep(0.6)

    with TestClient(app) as client:
        response = client.post("/test/slow-write")
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert _user_count() == 0


def test_a_commit_claimed_before_the_deadline_is_answered_as_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Room for the write itself on a loaded machine; the commit alone outlasts the rest.
    app = _app_with_deadline(monkeypatch, 2.0)

    @app.post("/test/slow-commit", status_code=201)
    def write(db: SessionDep) -> None:
        _write_a_user(db)

    def slow_commit(session: Session) -> None:
        time.sleep(2.5)  # the commit outlasts the deadline it claimed

    event.listen(SessionLocal, "before_commit", slow_commit)
    try:
        with TestClient(app) as client:
            response = client.post("/test/slow-commit")
    finally:
        event.remove(SessionLocal, "before_commit", slow_commit)
    assert response.status_code == 201
    assert _user_count() == 1


def test_outside_a_request_claim_commit_never_refuses() -> None:
    claim_commit()  # the CLI and scripts commit with no deadline
