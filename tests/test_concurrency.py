"""Real concurrency against a real uvicorn process: the duplicate race and 100 parallel lists."""

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import LiveServer, new_user
from tests.test_users_list import insert_users
from userbase.database import SessionLocal
from userbase.models import User

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def small_pool_server(database_url: str) -> Iterator[LiveServer]:
    """A server whose pool holds 5 connections and no overflow."""
    server = LiveServer(database_url, USERBASE_POOL_SIZE="5", USERBASE_MAX_OVERFLOW="0")
    yield server
    server.stop()


def race(
    url: str, requests: int, send: str, path: str, json: dict[str, str] | None = None
) -> Counter[int]:
    limits = httpx.Limits(max_connections=requests)
    with httpx.Client(base_url=url, timeout=60, limits=limits) as client:

        def one(_: int) -> int:
            return client.request(send, path, json=json).status_code

        with ThreadPoolExecutor(requests) as pool:
            return Counter(pool.map(one, range(requests)))


def test_sixteen_identical_creates_give_one_201_and_fifteen_409(live_server: LiveServer) -> None:
    statuses = race(live_server.url, 16, "POST", "/users/", json=new_user("race"))

    assert statuses == Counter({201: 1, 409: 15})
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_sixteen_creates_differing_only_in_case_give_one_201(live_server: LiveServer) -> None:
    variants = [
        "".join(c.upper() if i >> k & 1 else c for k, c in enumerate("racer")) for i in range(16)
    ]
    assert len(set(variants)) == 16
    bodies = [new_user(v, username=v, email=f"{v}@Example.com") for v in variants]
    with (
        httpx.Client(base_url=live_server.url, timeout=60) as client,
        ThreadPoolExecutor(16) as pool,
    ):
        statuses = Counter(pool.map(lambda b: client.post("/users/", json=b).status_code, bodies))

    assert statuses == Counter({201: 1, 409: 15})


def test_hundred_concurrent_lists_on_a_pool_of_five_all_succeed(
    small_pool_server: LiveServer,
) -> None:
    insert_users([f"member{n:03}" for n in range(100)])

    statuses = race(small_pool_server.url, 100, "GET", "/users/?limit=100")

    assert statuses == Counter({200: 100})
