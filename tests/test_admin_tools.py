"""Admin tools for running at scale: batch create, search filters, sessions, lockouts."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.accounts import PASSWORD, bearer, sign_in, sign_up, signed_in_user, token_for
from tests.conftest import new_user
from tests.test_foreign_hashes import FORMATS, OLD_PASSWORD
from userbase.database import SessionLocal, engine
from userbase.models import User


def user_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


# --- batch create -------------------------------------------------------------------------


def test_batch_creates_each_valid_user_and_reports_each_item(client: Any) -> None:
    _, admin = signed_in_user(client, "admin", admin=True)
    items = [
        new_user("b1"),
        new_user("b2", password=None, password_hash=FORMATS["bcrypt-2b"](OLD_PASSWORD)),
        new_user("b1"),  # a duplicate inside the batch
        new_user("admin"),  # taken in the database already
        {"username": "x", "email": "bad", "password": "tiny"},
        new_user("b3", password=None, password_hash="md5$unknown$format"),
        new_user("b4", password=None),  # neither password nor hash
        new_user("b5", is_admin=True),  # not a field anyone may send
    ]

    response = client.post("/users/batch", json=items, headers=bearer(admin))

    assert response.status_code == 207
    results = response.json()
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 201),
        (1, 201),
        (2, 409),
        (3, 409),
        (4, 422),
        (5, 422),
        (6, 422),
        (7, 422),
    ]
    assert all(isinstance(r["id"], int) for r in results[:2])
    assert {e["field"] for e in results[4]["error"]["errors"]} == {"username", "email", "password"}
    assert "tiny" not in response.text
    assert user_count() == 3
    assert sign_in(client, "userb1").status_code == 200
    assert sign_in(client, "userb2", OLD_PASSWORD).status_code == 200


def test_batch_is_for_admins_and_at_most_a_thousand(client: Any) -> None:
    _, plain = signed_in_user(client, 1)
    _, admin = signed_in_user(client, "admin", admin=True)
    assert client.post("/users/batch", json=[new_user(9)], headers=bearer(plain)).status_code == 403
    assert client.post("/users/batch", json=[new_user(9)]).status_code == 401
    too_many = [new_user(n, password=None, password_hash="x") for n in range(1001)]
    assert client.post("/users/batch", json=too_many, headers=bearer(admin)).status_code == 422
    assert client.post("/users/batch", json=[], headers=bearer(admin)).status_code == 422


# --- admin search -------------------------------------------------------------------------


@pytest.fixture
def population(client: Any) -> str:
    """An admin token, and users with varied flags and creation times."""
    _, admin = signed_in_user(client, "admin", admin=True)
    for n in range(6):
        sign_up(client, f"p{n}", email=f"p{n}@{'corp' if n % 2 else 'home'}.example")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            update(User).where(User.username.in_(["userp0", "userp1"])).values(created_at=old)
        )
        connection.execute(update(User).where(User.username == "userp2").values(is_active=False))
    return admin


def names(client: Any, admin: str, **params: Any) -> list[str]:
    response = client.get("/users/", params=params, headers=bearer(admin))
    assert response.status_code == 200, response.text
    return [u["username"] for u in response.json()]


def test_admins_filter_by_email_exactly_in_any_case(client: Any, population: str) -> None:
    assert names(client, population, email="P3@CORP.example") == ["userp3"]


def test_admins_filter_by_email_prefix(client: Any, population: str) -> None:
    assert names(client, population, email_prefix="p1@") == ["userp1"]
    assert names(client, population, email_prefix="P") == [f"userp{n}" for n in range(6)]


def test_admins_filter_by_flags_and_dates_combined(client: Any, population: str) -> None:
    assert names(client, population, is_active=False) == ["userp2"]
    assert names(client, population, is_admin=True) == ["useradmin"]
    before = "2021-01-01T00:00:00Z"
    assert names(client, population, created_before=before) == ["userp0", "userp1"]
    assert names(client, population, created_after=before, email_prefix="p", is_active=True) == [
        "userp3",
        "userp4",
        "userp5",
    ]


def test_admin_results_are_accounts_and_keyset_paged(client: Any, population: str) -> None:
    first = client.get("/users/?email_prefix=p&limit=4", headers=bearer(population))
    assert "email" in first.json()[0]
    link = first.headers["link"]
    assert "email_prefix=p" in link
    rest = client.get(link.split(";")[0].strip("<>"), headers=bearer(population))
    assert len(first.json()) + len(rest.json()) == 6
    assert "link" not in rest.headers


def test_non_admins_get_403_for_admin_filters(client: Any, population: str) -> None:
    _, plain = signed_in_user(client, 1)
    assert client.get("/users/?is_admin=true", headers=bearer(plain)).status_code == 403
    assert client.get("/users/?email=p1@corp.example").status_code == 403


def test_naive_dates_are_422(client: Any, population: str) -> None:
    response = client.get("/users/?created_after=2021-01-01T00:00:00", headers=bearer(population))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["loc"] == ["query", "created_after"]
    assert error["field"] == "created_after"


def test_admin_filters_are_documented_as_query_parameters(client: Any) -> None:
    parameters = client.get("/openapi.json").json()["paths"]["/users/"]["get"]["parameters"]
    by_name = {parameter["name"]: parameter for parameter in parameters}
    for name in ("email", "email_prefix", "is_active", "is_admin", "created_after"):
        assert by_name[name]["in"] == "query"
        assert by_name[name]["required"] is False
    assert by_name["created_before"]["schema"]["anyOf"][0]["format"] == "date-time"
    assert by_name["email"]["schema"]["anyOf"][0]["maxLength"] == 320


# --- sessions -----------------------------------------------------------------------------


def test_users_see_their_live_sessions_but_never_the_tokens(client: Any) -> None:
    sign_up(client, 1)
    first = token_for(client, "user1")
    current = token_for(client, "user1")

    response = client.get("/users/me/sessions", headers=bearer(current))

    assert response.status_code == 200
    listed = response.json()
    assert len(listed) == 2
    assert [s["current"] for s in listed] == [True, False]
    assert set(listed[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "client_address",
        "user_agent",
        "kind",
        "client",
        "current",
    }
    assert listed[0]["client"] is None  # opaque tokens of /auth/token
    assert {s["kind"] for s in listed} == {"bearer_token"}
    assert first not in response.text
    assert current not in response.text


def test_revoking_one_session_or_all_others(client: Any) -> None:
    sign_up(client, 1)
    tokens = [token_for(client, "user1") for _ in range(3)]
    me = bearer(tokens[2])
    sessions = client.get("/users/me/sessions", headers=me).json()
    oldest = sessions[-1]["id"]

    assert client.delete(f"/users/me/sessions/{oldest}", headers=me).status_code == 204
    assert client.get("/users/me", headers=bearer(tokens[0])).status_code == 401
    assert client.get("/users/me", headers=bearer(tokens[1])).status_code == 200

    assert client.delete("/users/me/sessions", headers=me).status_code == 204
    assert client.get("/users/me", headers=bearer(tokens[1])).status_code == 401
    assert client.get("/users/me", headers=me).status_code == 200


def test_a_session_of_someone_else_is_404_or_403(client: Any) -> None:
    other, other_token = signed_in_user(client, 2)
    _, mine = signed_in_user(client, 1)
    theirs = client.get("/users/me/sessions", headers=bearer(other_token)).json()[0]["id"]

    assert client.delete(f"/users/me/sessions/{theirs}", headers=bearer(mine)).status_code == 404
    assert client.get(f"/users/{other['id']}/sessions", headers=bearer(mine)).status_code == 403
    assert client.get("/users/me", headers=bearer(other_token)).status_code == 200


def test_admins_list_and_end_anyones_sessions(client: Any) -> None:
    other, other_token = signed_in_user(client, 2)
    _, admin = signed_in_user(client, "admin", admin=True)
    path = f"/users/{other['id']}/sessions"

    listed = client.get(path, headers=bearer(admin)).json()
    assert [s["current"] for s in listed] == [False]
    assert client.delete(path, headers=bearer(admin)).status_code == 204
    assert client.get("/users/me", headers=bearer(other_token)).status_code == 401


# --- lockouts -----------------------------------------------------------------------------


def test_admins_see_a_lockout_and_lift_it(client: Any) -> None:
    user = sign_up(client, 1)
    _, admin = signed_in_user(client, "admin", admin=True)
    for _ in range(10):
        sign_in(client, "user1", "wrong password!")
    assert sign_in(client, "user1").status_code == 429

    lockout = client.get(f"/users/{user['id']}/lockout", headers=bearer(admin)).json()
    assert lockout["locked"] is True
    assert 0 < lockout["retry_after"] <= 900

    assert client.post(f"/users/{user['id']}/unlock", headers=bearer(admin)).status_code == 204
    assert client.get(f"/users/{user['id']}/lockout", headers=bearer(admin)).json() == {
        "locked": False,
        "retry_after": None,
    }
    assert sign_in(client, "user1", PASSWORD).status_code == 200
    events = client.get(
        "/admin/events", params={"kind": "account_unlocked"}, headers=bearer(admin)
    ).json()
    assert [e["user_id"] for e in events] == [user["id"]]


def test_lockouts_are_for_admins(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    assert client.get(f"/users/{user['id']}/lockout", headers=bearer(token)).status_code == 403
    assert client.post(f"/users/{user['id']}/unlock", headers=bearer(token)).status_code == 403


def test_unknown_usernames_count_against_the_client_address(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from userbase.config import get_settings

    monkeypatch.setattr(get_settings(), "login_address_limit", 5)
    sign_up(client, 1)
    for n in range(5):
        sign_in(client, f"nobody{n}", "whatever pass")
    assert sign_in(client, "user1").status_code == 429
    _ = timedelta  # the window itself is covered in tests/test_throttle.py


def test_filters_with_control_characters_are_422(client: Any, population: str) -> None:
    for param in ("email", "email_prefix"):
        response = client.get("/users/", params={param: "p\x00"}, headers=bearer(population))
        assert response.status_code == 422


def test_an_events_page_after_the_largest_id_is_empty(client: Any, population: str) -> None:
    response = client.get(f"/admin/events?after={2**40}", headers=bearer(population))
    assert response.status_code == 200
    assert response.json() == []
