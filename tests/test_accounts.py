"""Who may read, change and delete which account; ETags and If-Match."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import select

from tests.accounts import PASSWORD, bearer, sign_in, sign_up, signed_in_user, token_for
from tests.conftest import LiveServer
from userbase.database import SessionLocal
from userbase.models import User


def stored(user_id: int) -> User | None:
    with SessionLocal() as session:
        return session.get(User, user_id)


def test_owner_changes_display_name_and_email(client: Any) -> None:
    user, token = signed_in_user(client, 1)

    response = client.patch(
        f"/users/{user['id']}",
        json={"display_name": "Ada", "email": "ada@example.org", "current_password": PASSWORD},
        headers=bearer(token),
    )

    assert response.status_code == 200
    body = response.json()
    assert body["display_name"] == "Ada"
    assert body["email"] == "ada@example.org"
    assert body["is_admin"] is False
    assert response.headers["etag"] == '"2"'


def test_display_name_null_clears_it_but_email_null_is_422(client: Any) -> None:
    user, token = signed_in_user(client, 1, admin=False)
    path = f"/users/{user['id']}"
    client.patch(path, json={"display_name": "Ada"}, headers=bearer(token))

    assert (
        client.patch(path, json={"display_name": None}, headers=bearer(token)).json()[
            "display_name"
        ]
        is None
    )
    rejected = client.patch(path, json={"email": None}, headers=bearer(token))
    assert rejected.status_code == 422
    assert rejected.json()["errors"][0]["field"] == "email"


def test_email_change_that_clashes_is_409_whatever_the_case(client: Any) -> None:
    sign_up(client, 2)
    user, token = signed_in_user(client, 1)

    response = client.patch(
        f"/users/{user['id']}",
        json={"email": "USER2@example.com", "current_password": PASSWORD},
        headers=bearer(token),
    )

    assert response.status_code == 409
    unchanged = stored(user["id"])
    assert unchanged is not None
    assert unchanged.email == "user1@example.com"


@pytest.mark.parametrize("field", ["is_admin", "is_active"])
def test_a_non_admin_sending_admin_fields_gets_403_and_nothing_changes(
    client: Any, field: str
) -> None:
    user, token = signed_in_user(client, 1)

    response = client.patch(
        f"/users/{user['id']}",
        json={field: field == "is_admin", "display_name": "sneaky"},
        headers=bearer(token),
    )

    assert response.status_code == 403
    unchanged = stored(user["id"])
    assert unchanged is not None
    assert (unchanged.is_admin, unchanged.is_active, unchanged.display_name) == (False, True, None)


@pytest.mark.parametrize("field", ["username", "password", "password_hash", "id", "version"])
def test_fields_no_role_may_send_are_422(client: Any, field: str) -> None:
    user, token = signed_in_user(client, 1, admin=True)
    response = client.patch(f"/users/{user['id']}", json={field: "x"}, headers=bearer(token))
    assert response.status_code == 422


def test_another_users_account_is_403_and_anonymous_is_401(client: Any) -> None:
    other = sign_up(client, 2)
    _, token = signed_in_user(client, 1)
    path = f"/users/{other['id']}"

    assert client.patch(path, json={"display_name": "x"}, headers=bearer(token)).status_code == 403
    assert client.delete(path, headers=bearer(token)).status_code == 403
    assert client.patch(path, json={"display_name": "x"}).status_code == 401
    assert client.delete(path).status_code == 401
    assert stored(other["id"]) is not None


def test_admin_changes_anyone_including_roles(client: Any) -> None:
    other = sign_up(client, 2)
    _, admin_token = signed_in_user(client, 1, admin=True)

    response = client.patch(
        f"/users/{other['id']}",
        json={"is_admin": True, "display_name": "Promoted"},
        headers=bearer(admin_token),
    )

    assert response.status_code == 200
    assert response.json()["is_admin"] is True


def test_deactivation_revokes_tokens_and_blocks_sign_in(client: Any) -> None:
    other, other_token = signed_in_user(client, 2)
    _, admin_token = signed_in_user(client, 1, admin=True)

    response = client.patch(
        f"/users/{other['id']}", json={"is_active": False}, headers=bearer(admin_token)
    )

    assert response.status_code == 200
    assert client.get("/users/me", headers=bearer(other_token)).status_code == 401
    assert sign_in(client, "user2").status_code == 401


def test_admins_see_the_account_view_others_the_public_one(client: Any) -> None:
    other = sign_up(client, 2)
    _, admin_token = signed_in_user(client, 1, admin=True)
    _, plain_token = signed_in_user(client, 3)
    path = f"/users/{other['id']}"

    assert "email" in client.get(path, headers=bearer(admin_token)).json()
    assert "email" not in client.get(path, headers=bearer(plain_token)).json()
    assert "email" not in client.get(path).json()
    assert client.get(path, headers=bearer("A" * 43)).status_code == 401


def test_get_and_patch_carry_an_etag_that_follows_the_version(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    path = f"/users/{user['id']}"
    etag = client.get(path).headers["etag"]

    changed = client.patch(
        path, json={"display_name": "v2"}, headers={**bearer(token), "If-Match": etag}
    )

    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert client.get(path).headers["etag"] == changed.headers["etag"]


@pytest.mark.parametrize("if_match", ['"1"', 'W/"2"', '"7", "9"'])
def test_patch_with_a_stale_or_weak_if_match_is_412_and_changes_nothing(
    client: Any, if_match: str
) -> None:
    user, token = signed_in_user(client, 1)
    path = f"/users/{user['id']}"
    client.patch(path, json={"display_name": "v2"}, headers=bearer(token))  # now at version 2

    response = client.patch(
        path, json={"display_name": "late"}, headers={**bearer(token), "If-Match": if_match}
    )

    assert response.status_code == 412
    assert client.get(path).json()["display_name"] == "v2"


@pytest.mark.parametrize("if_match", ["*", '"1", "2"'])
def test_if_match_star_or_a_list_holding_the_current_etag_applies(
    client: Any, if_match: str
) -> None:
    user, token = signed_in_user(client, 1)
    response = client.patch(
        f"/users/{user['id']}",
        json={"display_name": "ok"},
        headers={**bearer(token), "If-Match": if_match},
    )
    assert response.status_code == 200


@pytest.mark.live
def test_eight_parallel_patches_with_one_etag_give_one_200_and_seven_412(
    live_server: LiveServer,
) -> None:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        user = sign_up(client, "etag")
        token = token_for(client, user["username"])
        path = f"/users/{user['id']}"
        etag = client.get(path).headers["etag"]

        def patch(n: int) -> int:
            headers = {**bearer(token), "If-Match": etag}
            return client.patch(
                path, json={"display_name": f"writer {n}"}, headers=headers
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(patch, range(8)))

        assert statuses == Counter({200: 1, 412: 7})
        assert client.get(path).headers["etag"] == '"2"'


def test_delete_self_is_204_then_gone_and_cannot_sign_in(client: Any) -> None:
    user, token = signed_in_user(client, 1)

    assert client.delete(f"/users/{user['id']}", headers=bearer(token)).status_code == 204

    assert client.get(f"/users/{user['id']}").status_code == 404
    assert sign_in(client, "user1").status_code == 401
    assert client.get("/users/me", headers=bearer(token)).status_code == 401


def test_admin_deletes_another_user(client: Any) -> None:
    other = sign_up(client, 2)
    _, admin_token = signed_in_user(client, 1, admin=True)
    assert client.delete(f"/users/{other['id']}", headers=bearer(admin_token)).status_code == 204
    assert stored(other["id"]) is None


def test_the_last_active_admin_cannot_be_deleted_demoted_or_deactivated(client: Any) -> None:
    admin, token = signed_in_user(client, 1, admin=True)
    path = f"/users/{admin['id']}"

    assert client.delete(path, headers=bearer(token)).status_code == 409
    assert client.patch(path, json={"is_admin": False}, headers=bearer(token)).status_code == 409
    assert client.patch(path, json={"is_active": False}, headers=bearer(token)).status_code == 409
    kept = stored(admin["id"])
    assert kept is not None
    assert (kept.is_admin, kept.is_active) == (True, True)


def test_with_two_admins_one_may_demote_the_other(client: Any) -> None:
    second, _ = signed_in_user(client, 2, admin=True)
    _, token = signed_in_user(client, 1, admin=True)

    response = client.patch(
        f"/users/{second['id']}", json={"is_admin": False}, headers=bearer(token)
    )

    assert response.status_code == 200
    assert response.json()["is_admin"] is False


def test_unknown_user_is_404_for_admins(client: Any) -> None:
    _, token = signed_in_user(client, 1, admin=True)
    assert client.patch("/users/999999", json={}, headers=bearer(token)).status_code == 404
    assert client.delete("/users/999999", headers=bearer(token)).status_code == 404


def test_me_carries_is_admin(client: Any) -> None:
    _, token = signed_in_user(client, 1, admin=True)
    assert client.get("/users/me", headers=bearer(token)).json()["is_admin"] is True


def test_sign_in_still_works_after_profile_changes(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    client.patch(
        f"/users/{user['id']}",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=bearer(token),
    )
    assert sign_in(client, "new@example.com", PASSWORD).status_code == 200
    with SessionLocal() as session:
        assert session.scalar(select(User.email)) == "new@example.com"


def test_every_update_is_a_compare_and_set_on_the_version(client: Any) -> None:
    from sqlalchemy import event

    from userbase.database import engine

    user, token = signed_in_user(client, 1)
    updates: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE USERS"):
            updates.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        client.patch(f"/users/{user['id']}", json={"display_name": "cas"}, headers=bearer(token))
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert len(updates) == 1
    where = updates[0].split(" WHERE ", 1)[1]
    assert "users.id =" in where
    assert "users.version =" in where
