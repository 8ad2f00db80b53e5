"""CORS: no cross-origin access by default; the origins in USERBASE_CORS_ORIGINS get it."""

from collections.abc import Iterator

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer

ALLOWED = "https://admin.example.com"


def preflight(server: LiveServer, origin: str) -> httpx.Response:
    return httpx.options(
        f"{server.url}/users/",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


@pytest.fixture(scope="module")
def cors_server(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url, USERBASE_CORS_ORIGINS=f"{ALLOWED}, https://other.example.com")
    yield server
    server.stop()


@pytest.mark.live
def test_by_default_a_preflight_gets_no_cors_headers(live_server: LiveServer) -> None:
    response = preflight(live_server, ALLOWED)
    assert "access-control-allow-origin" not in response.headers
    simple = httpx.get(f"{live_server.url}/users/", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in simple.headers


@pytest.mark.live
def test_a_configured_origin_passes_the_preflight(cors_server: LiveServer) -> None:
    response = preflight(cors_server, ALLOWED)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.live
def test_a_configured_origin_reads_responses_and_their_headers(cors_server: LiveServer) -> None:
    response = httpx.get(f"{cors_server.url}/users/", headers={"Origin": ALLOWED})
    assert response.headers["access-control-allow-origin"] == ALLOWED
    exposed = response.headers["access-control-expose-headers"].lower()
    assert {"link", "location", "x-request-id"} <= set(exposed.replace(" ", "").split(","))


@pytest.mark.live
def test_another_origin_is_refused(cors_server: LiveServer) -> None:
    response = preflight(cors_server, "https://evil.example.net")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    simple = httpx.get(f"{cors_server.url}/users/", headers={"Origin": "https://evil.example.net"})
    assert "access-control-allow-origin" not in simple.headers


def test_origins_may_be_a_json_list() -> None:
    from userbase.config import Settings

    assert Settings(cors_origins='["https://a.example", "https://b.example"]').cors_origins == [
        "https://a.example",
        "https://b.example",
    ]
    assert Settings(cors_origins="https://a.example,https://b.example").cors_origins == [
        "https://a.example",
        "https://b.example",
    ]
    assert Settings().cors_origins == []
