"""/healthz never touches the database; /readyz does (and Redis when set), 503 when it cannot."""

import time
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer
from userbase.config import Settings
from userbase.database import build_engine
from userbase.routers import health


def test_healthz_answers_ok(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_ok_when_the_database_does(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_readyz_is_503_problem_when_the_database_is_unreachable(
    client: Any, db_engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = {
        "sqlite": "sqlite:////nonexistent-dir/never/db.sqlite",
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/none",
        "mariadb": "mysql+pymysql://root@127.0.0.1:1/none",
    }[db_engine_name]
    dead_engine = build_engine(Settings(DATABASE_URL=unreachable, connect_timeout=2))  # type: ignore[call-arg]
    monkeypatch.setattr(health, "engine", dead_engine)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert client.get("/healthz").status_code == 200


# The machine's Redis (README: `make test` needs it), and a port where nothing listens.
REDIS_URL = "redis://127.0.0.1:6379/0"
NO_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.mark.live
def test_readyz_reports_redis_when_it_is_configured(database_url: str) -> None:
    server = LiveServer(database_url, USERBASE_REDIS_URL=REDIS_URL)
    try:
        response = httpx.get(f"{server.url}/readyz")
    finally:
        server.stop()
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("status", "database", "redis")} == {
        "status": "ok",
        "database": "ok",
        "redis": "ok",
    }


@pytest.mark.live
def test_readyz_is_503_naming_redis_when_it_is_unreachable(database_url: str) -> None:
    server = LiveServer(database_url, USERBASE_REDIS_URL=NO_REDIS_URL)
    try:
        ready = httpx.get(f"{server.url}/readyz")
        alive = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"]
    assert ready.json()["detail"] == "Redis is unreachable."
    assert alive.status_code == 200


@pytest.mark.live
def test_without_redis_configured_readyz_does_not_mention_it(live_server: LiveServer) -> None:
    body = httpx.get(f"{live_server.url}/readyz").json()
    assert set(body) == {"status", "database", "pool", "mail"}
    assert body["database"] == "ok"


@pytest.mark.live
@pytest.mark.engines("sqlite")
def test_readyz_does_not_wait_for_a_sqlite_writer(live_server: LiveServer) -> None:
    """A probe only reads: a writer holding SQLite's lock must not make it wait (or fail)."""
    from userbase.database import engine

    with engine.connect() as writer:
        writer.exec_driver_sql("SELECT 1")  # the connection's BEGIN IMMEDIATE: the write lock
        started = time.monotonic()
        response = httpx.get(f"{live_server.url}/readyz", timeout=30)
        waited = time.monotonic() - started
        writer.rollback()
    assert response.status_code == 200
    assert waited < 2  # the busy timeout is 5 s
