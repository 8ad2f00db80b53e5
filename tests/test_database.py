"""The tutorial's promises: SessionLocal, one session per request, commit before the response."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session

from tests.conftest import LiveServer, new_user
from userbase import users
from userbase.app import create_app
from userbase.database import SessionDep, SessionLocal, engine
from userbase.models import User


def test_session_local_is_the_tutorials_sessionmaker() -> None:
    assert SessionLocal.kw["autoflush"] is False
    assert SessionLocal.kw["bind"] is engine
    assert SessionLocal.kw["expire_on_commit"] is False
    with SessionLocal() as session:
        assert isinstance(session, Session)
        assert session.get_bind() is engine


def test_get_db_yields_a_session_and_closes_it() -> None:
    app = create_app()
    seen: list[Session] = []

    @app.get("/test/session")
    def use_session(db: SessionDep) -> dict[str, int]:
        seen.append(db)
        return {"one": db.execute(text("SELECT 1")).scalar_one()}

    with TestClient(app) as client:
        assert client.get("/test/session").json() == {"one": 1}
    assert len(seen) == 1
    assert not seen[0].in_transaction()
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_each_request_gets_its_own_session_even_concurrently() -> None:
    app = create_app()
    seen: list[Session] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8, timeout=10)

    @app.get("/test/session")
    def use_session(db: SessionDep) -> None:
        with lock:
            seen.append(db)
        barrier.wait()  # all eight requests hold their session at the same moment
        db.execute(text("SELECT 1"))

    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: client.get("/test/session").status_code, range(8)))

    assert statuses == [200] * 8
    assert len({id(session) for session in seen}) == 8
    assert all(not session.in_transaction() for session in seen)
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def _user_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def _add_user(db: Session, name: str) -> None:
    db.add(User(username=name, email=f"{name}@example.com", password_hash="!"))
    db.flush()


def test_get_db_commits_what_the_route_wrote_when_it_returns() -> None:
    app = create_app()

    @app.post("/test/write")
    def write(db: SessionDep) -> None:
        _add_user(db, "kept")

    with TestClient(app) as client:
        assert client.post("/test/write").status_code == 200
    assert _user_count() == 1
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_get_db_rolls_back_when_the_route_raises_even_an_error_answered_as_4xx() -> None:
    app = create_app()

    @app.post("/test/write-then-404")
    def write_then_404(db: SessionDep) -> None:
        _add_user(db, "undone")
        raise users.UserNotFound(42)

    with TestClient(app) as client:
        assert client.post("/test/write-then-404").status_code == 404
    assert _user_count() == 0
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.live
def test_a_client_that_got_201_can_read_the_row_from_another_connection(
    live_server: LiveServer, database_url: str
) -> None:
    observer = create_engine(database_url)
    try:
        with httpx.Client(base_url=live_server.url) as client:
            for n in range(20):
                response = client.post("/users/", json=new_user(f"commit{n}"))
                assert response.status_code == 201
                with observer.connect() as connection:
                    found = connection.execute(
                        text("SELECT username FROM users WHERE id = :id"),
                        {"id": response.json()["id"]},
                    ).scalar()
                assert found == f"usercommit{n}"
    finally:
        observer.dispose()


@pytest.mark.engines("sqlite")
def test_sqlite_is_configured_for_a_server() -> None:
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == 5000
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 2  # FULL


@pytest.mark.engines("sqlite")
def test_sqlite_write_transactions_take_the_lock_at_begin(client: Any) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        client.post("/users/", json=new_user(1))
        client.get("/users/")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN DEFERRED"]


def test_sessions_are_bound_to_one_database() -> None:
    with SessionLocal() as session:
        assert session.execute(select(1)).scalar_one() == 1
        assert session.get_bind().url == engine.url


_MOMENT = datetime(2026, 1, 31, 12, 30, 15, 123456, tzinfo=UTC)


def _user_created_at(name: str) -> int:
    with SessionLocal() as session:
        user = User(
            username=name, email=f"{name}@example.com", password_hash="!", created_at=_MOMENT
        )
        session.add(user)
        session.commit()
        return user.id


def test_timestamps_come_back_as_utc_whatever_the_engine() -> None:
    user_id = _user_created_at("clock")
    with engine.connect() as connection:
        created_at = connection.execute(
            select(User.__table__.c.created_at).where(User.__table__.c.id == user_id)
        ).scalar_one()
    assert created_at == _MOMENT
    assert created_at.utcoffset() == timedelta(0)


@pytest.mark.engines("postgresql")
def test_a_postgresql_session_in_another_time_zone_still_reads_utc() -> None:
    # Our sessions ask for TimeZone=UTC; behind PgBouncer (no startup options) the server's
    # own zone applies, and the column type converts.
    user_id = _user_created_at("tokyo")
    with engine.connect() as connection:
        connection.exec_driver_sql("SET TIME ZONE 'Asia/Tokyo'")
        try:
            created_at = connection.execute(
                select(User.__table__.c.created_at).where(User.__table__.c.id == user_id)
            ).scalar_one()
        finally:
            connection.exec_driver_sql("SET TIME ZONE 'UTC'")
    assert created_at.tzinfo is UTC
    assert created_at == _MOMENT
