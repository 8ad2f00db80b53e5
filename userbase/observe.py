"""One pure ASGI middleware per request: the request id, the metrics and one access log line."""

import logging
import re
import secrets
from functools import lru_cache
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from userbase.logs import request_id_var
from userbase.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

access_logger = logging.getLogger("userbase.access")

REQUEST_ID_HEADER = b"x-request-id"
# An incoming X-Request-ID is kept only when it is 1 to 64 letters, digits, '-', '_' or '.':
# enough for UUIDs, ULIDs and hex trace ids, nothing that could forge a log line or a header, and
# no longer than the audit trail's column (models.SecurityEvent.request_id), so the id a client
# reads in the answer is the one its request's audit events carry.
REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# Any other method is counted as "other", so a client cannot create unbounded metric series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def incoming_request_id(scope: Scope) -> str | None:
    """The request's own X-Request-ID when it matches REQUEST_ID_PATTERN, else None."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if REQUEST_ID_PATTERN.fullmatch(value) else None
    return None


def route_template(scope: Scope) -> str:
    """The template of the route that answered ("/users/{user_id}"), never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    # A mounted app (the docs' static files) leaves no route in the scope, only its prefix
    # added to root_path (Starlette's Mount).
    mounted_at: str = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    if mounted_at and "endpoint" in scope:
        return mounted_at + "/{path}"
    return UNMATCHED_ROUTE


@lru_cache(maxsize=4096)
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The two metric children of a request; looked up once per (route, method, status), which
    are bounded (route templates, known methods, status codes), instead of twice a request."""
    return (
        HTTP_REQUESTS.labels(route, method, str(status)),
        HTTP_REQUEST_DURATION.labels(route, method),
    )


class ObserveRequests:
    """Take or make the request id, return it in X-Request-ID, count, time and log the request."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or secrets.token_hex(16)
        # The request's one id: log lines, the audit trail (routers/dependencies.py) and the 500
        # handler read it here. Never reset: the task ends with the request, and the 500
        # handler, which runs outside this middleware (ServerErrorMiddleware), still reads it.
        request_id_var.set(request_id)
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # what the client gets if the app raises before starting a response
        start = perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                # The 500 handler may have set it already (errors.py).
                if not any(name == REQUEST_ID_HEADER for name, _ in headers):
                    message["headers"] = [*headers, id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = route_template(scope)
        count, latency = _series(route, method, status)
        count.inc()
        latency.observe(seconds)
        if self.access_log and access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )
