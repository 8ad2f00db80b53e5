"""users.py: the queries and rules of the users table, called directly with a session."""

from typing import Any

import pytest

from tests.accounts import bearer, sign_up, signed_in_user
from userbase import users
from userbase.database import SessionLocal


def found(client: Any, token: str, **params: str) -> list[str]:
    response = client.get("/users/", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return [user["email"] for user in response.json()]


@pytest.mark.parametrize("query", ["Émile@example.com", "émile@example.com", "ÉMILE@EXAMPLE.COM"])
def test_exact_and_prefix_email_filters_fold_letters_the_same_way(client: Any, query: str) -> None:
    # One case folding everywhere (the database's lower()): whatever this engine folds,
    # the exact filter and the prefix filter agree on it.
    sign_up(client, "emile", email="Émile@example.com")
    _, admin = signed_in_user(client, "boss", admin=True)

    exact = found(client, admin, email=query)
    by_prefix = found(client, admin, email_prefix=query[:3])

    assert exact == by_prefix


def test_ensure_version_accepts_any_when_none_and_refuses_a_stale_one(client: Any) -> None:
    user = sign_up(client, 1)
    with SessionLocal() as session:
        stored = users.get_user(session, user["id"])
        users.ensure_version(stored, None)
        users.ensure_version(stored, {stored.version})
        with pytest.raises(users.StaleVersion):
            users.ensure_version(stored, {stored.version + 1})
        with pytest.raises(users.StaleVersion):
            users.ensure_version(stored, set())


def test_ids_out_of_range_are_simply_not_found() -> None:
    with SessionLocal() as session, pytest.raises(users.UserNotFound):
        users.get_user(session, 2**31)
