"""GET /users/{id}: the public view, 404 and 422."""

from typing import Any

import pytest

from tests.conftest import new_user


def test_read_returns_the_public_view_without_email(client: Any) -> None:
    created = client.post("/users/", json=new_user(1, display_name="One")).json()

    response = client.get(f"/users/{created['id']}")

    assert response.status_code == 200
    assert response.json() == {
        "id": created["id"],
        "username": "user1",
        "display_name": "One",
        "created_at": created["created_at"],
    }


@pytest.mark.parametrize("user_id", ["999999", "0", "-1", "2147483648", "99999999999999999999999"])
def test_unknown_id_is_404_problem(client: Any, user_id: str) -> None:
    response = client.get(f"/users/{user_id}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.mark.parametrize("user_id", ["abc", "1.5", "1e3", "%00"])
def test_non_integer_id_is_422(client: Any, user_id: str) -> None:
    response = client.get(f"/users/{user_id}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "user_id"
