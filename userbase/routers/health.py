"""Liveness and readiness probes."""

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from userbase import readiness
from userbase.database import engine
from userbase.problem import RETRY_AFTER_SECONDS, problem
from userbase.responses import JSONBytes

logger = logging.getLogger("userbase.health")
router = APIRouter(tags=["health"])

# The key of each probe in the answer, and what a 503 says when it fails.
_KEYS = {readiness.DATABASE: "database", readiness.REDIS: "redis"}
_UNREACHABLE = {
    readiness.DATABASE: "The database is unreachable.",
    readiness.DATABASE_DISK: "The database's disk is full: writes fail until space is freed.",
    readiness.REDIS: "Redis is unreachable.",
}


@router.get("/healthz", summary="The process is alive (never touches the database)")
async def healthz() -> Response:
    return JSONBytes({"status": "ok"})


def _probe() -> list[readiness.Check]:
    return list(readiness.probes(engine))


@router.get(
    "/readyz",
    summary="The database (and Redis, when configured) answers",
    responses={503: {"content": {"application/problem+json": {}}}},
)
async def readyz() -> Response:
    # Only the cheap probes: load balancers poll this every few seconds. `userbase check` runs
    # the rest (schema, connection budget, durability), which a server checked at start-up.
    checks = await run_in_threadpool(_probe)
    failed = [check for check in checks if check.status == "fail"]
    for check in failed:
        logger.warning("readiness: %s failed (%s)", check.name, check.detail)
    if failed:
        return problem(
            503,
            " ".join(_UNREACHABLE[check.name] for check in failed),
            instance="/readyz",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    report = {_KEYS[check.name]: "ok" for check in checks if check.name in _KEYS}
    # Mails that gave up are a warning, not unreadiness: requests are served all the same.
    given_up = await run_in_threadpool(readiness.mail_given_up, engine)
    return JSONBytes(
        {"status": "ok", **report, "pool": pool_stats(), "mail": {"given_up": given_up}}
    )


def pool_stats() -> dict[str, int]:
    """The connection pool right now (after our own ping's connection went back)."""
    pool: Any = engine.pool
    return {
        "size": pool.size(),
        "checked_out": pool.checkedout(),
        "checked_in": pool.checkedin(),
        "overflow": pool.overflow(),
    }
