"""Liveness and readiness probes."""

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text
from starlette.responses import Response

from userbase.database import SQLITE_BEGIN_OPTION, engine
from userbase.problem import RETRY_AFTER_SECONDS, problem
from userbase.redis_client import redis_client
from userbase.responses import JSONBytes

logger = logging.getLogger("userbase.health")
router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive (never touches the database)")
async def healthz() -> Response:
    return JSONBytes({"status": "ok"})


def _ping_database() -> None:
    # DEFERRED: on SQLite a probe must not take the write lock (database.py), nor wait for it.
    with engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"}) as connection:
        connection.execute(text("SELECT 1"))


def _readiness() -> dict[str, str]:
    """ "ok" or "unreachable" for the database and, when USERBASE_REDIS_URL is set, Redis."""
    probes: dict[str, Callable[[], object]] = {"database": _ping_database}
    client = redis_client()
    if client is not None:
        probes["redis"] = client.ping
    report = {}
    for name, probe in probes.items():
        try:
            probe()
        except Exception as exc:
            logger.warning("readiness: %s unreachable (%s)", name, type(exc).__name__)
            report[name] = "unreachable"
        else:
            report[name] = "ok"
    return report


_UNREACHABLE = {"database": "The database is unreachable.", "redis": "Redis is unreachable."}


@router.get(
    "/readyz",
    summary="The database (and Redis, when configured) answers",
    responses={503: {"content": {"application/problem+json": {}}}},
)
async def readyz() -> Response:
    report = await run_in_threadpool(_readiness)
    failed = [name for name, state in report.items() if state != "ok"]
    if failed:
        return problem(
            503,
            " ".join(_UNREACHABLE[name] for name in failed),
            instance="/readyz",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return JSONBytes({"status": "ok", **report, "pool": pool_stats()})


def pool_stats() -> dict[str, int]:
    """The connection pool right now (after our own ping's connection went back)."""
    pool: Any = engine.pool
    return {
        "size": pool.size(),
        "checked_out": pool.checkedout(),
        "checked_in": pool.checkedin(),
        "overflow": pool.overflow(),
    }
