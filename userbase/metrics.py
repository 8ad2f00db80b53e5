"""Prometheus metrics: the registry GET /metrics exposes and the objects userbase updates.

With several workers, `userbase serve` adds them up across workers (worker_metrics.py).
"""

import functools
from collections.abc import Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

HTTP_REQUESTS = Counter(
    "userbase_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
# From 1 ms (a cached read) to 10 s; a create costs ~45 ms of argon2id on this machine kind.
HTTP_REQUEST_DURATION = Histogram(
    "userbase_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
PASSWORD_HASHES_IN_FLIGHT = Gauge(
    "userbase_password_hashes_in_flight",
    "argon2id hashes or verifications being computed right now (bounded by HASH_CONCURRENCY).",
    registry=REGISTRY,
    multiprocess_mode="livesum",  # with several workers: theirs together (worker_metrics.py)
)

# Counted by POST /auth/token (routers/auth.py). Neither counter carries the username or the
# client address: those would be unbounded labels, and a username does not belong in monitoring.
LOGIN_FAILURES = Counter(
    "userbase_login_failures",
    "Logins refused for a wrong username or password.",
    registry=REGISTRY,
)
LOGIN_THROTTLED = Counter(
    "userbase_login_throttled",
    "Logins refused because too many attempts came too fast.",
    registry=REGISTRY,
)


_POOL_READINGS = (
    ("size", "size", "Connections the pool keeps (USERBASE_POOL_SIZE)."),
    ("checked_out", "checkedout", "Connections in use by a request or a command right now."),
    ("overflow", "overflow", "Connections beyond the pool size (negative: pool not yet full)."),
)


class PoolCollector(Collector):
    """A connection pool, read when scraped (nothing to update on the hot path)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        # engine.pool, not a pool kept from before: Engine.dispose() puts a new pool in its place.
        pool = self._engine.pool
        for name, reading, help_text in _POOL_READINGS:
            reader = getattr(pool, reading, None)
            if callable(reader):  # SQLAlchemy's QueuePool has all three; other pools may not
                yield GaugeMetricFamily(f"userbase_db_pool_{name}", help_text, value=reader())


# Cached: create_app registers the pool each time it builds an app (tests build several), and a
# collector registered twice would print every pool gauge twice.
@functools.cache
def register_pool(engine: Engine) -> None:
    """Expose `engine`'s pool as the userbase_db_pool_* gauges (once per engine)."""
    REGISTRY.register(PoolCollector(engine))
