"""POST /users/: validation, the 201 answer, hashing and case-insensitive uniqueness."""

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import new_user
from userbase.database import SessionLocal
from userbase.models import User


def user_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def test_create_answers_201_with_location_and_private_view(client: Any) -> None:
    response = client.post("/users/", json=new_user(1, display_name="Ada L."))

    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/users/{body['id']}"
    assert set(body) == {"id", "username", "email", "display_name", "is_active", "created_at"}
    assert body["username"] == "user1"
    assert body["email"] == "user1@example.com"
    assert body["display_name"] == "Ada L."
    assert body["is_active"] is True
    assert body["created_at"].endswith("Z")


def test_create_without_trailing_slash_is_answered_directly(client: Any) -> None:
    response = client.post("/users", json=new_user(1), follow_redirects=False)
    assert response.status_code == 201


def test_password_is_stored_as_argon2id_and_never_echoed(client: Any) -> None:
    body = new_user(1, password="a very secret phrase")
    response = client.post("/users/", json=body)

    assert "a very secret phrase" not in response.text
    assert "password" not in response.text
    with SessionLocal() as session:
        stored = session.scalar(select(User.password_hash))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in stored
    assert "a very secret phrase" not in stored


@pytest.mark.parametrize(
    "clash",
    [
        {"username": "USER1", "email": "other@example.com"},
        {"username": "other", "email": "USER1@EXAMPLE.COM"},
        {"username": "User1", "email": "User1@Example.com"},
    ],
)
def test_duplicate_username_or_email_is_409_whatever_the_case(
    client: Any, clash: dict[str, str]
) -> None:
    assert client.post("/users/", json=new_user(1)).status_code == 201

    response = client.post("/users/", json=new_user(2, **clash))

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 409
    assert user_count() == 1


def test_409_names_the_field_that_clashed(client: Any) -> None:
    client.post("/users/", json=new_user(1))
    by_email = client.post("/users/", json=new_user(2, email="USER1@example.com"))
    by_name = client.post("/users/", json=new_user(1, email="fresh@example.com"))
    assert "email" in by_email.json()["detail"]
    assert "username" in by_name.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "a" * 33),
        ("username", "has space"),
        ("username", "émile"),
        ("username", "semi;colon"),
        ("username", 12345),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("email", "x" * 310 + "@example.com"),
        ("password", "short"),
        ("password", "p" * 129),
        ("display_name", "d" * 101),
        ("display_name", "bell\x07"),
        ("display_name", "nul\x00byte"),
    ],
)
def test_invalid_field_is_422_naming_it_and_creates_nothing(
    client: Any, field: str, value: object
) -> None:
    response = client.post("/users/", json=new_user(1, **{field: value}))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == [field]
    assert user_count() == 0


@pytest.mark.parametrize("field", ["username", "email", "password"])
def test_missing_required_field_is_422(client: Any, field: str) -> None:
    body = new_user(1)
    del body[field]
    response = client.post("/users/", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(
    "extra", [{"is_admin": True}, {"id": 99}, {"is_active": False}, {"password_hash": "x"}]
)
def test_unknown_fields_are_refused_not_ignored(client: Any, extra: dict[str, object]) -> None:
    response = client.post("/users/", json={**new_user(1), **extra})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == next(iter(extra))
    assert user_count() == 0


def test_validation_errors_never_echo_the_password(client: Any) -> None:
    response = client.post("/users/", json=new_user(1, password="tiny"))
    assert response.status_code == 422
    assert "tiny" not in response.text


def test_display_name_boundaries_are_accepted(client: Any) -> None:
    assert client.post("/users/", json=new_user(1, display_name="d" * 100)).status_code == 201
    assert client.post("/users/", json=new_user(2, display_name="Zoë 名前")).status_code == 201
    assert client.post("/users/", json=new_user(3, display_name=None)).status_code == 201


def test_boundary_usernames_and_passwords_are_accepted(client: Any) -> None:
    assert client.post("/users/", json=new_user("abc", username="a.b")).status_code == 201
    assert client.post("/users/", json=new_user(2, username="u" * 32)).status_code == 201
    assert client.post("/users/", json=new_user(3, password="p" * 8)).status_code == 201
    assert client.post("/users/", json=new_user(4, password="p" * 128)).status_code == 201
