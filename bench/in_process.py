"""CPU per request of userbase's whole ASGI app called in this process: no HTTP, no wrk.

`python -m bench.in_process` (after `make bench` installed the tools), ~1 minute: 10,000 users in
a fresh database, then the app (middleware, routing, dependencies, the database, the JSON) is
called directly, 10 requests at a time on core 0, and the CPU time per request
(time.process_time, this process's threads together) is printed per path, the best of three
rounds. Steadier than a wrk run for comparing two commits a few per cent apart: run it on each.
"""

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from bench.database import bench_database
from bench.hashing import PASSWORD, make_hasher, service_settings
from bench.servers import BIN

PATHS = ("/healthz", "/users/5", "/users/?limit=100")
CONCURRENCY = 10


async def _request(app: Any, path: str) -> int:
    """One GET through the app; the response's status."""
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    statuses = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


async def cpu_per_request(app: Any, path: str, requests: int) -> float:
    """CPU time per GET of `path` (µs), CONCURRENCY requests at a time, after a warm-up."""

    async def client(count: int) -> None:
        for _ in range(count):
            status = await _request(app, path)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")

    await asyncio.gather(*(client(30) for _ in range(CONCURRENCY)))  # warm-up
    started = time.process_time()
    await asyncio.gather(*(client(requests // CONCURRENCY) for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / requests * 1e6


async def _measure(paths: list[str], requests: int) -> None:
    # Imported here: the package reads its database URL when database.py is first imported.
    from userbase.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        for path in paths:
            best = min([await cpu_per_request(app, path, requests) for _ in range(3)])
            print(f"  {path:<30} {best:7.1f} µs of CPU a request", flush=True)


def on_loaded_database(measure: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `measure()` under uvloop, this process on core 0, with DATABASE_URL naming a fresh
    database of 10,000 users (dropped afterwards)."""
    password_hash = make_hasher(service_settings()).hash(PASSWORD)
    with bench_database("127.0.0.1", 5432, BIN / "userbase") as database:
        database.load_users(10_000, password_hash)
        os.environ["DATABASE_URL"] = database.sqlalchemy_url
        os.sched_setaffinity(0, {0})
        uvloop.run(measure())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.in_process", description=__doc__)
    parser.add_argument("paths", nargs="*", default=list(PATHS))
    parser.add_argument("--requests", type=int, default=4000, help="per round and path")
    args = parser.parse_args(argv)
    print(f"in one process on core 0, {CONCURRENCY} at a time, best of 3 rounds:")
    on_loaded_database(lambda: _measure(args.paths, args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
