"""Liveness and readiness probes."""

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
    return JSONBytes({"status": "ok", "database": "ok"})
