"""GET /metrics: Prometheus text, the pool and the hashing gauges, the optional bearer token."""

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import LiveServer, new_user
from tests.test_observe import metric
from userbase.app import create_app
from userbase.database import engine
from userbase.security import hash_password


def test_metrics_is_prometheus_text(client: Any) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    for name in (
        "userbase_http_requests_total",
        "userbase_http_request_duration_seconds",
        "userbase_db_pool_size",
        "userbase_db_pool_checked_out",
        "userbase_db_pool_overflow",
        "userbase_password_hashes_in_flight",
        "userbase_login_failures_total",
        "userbase_login_throttled_total",
        "process_resident_memory_bytes",
    ):
        assert f"\n# TYPE {name} " in response.text, name


def test_metrics_is_not_in_the_openapi_document(client: Any) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_pool_gauges_follow_the_connections_in_use(client: Any) -> None:
    assert metric(client, "userbase_db_pool_size") == engine.pool.size()  # type: ignore[attr-defined]
    held = engine.connect()
    try:
        in_use = metric(client, "userbase_db_pool_checked_out")
    finally:
        held.close()
    assert in_use >= 1
    assert metric(client, "userbase_db_pool_checked_out") == in_use - 1


def test_the_pool_is_one_set_of_gauges_however_many_apps_are_built(client: Any) -> None:
    create_app()
    create_app()
    text = client.get("/metrics").text
    for name in ("size", "checked_out", "overflow"):
        assert text.count(f"\n# TYPE userbase_db_pool_{name} gauge") == 1, name
        assert text.count(f"\nuserbase_db_pool_{name} ") == 1, name


def test_metrics_can_be_imported_without_the_database() -> None:
    # The pool is handed to metrics.py by the app; importing metrics makes no engine.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, userbase.metrics; print('userbase.database' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.strip() == "False"


def test_hashes_in_flight_counts_a_hash_while_it_runs(client: Any) -> None:
    # A reader polls the gauge while this thread hashes, until it has seen a hash in flight.
    # Hashes with the tests' settings take about as long as one read of /metrics, so a fixed
    # number of them could all fall between two reads (seen once, on a loaded machine): hash
    # until the reader saw one, or give up after many.
    seen_in_flight = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if metric(client, "userbase_password_hashes_in_flight") >= 1:
                seen_in_flight.set()
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(2000):
            hash_password("a password to hash")
            if seen_in_flight.is_set():
                break
    finally:
        done.set()
        watcher.join()
    assert seen_in_flight.is_set()
    assert metric(client, "userbase_password_hashes_in_flight") == 0


def test_a_create_is_counted_as_201(client: Any) -> None:
    labels = {"route": "/users/", "method": "POST", "status": "201"}
    before = metric(client, "userbase_http_requests_total", **labels)
    assert client.post("/users/", json=new_user(1)).status_code == 201
    assert metric(client, "userbase_http_requests_total", **labels) == before + 1


@pytest.fixture(scope="module")
def guarded_server(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url, USERBASE_METRICS_TOKEN="scrape-me-please")
    yield server
    server.stop()


@pytest.mark.live
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Basic c2NyYXBlLW1lLXBsZWFzZQ==", "scrape-me-please"]
)
def test_with_a_token_set_metrics_refuses_anything_else(
    guarded_server: LiveServer, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{guarded_server.url}/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "scrape-me-please" not in response.text


@pytest.mark.live
def test_with_a_token_set_metrics_answers_the_bearer(guarded_server: LiveServer) -> None:
    for scheme in ("Bearer", "bearer"):
        response = httpx.get(
            f"{guarded_server.url}/metrics",
            headers={"Authorization": f"{scheme} scrape-me-please"},
        )
        assert response.status_code == 200
        assert "userbase_http_requests_total" in response.text
    assert httpx.get(f"{guarded_server.url}/healthz").status_code == 200


def _counter(client: Any, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}_total "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_refused_and_throttled_logins_are_counted(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from userbase.config import get_settings

    monkeypatch.setattr(get_settings(), "login_account_limit", 2)
    failures = _counter(client, "userbase_login_failures")
    throttled = _counter(client, "userbase_login_throttled")
    for _ in range(3):
        client.post("/auth/token", data={"username": "ghost", "password": "wrong password!"})

    assert _counter(client, "userbase_login_failures") == failures + 2
    assert _counter(client, "userbase_login_throttled") == throttled + 1
