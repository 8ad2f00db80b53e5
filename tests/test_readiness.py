"""/readyz reports Redis too when USERBASE_REDIS_URL is set; /healthz still touches nothing."""

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.live

# The machine's Redis (README: `make test` needs it), and a port where nothing listens.
REDIS_URL = "redis://127.0.0.1:6379/0"
NO_REDIS_URL = "redis://127.0.0.1:1/0"


def test_readyz_reports_redis_when_it_is_configured(database_url: str) -> None:
    server = LiveServer(database_url, USERBASE_REDIS_URL=REDIS_URL)
    try:
        response = httpx.get(f"{server.url}/readyz")
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_readyz_is_503_naming_redis_when_it_is_unreachable(database_url: str) -> None:
    server = LiveServer(database_url, USERBASE_REDIS_URL=NO_REDIS_URL)
    try:
        ready = httpx.get(f"{server.url}/readyz")
        alive = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.headers["retry-after"]
    assert ready.json()["detail"] == "Redis is unreachable."
    assert alive.status_code == 200


def test_without_redis_configured_readyz_does_not_mention_it(live_server: LiveServer) -> None:
    assert httpx.get(f"{live_server.url}/readyz").json() == {"status": "ok", "database": "ok"}
