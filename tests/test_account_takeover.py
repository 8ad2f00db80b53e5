"""What a stolen bearer token or a guessed username must not be enough for (issue 16: items 5,
6 and 8): taking the account's address, guessing its password, locking its owner out."""

import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from tests.accounts import PASSWORD, bearer, sign_in, signed_in_user, token_for
from tests.smtp import SMTPServer
from userbase import mail_delivery
from userbase.config import get_settings
from userbase.database import SessionLocal
from userbase.models import SecurityEvent, User


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    monkeypatch.setattr(get_settings(), "smtp_url", server.url)
    yield server
    server.stop()


def deliver() -> None:
    mail_delivery.deliver_due(SessionLocal)


def link_in(message: EmailMessage, page: str) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(rf"/{page}#token=([A-Za-z0-9_-]+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def stored_email(user_id: int) -> str:
    with SessionLocal() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.email


def change_email(client: Any, user_id: int, token: str, **body: Any) -> Any:
    return client.patch(f"/users/{user_id}", json=body, headers=bearer(token))


# 16.5: the address


def test_a_stolen_token_alone_cannot_change_the_address(client: Any) -> None:
    user, token = signed_in_user(client, 1)

    without = change_email(client, user["id"], token, email="thief@example.com")
    wrong = change_email(
        client, user["id"], token, email="thief@example.com", current_password="guess guess"
    )

    assert without.status_code == 403
    assert without.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 403
    assert stored_email(user["id"]) == "user1@example.com"


def test_the_old_address_is_told_and_can_undo_the_change(client: Any, smtp: SMTPServer) -> None:
    user, token = signed_in_user(client, 1)
    other_device = token_for(client, "user1")
    deliver()
    smtp.mailbox.messages.clear()

    changed = change_email(
        client, user["id"], token, email="thief@example.com", current_password=PASSWORD
    )
    assert changed.status_code == 200
    deliver()

    [notice] = smtp.mailbox.to("user1@example.com")
    assert "thief@example.com" in notice.get_body(preferencelist=("plain",)).get_content()
    # The other sign-ins ended with the change; the one that made it goes on.
    assert client.get("/users/me", headers=bearer(other_device)).status_code == 401
    assert client.get("/users/me", headers=bearer(token)).status_code == 200

    undo = link_in(notice, "undo-email-change")
    undone = client.post("/auth/undo-email-change", json={"token": undo})
    assert undone.status_code == 200
    assert undone.json() == {"email": "user1@example.com", "email_verified": True}
    assert stored_email(user["id"]) == "user1@example.com"
    # Whoever changed it is signed out, and the link works once.
    assert client.get("/users/me", headers=bearer(token)).status_code == 401
    assert client.post("/auth/undo-email-change", json={"token": undo}).status_code == 400
    assert client.get("/undo-email-change").status_code == 200


def test_a_reset_link_mailed_to_the_old_address_dies_with_the_change(
    client: Any, smtp: SMTPServer
) -> None:
    user, token = signed_in_user(client, 1)
    client.post("/auth/forgot-password", json={"email": "user1@example.com"})
    deliver()
    [reset_mail] = [m for m in smtp.mailbox.to("user1@example.com") if "Reset" in m["Subject"]]
    reset_token = link_in(reset_mail, "reset-password")

    change_email(client, user["id"], token, email="new@example.com", current_password=PASSWORD)

    used = client.post(
        "/auth/reset-password", json={"token": reset_token, "new_password": "taken over 123"}
    )
    assert used.status_code == 400
    assert sign_in(client, "user1", PASSWORD).status_code == 200


def test_an_admin_changes_someone_elses_address_without_their_password(client: Any) -> None:
    user, _ = signed_in_user(client, 1)
    _, admin = signed_in_user(client, "boss", admin=True)

    changed = change_email(client, user["id"], admin, email="fixed@example.com")

    assert changed.status_code == 200
    assert stored_email(user["id"]) == "fixed@example.com"


# 16.6: guessing the password through a stolen token


@pytest.mark.parametrize("route", ["password", "email"])
def test_wrong_current_passwords_count_in_the_sign_in_throttle(
    client: Any, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    monkeypatch.setattr(get_settings(), "login_account_limit", 3)
    user, token = signed_in_user(client, 1)

    def guess(password: str) -> int:
        if route == "password":
            body = {"current_password": password, "new_password": "a new password 1"}
            return int(
                client.put("/users/me/password", json=body, headers=bearer(token)).status_code
            )
        return int(
            change_email(
                client, user["id"], token, email="x@example.com", current_password=password
            ).status_code
        )

    statuses = [guess(f"guess number {n}") for n in range(3)]
    throttled = client.put(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a new password 1"},
        headers=bearer(token),
    )

    assert statuses == [403, 403, 403]
    assert throttled.status_code == 429  # even the right password, while the limit holds
    assert int(throttled.headers["retry-after"]) > 0
    # The guesses were counted for the account: sign-in from a device that never signed in
    # to it is throttled too (the owner's own device is not: see the device cookie tests).
    client.cookies.clear()
    assert sign_in(client, "user1").status_code == 429
    with SessionLocal() as session:
        details = session.scalars(
            select(SecurityEvent.detail).where(SecurityEvent.kind == "login_failed")
        ).all()
    assert details == ["wrong_current_password"] * 3


# 16.8: lockout as a weapon


def test_failures_from_elsewhere_do_not_lock_out_a_device_that_signed_in_before(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "login_account_limit", 3)
    signed_in_user(client, 1)  # the owner's client now holds a device cookie
    assert "userbase_device" in client.cookies

    from fastapi.testclient import TestClient

    from userbase.app import app

    with TestClient(app) as attacker:
        attempts = [sign_in(attacker, "user1", "wrong guess!").status_code for _ in range(4)]
        assert attempts == [401, 401, 401, 429]
        # The attacker's right guess is refused while the lock holds...
        assert sign_in(attacker, "user1").status_code == 429

    # ...but the owner's device signs in at once.
    assert sign_in(client, "user1").status_code == 200


def test_a_device_cookie_counts_its_own_failures_and_is_bound_to_its_account(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "login_account_limit", 3)
    signed_in_user(client, 1)
    signed_in_user(client, 2)  # the cookie is now user2's device token
    # A cookie of user2's does not help with user1's lock, nor the other way round.
    from fastapi.testclient import TestClient

    from userbase.app import app

    with TestClient(app) as attacker:
        assert [sign_in(attacker, "user1", "bad guess!").status_code for _ in range(3)] == [401] * 3
    assert sign_in(client, "user1").status_code == 429
    # The device's own failures still lock the device.
    assert [sign_in(client, "user2", "bad guess!").status_code for _ in range(3)] == [401] * 3
    assert sign_in(client, "user2").status_code == 429
