"""What a request cannot cost less than, layer by layer: the floors under the targets of issue 6.

`python -m bench.floors` (after `make bench` installed the tools), ~2 minutes:

1. Served on core 0, loaded by wrk from core 1 (10 connections, 5 s after a 1 s warm-up):
   FastAPI alone (`bench/peers/bare.py`, one `async def` route, constant JSON), userbase's
   `/healthz` (its middleware, access log, metrics and routing, no database) and the ceiling's
   `GET /users/{id}` (bench/peers/ceiling.py, for scale).
2. In this process, pinned to core 0, CPU time per call (time.process_time, 3,000 calls after
   300 to warm up) of the database layer alone for one user by id and a page of 100: psycopg
   by itself, SQLAlchemy's Connection.execute of userbase's prebuilt statement, and the whole
   session the way get_db runs a read (SessionLocal on the read engine, the statement,
   commit, close); and turning a page into JSON.
"""

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.database import bench_database
from bench.hashing import PASSWORD, make_hasher, service_settings
from bench.load import run_wrk
from bench.servers import BIN, Servers, System, systems, uvicorn_system

USERS = 10_000
CALLS = 3_000


def _served(servers: Servers, database_systems: list[System]) -> list[tuple[str, float]]:
    started = {
        "bare": servers.start(uvicorn_system("bare", "FastAPI alone", "bench.peers.bare:app"))
    }
    for system in database_systems:
        if system.name in ("ceiling", "userbase"):
            started[system.name] = servers.start(system)
    rows = []
    for label, name, path in (
        ("FastAPI alone: constant JSON", "bare", "/healthz"),
        ("userbase /healthz: no database", "userbase", "/healthz"),
        ("ceiling GET /users/{id}", "ceiling", "/users/5"),
    ):
        server = started[name]
        common = {"connections": 10, "timeout": 10, "cpu": 1}
        run_wrk(server.url + path, seconds=1, **common)
        server.settle(30)
        rows.append((label, run_wrk(server.url + path, seconds=5, **common).rps))
        server.settle(30)
    return rows


def _cpu_us(call: Callable[[], object]) -> float:
    for _ in range(300):
        call()
    start = time.process_time()
    for _ in range(CALLS):
        call()
    return (time.process_time() - start) / CALLS * 1e6


def _in_process(dsn: str) -> list[tuple[str, float]]:
    os.sched_setaffinity(0, {0})
    # The package reads DATABASE_URL when database.py is first imported.
    from userbase import users
    from userbase.database import SessionLocal, read_engine
    from userbase.responses import dumps
    from userbase.routers.users import _public_page
    from userbase.users import _PAGE, _SELECT_PUBLIC

    raw = psycopg.connect(dsn, autocommit=True)
    one_sql = "SELECT id, username, display_name, created_at, version FROM users WHERE id = %s"
    page_sql = (
        "SELECT id, username, display_name, created_at FROM users WHERE id > %s ORDER BY id "
        "LIMIT %s"
    )
    connection = read_engine.connect()

    def session_one() -> None:
        session = SessionLocal(bind=read_engine)
        users.get_public_user(session, 5)
        session.commit()
        session.close()

    def session_page() -> None:
        session = SessionLocal(bind=read_engine)
        users.list_public_users(session, after=0, limit=100, username_prefix=None)
        session.commit()
        session.close()

    rows = connection.execute(_PAGE, {"after": 0, "limit": 100}).all()
    results = [
        ("one user: psycopg alone", _cpu_us(lambda: raw.execute(one_sql, (5,)).fetchone())),
        ("one user: SQLAlchemy Connection.execute", _cpu_us(
            lambda: connection.execute(_SELECT_PUBLIC, {"user_id": 5}).first())),
        ("one user: get_db's session, statement, commit, close", _cpu_us(session_one)),
        ("100 users: psycopg alone", _cpu_us(lambda: raw.execute(page_sql, (0, 101)).fetchall())),
        ("100 users: SQLAlchemy Connection.execute", _cpu_us(
            lambda: connection.execute(_PAGE, {"after": 0, "limit": 101}).all())),
        ("100 users: get_db's session, statement, commit, close", _cpu_us(session_page)),
        ("100 users: rows to dicts to JSON (orjson)", _cpu_us(lambda: dumps(_public_page(rows)))),
    ]  # fmt: skip
    connection.close()
    raw.close()
    return results


def main() -> int:
    password_hash = make_hasher(service_settings()).hash(PASSWORD)
    with (
        tempfile.TemporaryDirectory(prefix="userbase-floors-") as workdir,
        bench_database("127.0.0.1", 5432, BIN / "userbase") as database,
    ):
        database.load_users(USERS, password_hash)
        with Servers(0, Path(workdir)) as servers:
            served = _served(servers, systems(database))
        os.environ["DATABASE_URL"] = database.sqlalchemy_url
        measured = _in_process(database.dsn)
    print("served on one core, wrk -c10 from the other:")
    for label, rps in served:
        print(f"  {label:<55} {rps:>9,.0f} req/s  {1e6 / rps:>6.0f} µs a request")
    print(f"CPU per call in one process on core 0 ({CALLS:,} calls):")
    for label, micros in measured:
        print(f"  {label:<55} {micros:>9.0f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
