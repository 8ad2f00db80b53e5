"""GET /users/: ordering, keyset pages, the Link header and the username prefix filter."""

import re
from typing import Any

import pytest
from sqlalchemy import insert

from tests.conftest import new_user
from userbase.database import engine
from userbase.models import User, utcnow


def insert_users(names: list[str]) -> None:
    """Fast set-up: rows straight into the table (creation itself is tested elsewhere)."""
    now = utcnow()
    rows = [
        {
            "username": name,
            "email": f"{name}@example.com",
            "password_hash": "x",
            "display_name": None,
            "is_active": True,
            "is_admin": False,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for name in names
    ]
    with engine.begin() as connection:
        connection.execute(insert(User), rows)


def next_link(response: Any) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


@pytest.mark.parametrize("path", ["/users/", "/users"])
def test_new_database_lists_an_empty_array(client: Any, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["content-type"] == "application/json"
    assert "link" not in response.headers


def test_lists_public_views_ordered_by_id(client: Any) -> None:
    for n in (3, 1, 2):
        client.post("/users/", json=new_user(n))

    users = client.get("/users/").json()

    assert [u["username"] for u in users] == ["user3", "user1", "user2"]
    assert [u["id"] for u in users] == sorted(u["id"] for u in users)
    assert all(set(u) == {"id", "username", "display_name", "created_at"} for u in users)


def test_following_next_links_visits_every_user_exactly_once(client: Any) -> None:
    insert_users([f"member{n:03}" for n in range(23)])

    seen: list[int] = []
    url: str | None = "/users/?limit=5"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [u["id"] for u in response.json()]
        url = next_link(response)
        pages += 1

    assert pages == 5
    assert len(seen) == 23
    assert seen == sorted(set(seen))


def test_last_full_page_has_no_next_link(client: Any) -> None:
    insert_users([f"member{n}" for n in range(4)])
    first = client.get("/users/?limit=2")
    second = client.get(next_link(first))  # type: ignore[arg-type]
    assert len(second.json()) == 2
    assert next_link(second) is None


def test_next_link_is_a_full_url_keeping_q_and_limit(client: Any) -> None:
    insert_users(["alpha1", "alpha2", "alpha3", "beta1"])

    response = client.get("/users/?q=alpha&limit=2")

    link = next_link(response)
    assert link is not None
    assert link.startswith("http://testserver/users/?")
    assert "q=alpha" in link
    assert "limit=2" in link
    last_id = response.json()[-1]["id"]
    assert f"after={last_id}" in link
    assert [u["username"] for u in client.get(link).json()] == ["alpha3"]


def test_after_returns_only_greater_ids(client: Any) -> None:
    insert_users(["a1x", "a2x", "a3x"])
    ids = [u["id"] for u in client.get("/users/").json()]
    assert [u["id"] for u in client.get(f"/users/?after={ids[0]}").json()] == ids[1:]
    assert client.get(f"/users/?after={ids[-1]}").json() == []


def test_q_is_a_case_insensitive_username_prefix(client: Any) -> None:
    insert_users(["Alice", "alina", "ALBERT", "bob", "xal", "al_x", "al-y", "al.z"])

    def names(q: str) -> list[str]:
        return [u["username"] for u in client.get("/users/", params={"q": q}).json()]

    assert names("al") == ["Alice", "alina", "ALBERT", "al_x", "al-y", "al.z"]
    assert names("ALI") == ["Alice", "alina"]
    assert names("al_") == ["al_x"]
    assert names("al.") == ["al.z"]
    assert names("zzz") == []


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten"])
def test_limit_outside_1_to_1000_is_422(client: Any, limit: str) -> None:
    response = client.get(f"/users/?limit={limit}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


def test_limit_bounds_are_accepted(client: Any) -> None:
    insert_users(["one1", "two2"])
    assert len(client.get("/users/?limit=1").json()) == 1
    assert len(client.get("/users/?limit=1000").json()) == 2


def test_default_page_is_100(client: Any) -> None:
    insert_users([f"member{n}" for n in range(105)])
    response = client.get("/users/")
    assert len(response.json()) == 100
    assert next_link(response) is not None


@pytest.mark.parametrize("q", ["", "a" * 33, "semi;colon", "%", "x'--"])
def test_q_outside_the_username_alphabet_is_422(client: Any, q: str) -> None:
    response = client.get("/users/", params={"q": q})
    assert response.status_code == 422


@pytest.mark.parametrize("after", ["-1", "x", "9223372036854775808"])
def test_bad_after_is_422(client: Any, after: str) -> None:
    assert client.get(f"/users/?after={after}").status_code == 422


@pytest.mark.parametrize("after", [2**31 - 1, 2**31, 448312663115, 2**63 - 1])
def test_after_beyond_any_id_is_an_empty_page(client: Any, after: int) -> None:
    # Found by schemathesis: PostgreSQL refused a 64-bit `after` for the 32-bit id with a 500.
    insert_users(["last1"])
    response = client.get(f"/users/?after={after}")
    assert response.status_code == 200
    assert response.json() == []
