"""How to bound sessions to pool connections: none, FastAPI's max_concurrency, or database slots.

    .venv/bin/python -m bench.session_bound            # SQLite in a temporary directory
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/DB .venv/bin/python -m bench.session_bound

Each variant serves a small app on a real uvicorn process, with a pool of 5 connections, no
overflow and a pool timeout of 2 s. Two scenarios: 100 concurrent quick reads; and 5 slow
requests holding every connection for 5 s while 50 quick reads and /healthz probes arrive.
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import httpx2 as httpx
from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from userbase.admission import database_slot
from userbase.config import Settings
from userbase.database import SQLITE_BEGIN_OPTION, build_engine
from userbase.errors import install_error_handlers

POOL = 5
SLOW_SECONDS = 5.0
VARIANTS = ("unbounded", "max_concurrency", "database_slots")


def make_app() -> FastAPI:
    """The app for the variant named by BENCH_VARIANT."""
    # Reads only: SQLite transactions begin deferred, as userbase's GET requests do.
    options = {SQLITE_BEGIN_OPTION: "DEFERRED"}
    local = sessionmaker(bind=build_engine(Settings()).execution_options(**options))

    def get_db() -> Iterator[Session]:
        with local() as db:
            yield db

    async def get_db_in_slot() -> AsyncIterator[Session]:
        # As userbase's get_db: the slot is taken on the event loop, before the session.
        async with database_slot():
            with local() as db:
                yield db

    variant = os.environ["BENCH_VARIANT"]
    if variant == "unbounded":  # the tutorial's recipe
        dependency = Depends(get_db)
    elif variant == "max_concurrency":
        dependency = Depends(get_db, scope="function", max_concurrency=POOL)
    else:
        dependency = Depends(get_db_in_slot, scope="function")
    Db = Annotated[Session, dependency]  # noqa: N806 (a type alias)

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/quick")
    def quick(db: Db) -> int:
        return int(db.execute(text("SELECT 1")).scalar_one())

    @app.get("/slow")
    def slow(db: Db) -> int:
        db.execute(text("SELECT 1"))  # holds a connection from here on
        time.sleep(SLOW_SECONDS)
        return 1

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    return app


def _serve(variant: str, database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_VARIANT": variant, "DATABASE_URL": database_url}
    # The database slots read the same settings as the engine.
    env |= {"USERBASE_POOL_SIZE": str(POOL), "USERBASE_MAX_OVERFLOW": "0"}
    env |= {"USERBASE_POOL_TIMEOUT": "2"}
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench.session_bound:make_app"]
    command += ["--port", str(port), "--log-level", "error"]
    process = subprocess.Popen(command, env=env)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _burst(client: httpx.Client, count: int) -> tuple[Counter[int], list[float]]:
    def one(_: int) -> tuple[int, float]:
        started = time.monotonic()
        status = client.get("/quick").status_code
        return status, time.monotonic() - started

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    return Counter(s for s, _ in results), [t for _, t in results]


def _summary(statuses: Counter[int], times: list[float]) -> str:
    codes = " ".join(f"{code}x{n}" for code, n in sorted(statuses.items()))
    return f"{codes}; median {statistics.median(times):.2f} s, max {max(times):.2f} s"


def run(variant: str, database_url: str, port: int) -> None:
    process = _serve(variant, database_url, port)
    limits = httpx.Limits(max_connections=200)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as c:
            _burst(c, 100)  # warm-up: open the pool's connections
            for _ in range(3):
                print(f"{variant:16} 100 quick reads:          {_summary(*_burst(c, 100))}")
            slow = [threading.Thread(target=c.get, args=("/slow",)) for _ in range(POOL)]
            for thread in slow:
                thread.start()
            time.sleep(0.5)
            probes: list[float] = []
            done = threading.Event()

            def probe() -> None:
                while not done.is_set():
                    started = time.monotonic()
                    c.get("/healthz")
                    probes.append(time.monotonic() - started)
                    time.sleep(0.05)

            prober = threading.Thread(target=probe)
            prober.start()
            burst = _burst(c, 50)
            done.set()
            prober.join()
            for thread in slow:
                thread.join()
            print(
                f"{variant:16} 50 reads, pool held 5 s: {_summary(*burst)}; "
                f"/healthz max {max(probes) * 1000:.0f} ms"
            )
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    database_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{tmp}/bench.db"
        for variant in VARIANTS:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            run(variant, url, port)


if __name__ == "__main__":
    main()
