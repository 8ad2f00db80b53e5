"""Where a list page's CPU goes: the request built up one layer at a time, in one process.

`python -m bench.list_layers` (after `make bench` installed the tools), ~2 minutes: 10,000 users
in a fresh database, then userbase's app with extra routes, each adding one layer of what
`GET /users/?limit=100` does to the one before, called without HTTP like `bench.in_process`
(10 at a time on core 0, CPU per request, the best of five rounds over all layers). The last two
lines are userbase's own list route, first added like the layers (ahead of every other route),
then at its place among the app's routes, as requests meet it.
The raw psycopg line is for comparison: the same page read with the driver's cursor.
"""

import argparse
import os
from collections.abc import Callable
from typing import Annotated, Any

from bench.in_process import CONCURRENCY, cpu_per_request, on_loaded_database

ROUNDS = 5
_PAGE_SQL = (
    "SELECT id, username, display_name, created_at FROM users WHERE id > %s ORDER BY id LIMIT %s"
)


def _layered_routes() -> list[tuple[str, Callable[..., Any]]]:
    """(label, endpoint) pairs, each one layer more than the one before."""
    # Imported here: the package reads its database URL when database.py is first imported.
    from fastapi import Depends, Query
    from sqlalchemy.orm import Session

    from userbase import users
    from userbase.database import SessionDep
    from userbase.responses import JSONBytes
    from userbase.routers.dependencies import OptionalPrincipalDep
    from userbase.routers.users import _public_page, admin_filters, list_users

    empty = b"[]"

    def page(db: Session) -> list[Any]:
        return list(users.list_public_users(db, after=0, limit=100, username_prefix=None).rows)

    async def constant() -> JSONBytes:
        return JSONBytes(empty)

    def thread_hop() -> JSONBytes:
        return JSONBytes(empty)

    def session(db: SessionDep) -> JSONBytes:
        return JSONBytes(empty)

    def connection(db: SessionDep) -> JSONBytes:
        db.connection()
        return JSONBytes(empty)

    def raw_psycopg(db: SessionDep) -> JSONBytes:
        with db.connection().connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(_PAGE_SQL, (0, 101))
            cursor.fetchall()
        return JSONBytes(empty)

    def statement(db: SessionDep) -> JSONBytes:
        page(db)
        return JSONBytes(empty)

    def to_json(db: SessionDep) -> JSONBytes:
        return JSONBytes(_public_page(page(db)))

    def bearer(db: SessionDep, principal: OptionalPrincipalDep) -> JSONBytes:
        return JSONBytes(_public_page(page(db)))

    def filters(
        db: SessionDep,
        principal: OptionalPrincipalDep,
        filters: Annotated[users.AdminFilters, Depends(admin_filters)],
    ) -> JSONBytes:
        return JSONBytes(_public_page(page(db)))

    def parameters(
        db: SessionDep,
        principal: OptionalPrincipalDep,
        filters: Annotated[users.AdminFilters, Depends(admin_filters)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        q: Annotated[
            str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
        ] = None,
    ) -> JSONBytes:
        rows = users.list_public_users(db, after=after, limit=limit, username_prefix=q).rows
        return JSONBytes(_public_page(rows))

    return [
        ("async def route, constant body (FastAPI, middleware)", constant),
        ("+ def route: the thread hop", thread_hop),
        ("+ get_db's session, no statement", session),
        ("+ the session's connection (pool checkout)", connection),
        ("  (for comparison: the page by psycopg's cursor)", raw_psycopg),
        ("+ the page's statement and rows (SQLAlchemy Core)", statement),
        ("+ rows to dicts to JSON (orjson)", to_json),
        ("+ the optional bearer token dependency", bearer),
        ("+ the admin filters dependency", filters),
        ("+ limit, after and q validated", parameters),
        ("+ the route's own work (permissions, Link header)", list_users),
    ]


async def _measure(requests: int) -> None:
    from userbase.app import create_app

    app = create_app()
    layers = _layered_routes()
    for number, (_label, endpoint) in enumerate(layers):
        app.router.add_api_route(f"/bench-layers/{number}", endpoint, methods=["GET"])
        # First in line, so that no route of the app's own matches these paths.
        app.router.routes.insert(0, app.router.routes.pop())
    paths = [(label, f"/bench-layers/{n}") for n, (label, _) in enumerate(layers)]
    paths.append(("+ matched among the app's routes: GET /users/?limit=100", "/users/?limit=100"))
    async with app.router.lifespan_context(app):
        # Rounds go over every layer in turn, so that a slow spell of the machine hits all alike.
        best = [float("inf")] * len(paths)
        for _ in range(ROUNDS):
            for index, (_label, path) in enumerate(paths):
                best[index] = min(best[index], await cpu_per_request(app, path, requests))
    previous = None
    for (label, _path), cost in zip(paths, best, strict=True):
        comparison = label.startswith("  (")
        step = "" if previous is None or comparison else f"{cost - previous:+7.1f}"
        print(f"  {label:<55} {cost:7.1f} µs {step}", flush=True)
        if not comparison:
            previous = cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.list_layers", description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="per round and layer")
    args = parser.parse_args(argv)
    os.environ.setdefault("USERBASE_LOG_LEVEL", "WARNING")
    print(
        f"CPU per request in one process on core 0, {CONCURRENCY} at a time,"
        f" best of {ROUNDS} rounds:"
    )
    on_loaded_database(lambda: _measure(args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
