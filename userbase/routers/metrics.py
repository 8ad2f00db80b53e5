"""GET /metrics in Prometheus' text format, behind USERBASE_METRICS_TOKEN when it is set."""

import hmac

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from userbase.config import get_settings
from userbase.metrics import REGISTRY
from userbase.problem import problem
from userbase.worker_metrics import exposition

# Outside the OpenAPI document: it is for the scraper, and its token is not a user's.
router = APIRouter(include_in_schema=False)


def _token_matches(request: Request, expected: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), expected.encode()
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    token = get_settings().metrics_token
    if token is not None and not _token_matches(request, token.get_secret_value()):
        return problem(
            401,
            "Send the metrics token as `Authorization: Bearer <token>`.",
            instance="/metrics",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    # In a thread: a scrape counts the mails that gave up in the database (metrics.py).
    body = await run_in_threadpool(exposition, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
