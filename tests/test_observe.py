"""Every request: one X-Request-ID (taken or made; the audit trail's too), counted in /metrics,
one access log line."""

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.accounts import bearer, signed_in_user
from tests.conftest import LiveServer, new_user
from userbase.app import create_app
from userbase.database import SessionDep

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def test_a_request_without_an_id_gets_a_fresh_one(client: Any) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert GENERATED_ID.fullmatch(first)
    assert first != second


@pytest.mark.parametrize(
    "request_id", ["abc", "3f2b8c1e-6a4d-4e0f-9b7a-2c1d0e9f8a7b", "01HZX3V6Q8.trace_7", "x" * 64]
)
def test_a_valid_incoming_request_id_is_kept(client: Any, request_id: str) -> None:
    response = client.get("/users/", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [b"", b"x" * 65, b"has space", b"back\\slash", b"semi;colon", "é".encode(), b"a/b", b"<a>"],
)
def test_an_invalid_incoming_request_id_is_replaced(client: Any, request_id: bytes) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": request_id})
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def _audited_request_ids(client: Any, headers: dict[str, str]) -> tuple[str, str | None]:
    """The X-Request-ID answered to a sign-up, and the request id of its user_created event."""
    created = client.post("/users/", json=new_user("audited"), headers=headers)
    assert created.status_code == 201, created.text
    _, admin_token = signed_in_user(client, "admin", admin=True)
    trail = client.get(
        "/admin/events",
        params={"user_id": created.json()["id"], "kind": "user_created"},
        headers=bearer(admin_token),
    ).json()
    assert len(trail) == 1
    return created.headers["x-request-id"], trail[0]["request_id"]


def test_the_audit_trail_has_the_request_id_made_for_a_request_without_one(client: Any) -> None:
    answered, audited = _audited_request_ids(client, {})
    assert GENERATED_ID.fullmatch(answered)
    assert audited == answered


def test_an_overlong_request_id_is_replaced_in_the_answer_and_the_audit_trail_alike(
    client: Any,
) -> None:
    answered, audited = _audited_request_ids(client, {"X-Request-ID": "r" * 100})
    assert GENERATED_ID.fullmatch(answered)
    assert audited == answered


def test_a_valid_request_id_is_kept_in_the_answer_and_the_audit_trail_alike(client: Any) -> None:
    request_id = "trace." + "0123456789abcdef" * 2 + "-_"  # 40 characters
    assert len(request_id) == 40
    assert _audited_request_ids(client, {"X-Request-ID": request_id}) == (request_id, request_id)


def test_errors_carry_the_request_id_too(client: Any) -> None:
    for response in (
        client.get("/no/such/route", headers={"X-Request-ID": "req-404"}),
        client.post("/users/", json={}, headers={"X-Request-ID": "req-422"}),
    ):
        assert response.headers["x-request-id"] == response.request.headers["x-request-id"]
        assert len(response.headers.get_list("x-request-id")) == 1


def test_a_500_carries_the_request_id_once() -> None:
    app = create_app()

    @app.get("/test/crash")
    def crash(db: SessionDep) -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/test/crash", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers.get_list("x-request-id") == ["req-500"]


def metric(client: Any, name: str, **labels: str) -> float:
    """The value of one sample in GET /metrics (0 when absent)."""
    text = client.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.startswith(name):
            body = sample[len(name) :]
            found = ",".join(sorted(body.strip("{}").split(","))) if body else ""
            if found == wanted:
                return float(value)
    return 0.0


def test_requests_are_counted_by_route_template_method_and_status(client: Any) -> None:
    labels = {"route": "/users/{user_id}", "method": "GET", "status": "404"}
    before = metric(client, "userbase_http_requests_total", **labels)
    client.get("/users/424242")
    client.get("/users/434343")
    assert metric(client, "userbase_http_requests_total", **labels) == before + 2
    assert "/users/424242" not in client.get("/metrics").text


def test_unmatched_paths_share_one_label(client: Any) -> None:
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    before = metric(client, "userbase_http_requests_total", **labels)
    client.get("/nothing/here/1")
    client.get("/nothing/here/2")
    assert metric(client, "userbase_http_requests_total", **labels) == before + 2


def test_mounted_static_files_are_counted_under_their_prefix(client: Any) -> None:
    labels = {"route": "/docs-assets/{path}", "method": "GET", "status": "200"}
    before = metric(client, "userbase_http_requests_total", **labels)
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert metric(client, "userbase_http_requests_total", **labels) == before + 1


def test_latency_histogram_observes_each_request(client: Any) -> None:
    labels = {"route": "/healthz", "method": "GET"}
    before = metric(client, "userbase_http_request_duration_seconds_count", **labels)
    client.get("/healthz")
    assert metric(client, "userbase_http_request_duration_seconds_count", **labels) == before + 1
    bucket = metric(client, "userbase_http_request_duration_seconds_bucket", le="10.0", **labels)
    assert bucket >= before + 1


@pytest.fixture(scope="module")
def json_log_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path]]:
    """A real server logging JSON lines into a file the tests read."""
    log_path = tmp_path_factory.mktemp("logs") / "server.log"
    with log_path.open("wb") as log_file:
        server = LiveServer(database_url, output=log_file, USERBASE_LOG_FORMAT="json")
        yield server, log_path
        server.stop()


def log_entries(path: Path, request_id: str) -> list[dict[str, Any]]:
    """The JSON log lines of one request (waiting briefly for the server to write them)."""
    deadline = time.monotonic() + 5
    while True:
        lines = path.read_bytes().splitlines()
        entries = [orjson.loads(line) for line in lines if line.startswith(b"{")]
        found = [e for e in entries if e.get("request_id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.live
def test_one_json_access_line_per_request(json_log_server: tuple[LiveServer, Path]) -> None:
    server, log_path = json_log_server
    response = httpx.get(f"{server.url}/users/7", headers={"X-Request-ID": "one-line-check"})
    assert response.status_code == 404

    entries = log_entries(log_path, "one-line-check")

    access = [e for e in entries if e["logger"] == "userbase.access"]
    assert len(access) == 1
    line = access[0]
    assert line["method"] == "GET"
    assert line["route"] == "/users/{user_id}"
    assert line["status"] == 404
    assert line["duration_ms"] > 0
    assert line["level"] == "info"
    assert line["time"].endswith("+00:00")


@pytest.mark.live
def test_no_password_email_or_hash_in_the_logs_of_a_create(
    json_log_server: tuple[LiveServer, Path],
) -> None:
    server, log_path = json_log_server
    body = new_user("logcheck", password="hunter2-but-longer", display_name="Log Check")
    with httpx.Client(base_url=server.url) as client:
        created = client.post("/users/", json=body, headers={"X-Request-ID": "create-1"})
        duplicate = client.post("/users/", json=body, headers={"X-Request-ID": "create-2"})
        invalid = client.post(
            "/users/", json={**body, "email": "not-an-email"}, headers={"X-Request-ID": "create-3"}
        )
    assert (created.status_code, duplicate.status_code, invalid.status_code) == (201, 409, 422)

    assert [e["status"] for e in log_entries(log_path, "create-1")] == [201]
    assert [e["status"] for e in log_entries(log_path, "create-2")] == [409]
    assert [e["status"] for e in log_entries(log_path, "create-3")] == [422]
    everything = log_path.read_text()
    for secret in ("hunter2-but-longer", "userlogcheck@example.com", "not-an-email", "$argon2"):
        assert secret not in everything
