"""Signing in, bearer tokens, signing out and changing one's password."""

import hashlib
import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, update

from tests.accounts import PASSWORD, bearer, sign_in, sign_up, signed_in_user, token_for
from userbase.database import SessionLocal, engine
from userbase.models import Token, User, utcnow
from userbase.security import _password_hash


def test_sign_in_with_username_answers_a_bearer_token(client: Any) -> None:
    sign_up(client, 1)

    response = sign_in(client, "user1")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 24 * 3600
    assert len(body["access_token"]) == 43
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("login", ["USER1", "user1@example.com", "User1@EXAMPLE.com", " user1 "])
def test_sign_in_accepts_username_or_email_in_any_case(client: Any, login: str) -> None:
    sign_up(client, 1)
    assert sign_in(client, login).status_code == 200


def test_wrong_password_unknown_user_and_inactive_account_get_one_identical_401(
    client: Any,
) -> None:
    sign_up(client, 1)
    inactive = sign_up(client, 2)
    with engine.begin() as connection:
        connection.execute(update(User).where(User.id == inactive["id"]).values(is_active=False))

    answers = [
        sign_in(client, "user1", "wrong password!"),
        sign_in(client, "nobody", PASSWORD),
        sign_in(client, "user2", PASSWORD),
    ]

    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len({a.content for a in answers}) == 1
    assert all(a.headers["www-authenticate"] == "Bearer" for a in answers)
    assert answers[0].headers["content-type"] == "application/problem+json"


