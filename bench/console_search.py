"""The console's user search against the API's admin search on 1,000,000 users (issue 20).

Makes its own PostgreSQL database (bench/database.py), loads the users with COPY, marks 1 %
inactive and one in 100,000 admin (as bench/admin_search_plans.py does), signs the admin
`user1` in twice through userbase's app in this process (an opaque token of `POST /auth/token`,
and a browser sign-in of the hosted page), then runs each search as `GET /users/` (JSON, the
bearer token) and as `GET /console/` (the HTML page, the browser's cookie), one request at a
time, alternating, and prints the median and 95th percentile time of each and their ratio.

    .venv/bin/python -m bench.console_search [--users 1000000] [--requests 200]

The app is called through httpx's ASGI transport on core 0: no HTTP server, no network; what
differs between the two is the route, the authentication and the rendering.
"""

import argparse
import os
import re
import statistics
import time
from typing import Any

import httpx
import uvloop

from bench.database import bench_database
from bench.hashing import PASSWORD, make_hasher, service_settings
from bench.servers import BIN

PAGE = 50  # the console's page of users (routers/console_admin.py)
# name, GET /users/ query, GET /console/ query: the same search through each.
SEARCHES: list[tuple[str, str, str]] = [
    ("a whole address", "email_prefix=user777777%40example.com", "q=user777777%40example.com"),
    ("an address's start", "email_prefix=user77777", "q=user77777%40"),
    ("a username's start", "q=user4242", "q=user4242"),
    ("admins", "is_admin=true", "admin=yes"),
    ("inactive users", "is_active=false", "active=no"),
    ("created on the last day", "created_after=2026-01-12T00:00:00Z", "created_from=2026-01-12"),
    ("the first page, no filter", "", ""),
]


async def _signed_in(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
    """The admin's bearer header, and the cookies of a browser signed in on the hosted page."""
    answer = await client.post("/auth/token", data={"username": "user1", "password": PASSWORD})
    answer.raise_for_status()
    bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    page = await client.get("/oauth/sign-in")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    signed = await client.post(
        "/oauth/sign-in",
        data={"csrf_token": found.group(1), "username": "user1", "password": PASSWORD},
    )
    assert signed.status_code == 200, signed.text
    # The browser sign-in's cookie is all a GET of the console needs.
    return bearer, {c.name: c.value for c in client.cookies.jar if c.name == "userbase_sso"}


async def _timed(client: httpx.AsyncClient, url: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    answer = await client.get(url, **kwargs)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"GET {url} answered {answer.status_code}: {answer.text[:300]}")
    return elapsed * 1000


async def _measure(requests: int) -> int:
    # Imported here: the package reads its database URL when database.py is first imported.
    from userbase.app import create_app

    app = create_app()
    slower = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            bearer, cookies = await _signed_in(client)
            client.cookies.clear()
            print("| search | API median ms (p95) | console median ms (p95) | console / API |")
            print("|---|---:|---:|---:|")
            for name, api_query, console_query in SEARCHES:
                api_url = f"/users/?limit={PAGE}&{api_query}"
                console_url = f"/console/?{console_query}"
                api, console = [], []
                for _ in range(10):  # warm-up
                    await _timed(client, api_url, headers=bearer)
                    await _timed(client, console_url, cookies=cookies)
                for _ in range(requests):
                    api.append(await _timed(client, api_url, headers=bearer))
                    console.append(await _timed(client, console_url, cookies=cookies))
                ratio = statistics.median(console) / statistics.median(api)
                slower += ratio > 1
                print(
                    f"| {name} | {statistics.median(api):.2f} ({_p95(api):.2f}) "
                    f"| {statistics.median(console):.2f} ({_p95(console):.2f}) | {ratio:.2f} |",
                    flush=True,
                )
    return slower


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console_search", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="per search and route")
    args = parser.parse_args(argv)
    password_hash = make_hasher(service_settings()).hash(PASSWORD)
    with bench_database("127.0.0.1", 5432, BIN / "userbase") as database:
        load_s = database.load_users(args.users, password_hash)
        with database.connect() as connection:
            connection.execute("UPDATE users SET is_active = false WHERE id % 100 = 0")
            connection.execute("UPDATE users SET is_admin = true WHERE id % 100000 = 0 OR id = 1")
            connection.execute("VACUUM (ANALYZE) users")
        print(
            f"{args.users:,} users loaded in {load_s:.0f} s, PostgreSQL {database.server_version()}"
        )
        print(f"each search {args.requests} times through each route, alternating, on core 0:\n")
        os.environ["DATABASE_URL"] = database.sqlalchemy_url
        os.sched_setaffinity(0, {0})
        slower = uvloop.run(_measure(args.requests))
    print(f"\nthe console was slower than the API on {slower} of {len(SEARCHES)} searches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
