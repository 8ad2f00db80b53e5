"""Every error is RFC 9457 problem+json, and a failed request leaves nothing behind."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from tests.conftest import new_user
from userbase import users
from userbase.app import create_app
from userbase.database import SessionDep, SessionLocal
from userbase.models import User

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    return body


@pytest.fixture
def failing_app() -> FastAPI:
    """The real app plus routes that fail after writing, to watch get_db roll back."""
    app = create_app()

    @app.post("/test/write-then-fail")
    def write_then_fail(db: SessionDep) -> None:
        users.create_user(
            db, username="ghost", email="ghost@example.com", password_hash="x", display_name=None
        )
        raise RuntimeError("boom: SELECT secret FROM vault")

    @app.get("/test/bad-sql")
    def bad_sql(db: SessionDep) -> None:
        db.execute(text("SELECT no_such_column FROM users"))

    return app


def test_unknown_route_is_404_problem(client: Any) -> None:
    body = assert_problem(client.get("/no/such/thing"), 404)
    assert body["title"] == "Not Found"


def test_wrong_method_is_405_problem_listing_every_allowed_method(client: Any) -> None:
    response = client.delete("/users/")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


def test_malformed_json_is_422_problem(client: Any) -> None:
    response = client.post(
        "/users/", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


def test_wrong_content_type_is_415_problem(client: Any) -> None:
    response = client.post("/users/", content=b"username=a", headers={"content-type": "text/plain"})
    assert_problem(response, 415)


def test_body_over_one_mebibyte_is_413_before_parsing(client: Any) -> None:
    huge = b'{"username": "' + b"a" * (1024 * 1024) + b'"}'
    response = client.post("/users/", content=huge, headers={"content-type": "application/json"})
    assert_problem(response, 413)


def test_streamed_body_over_the_limit_is_413(client: Any) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    response = client.post(
        "/users/", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


def test_500_leaks_no_traceback_or_sql(failing_app: FastAPI) -> None:
    with TestClient(failing_app, raise_server_exceptions=False) as client:
        for path, method in (("/test/write-then-fail", "POST"), ("/test/bad-sql", "GET")):
            body = assert_problem(client.request(method, path), 500)
            assert body["detail"] == "An unexpected error occurred."
            text_ = str(body).lower()
            assert "traceback" not in text_
            assert "select" not in text_
            assert "secret" not in text_


def test_a_failed_request_leaves_no_row_behind(failing_app: FastAPI) -> None:
    with TestClient(failing_app, raise_server_exceptions=False) as client:
        assert client.post("/test/write-then-fail").status_code == 500

    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_problem_documents_are_in_the_openapi_schema(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    create = spec["paths"]["/users/"]["post"]["responses"]
    assert {"201", "409", "413", "422"} <= set(create)
    assert "application/problem+json" in create["409"]["content"]


def test_409_is_problem_json(client: Any) -> None:
    client.post("/users/", json=new_user(1))
    assert_problem(client.post("/users/", json=new_user(1)), 409)