def test_unknown_user_still_costs_a_password_verification(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifications: list[str] = []
    hasher = _password_hash()
    real_verify = hasher.verify_and_update

    def counting_verify(password: str, password_hash: str) -> tuple[bool, str | None]:
        verifications.append(password_hash[:10])
        return real_verify(password, password_hash)

    monkeypatch.setattr(hasher, "verify_and_update", counting_verify)
    assert sign_in(client, "nobody", PASSWORD).status_code == 401
    assert verifications == ["$argon2id$"]


def test_only_the_sha256_of_a_token_is_stored(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    with SessionLocal() as session:
        stored = session.scalars(select(Token.token_hash)).all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_me_answers_the_account_view(client: Any) -> None:
    user, token = signed_in_user(client, 1)

    response = client.get("/users/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {
        "id": user["id"],
        "username": "user1",
        "email": "user1@example.com",
        "display_name": None,
        "is_active": True,
        "is_admin": False,
        "email_verified": False,
        "created_at": user["created_at"],
    }


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-token",
        "Bearer " + "A" * 43,
        "Basic dXNlcjpwYXNz",
        ("Bearer " + "a" * 42 + "\u00e9").encode("latin-1"),
    ],
)
def test_missing_unknown_or_malformed_token_is_401_with_bearer_challenge(
    client: Any, authorization: str | bytes | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


def test_expired_token_is_401(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    with engine.begin() as connection:
        connection.execute(update(Token).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/users/me", headers=bearer(token)).status_code == 401


def test_using_a_token_records_when_it_was_last_used(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    client.get("/users/me", headers=bearer(token))
    with SessionLocal() as session:
        assert session.scalar(select(Token.last_used_at)) is not None


def test_a_read_never_writes_its_token_use_is_stamped_in_a_unit_of_work_of_its_own(
    client: Any,
) -> None:
    _, token = signed_in_user(client, 1)
    uses: list[list[str]] = []  # the statements of each checkout of a pooled connection

    def on_checkout(*_: Any) -> None:
        uses.append([])

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if uses:
            uses[-1].append(" ".join(statement.split()).upper())

    sqlalchemy_event.listen(engine, "checkout", on_checkout)
    sqlalchemy_event.listen(engine, "before_cursor_execute", on_statement)
    try:
        assert client.get("/users/me", headers=bearer(token)).status_code == 200
        assert client.get("/users/me", headers=bearer(token)).status_code == 200
    finally:
        sqlalchemy_event.remove(engine, "checkout", on_checkout)
        sqlalchemy_event.remove(engine, "before_cursor_execute", on_statement)

    reads = [use for use in uses if any("FROM TOKENS" in s and "SELECT" in s for s in use)]
    stamps = [use for use in uses if any(s.startswith("UPDATE TOKENS") for s in use)]
    assert len(reads) == 2
    assert all(not any(s.startswith(("UPDATE", "INSERT", "DELETE")) for s in use) for use in reads)
    assert len(stamps) == 1  # the second read, within the minute, stamps nothing
    with SessionLocal() as session:
        assert session.scalar(select(Token.last_used_at)) is not None


def test_a_write_stamps_its_token_use_in_its_own_unit_of_work(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    response = client.patch(
        f"/users/{user['id']}", json={"display_name": "Ada"}, headers=bearer(token)
    )
    assert response.status_code == 200
    with SessionLocal() as session:
        assert session.scalar(select(Token.last_used_at)) is not None


def test_logout_revokes_the_presented_token_only(client: Any) -> None:
    sign_up(client, 1)
    first, second = token_for(client, "user1"), token_for(client, "user1")

    assert client.post("/auth/logout", headers=bearer(first)).status_code == 204

    assert client.get("/users/me", headers=bearer(first)).status_code == 401
    assert client.get("/users/me", headers=bearer(second)).status_code == 200


def test_logout_without_a_token_is_401(client: Any) -> None:
    assert client.post("/auth/logout").status_code == 401


def test_password_change_revokes_every_token_and_swaps_passwords(client: Any) -> None:
    sign_up(client, 1)
    first, second = token_for(client, "user1"), token_for(client, "user1")

    response = client.put(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=bearer(first),
    )

    assert response.status_code == 204
    assert client.get("/users/me", headers=bearer(first)).status_code == 401
    assert client.get("/users/me", headers=bearer(second)).status_code == 401
    assert sign_in(client, "user1", PASSWORD).status_code == 401
    assert sign_in(client, "user1", "a brand new secret").status_code == 200


def test_password_change_with_wrong_current_password_is_403_and_changes_nothing(
    client: Any,
) -> None:
    _, token = signed_in_user(client, 1)

    response = client.put(
        "/users/me/password",
        json={"current_password": "not my password", "new_password": "a brand new secret"},
        headers=bearer(token),
    )

    assert response.status_code == 403
    assert client.get("/users/me", headers=bearer(token)).status_code == 200
    assert sign_in(client, "user1", PASSWORD).status_code == 200


def test_new_password_follows_the_creation_rules(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    response = client.put(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "new_password"


def test_a_hash_with_old_parameters_is_upgraded_on_sign_in(client: Any) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    user = sign_up(client, 1)
    weak = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with engine.begin() as connection:
        connection.execute(update(User).where(User.id == user["id"]).values(password_hash=weak))

    assert sign_in(client, "user1").status_code == 200

    with SessionLocal() as session:
        upgraded = session.scalar(select(User.password_hash))
    assert upgraded is not None
    assert "m=19456,t=2,p=1" in upgraded
    assert sign_in(client, "user1").status_code == 200


def test_no_response_or_log_line_carries_a_password_or_token_hash(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = [
        client.post(
            "/users/",
            json={"username": "leak1", "email": "l@example.com", "password": "leaky password 1"},
        ).text
    ]
    texts.append(sign_in(client, "leak1", "leaky password 1").text)
    token = texts[-1].split('"access_token":"')[1].split('"')[0]
    texts.append(sign_in(client, "leak1", "wrong password 22").text)
    texts.append(client.get("/users/me", headers=bearer(token)).text)
    texts.append(
        client.post(
            "/users/", json={"username": "x", "email": "bad", "password": "leaky password 1"}
        ).text
    )
    with SessionLocal() as session:
        stored = session.scalars(select(User.password_hash)).all()
    secrets_ = [
        "leaky password 1",
        "wrong password 22",
        hashlib.sha256(token.encode()).hexdigest(),
        *stored,
    ]
    everything = "\n".join(texts) + "\n" + caplog.text
    for secret in secrets_:
        assert secret not in everything


@pytest.mark.parametrize("login", ["nul\x00byte", "bell\x07", "tab\tname"])
def test_a_login_with_control_characters_is_an_ordinary_401(client: Any, login: str) -> None:
    response = client.post("/auth/token", data={"username": login, "password": "whatever pass"})
    assert response.status_code == 401
