"""Liveness and readiness probes."""

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text
from starlette.responses import Response

from userbase.database import engine
from userbase.errors import RETRY_AFTER_SECONDS, problem
from userbase.responses import JSONBytes

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive (never touches the database)")
async def healthz() -> Response:
    return JSONBytes({"status": "ok"})


def _ping_database() -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


@router.get(
    "/readyz",
    summary="The database answers",
    responses={503: {"content": {"application/problem+json": {}}}},
)
async def readyz() -> Response:
    try:
        await run_in_threadpool(_ping_database)
    except Exception:
        return problem(
            503,
            "The database is unreachable.",
            instance="/readyz",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return JSONBytes({"status": "ok", "database": "ok", "pool": pool_stats()})


def pool_stats() -> dict[str, int]:
    """The connection pool right now (after our own ping's connection went back)."""
    pool: Any = engine.pool
    return {
        "size": pool.size(),
        "checked_out": pool.checkedout(),
        "checked_in": pool.checkedin(),
        "overflow": pool.overflow(),
    }
