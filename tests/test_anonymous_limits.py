"""Work anyone can ask for without an account is bounded, and its answers tell nothing about who
has one (issue 16: items 7 and 9)."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select

from tests.accounts import sign_up
from tests.conftest import new_user
from tests.smtp import SMTPServer
from userbase import mail_delivery
from userbase.config import get_settings
from userbase.database import SessionLocal, engine
from userbase.metrics import PASSWORD_HASHES_IN_FLIGHT
from userbase.models import User


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    monkeypatch.setattr(get_settings(), "smtp_url", server.url)
    yield server
    server.stop()


def users_count() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def test_sign_ups_per_client_address_are_limited(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "signup_address_limit", 3)

    statuses = [client.post("/users/", json=new_user(n)).status_code for n in range(4)]
    doomed = client.post("/users/", json=new_user(1)).status_code

    assert statuses == [201, 201, 201, 429]
    assert doomed == 429  # taken names count too: they are refused before anything else
    assert users_count() == 3


def test_doomed_sign_ups_count_against_the_limit(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, 1)  # counts as one
    monkeypatch.setattr(get_settings(), "signup_address_limit", 3)
    statuses = [client.post("/users/", json=new_user(1)).status_code for _ in range(2)]
    assert statuses == [409, 409]
    assert client.post("/users/", json=new_user(2)).status_code == 429


# On SQLite the hash comes first, outside the write lock (accounts.register, docs/security.md).
@pytest.mark.engines("postgresql", "mariadb")
def test_a_taken_username_is_refused_before_any_password_is_hashed(client: Any) -> None:
    sign_up(client, 1)
    hashes: list[int] = []
    original_track = PASSWORD_HASHES_IN_FLIGHT.track_inprogress

    def counting_track() -> Any:
        hashes.append(1)
        return original_track()

    PASSWORD_HASHES_IN_FLIGHT.track_inprogress = counting_track  # type: ignore[method-assign]
    try:
        taken = client.post("/users/", json=new_user(1, email="other@example.com"))
    finally:
        PASSWORD_HASHES_IN_FLIGHT.track_inprogress = original_track  # type: ignore[method-assign]

    assert taken.status_code == 409
    assert hashes == []


def test_mails_to_one_recipient_are_limited_whatever_asks_for_them(
    client: Any, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "mails_per_recipient_limit", 2)
    # Sign-ups, resets and changes of address aimed at one inbox share its hourly budget.
    for n in range(3):
        client.post("/users/", json=new_user(n, email="victim@example.com"))
        client.post("/auth/forgot-password", json={"email": "victim@example.com"})
    mail_delivery.deliver_due(SessionLocal)
    assert len(smtp.mailbox.to("victim@example.com")) == 2


def test_with_verified_email_required_a_taken_address_answers_like_a_new_one(
    client: Any, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "require_verified_email", True)
    first = client.post("/users/", json=new_user(1))
    again = client.post("/users/", json=new_user(2, email="USER1@example.com"))

    assert (first.status_code, again.status_code) == (202, 202)
    assert first.content == again.content
    assert users_count() == 1
    mail_delivery.deliver_due(SessionLocal)
    subjects = [m["Subject"] for m in smtp.mailbox.to("user1@example.com")]
    assert subjects == ["Confirm your email address", "Someone tried to sign up with your address"]
    # A taken username is still a 409: usernames are public by design.
    assert client.post("/users/", json=new_user(1, email="x@example.com")).status_code == 409


def statements_of(client: Any, email: str) -> list[str]:
    seen: list[str] = []

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()[:3]).upper())

    sqlalchemy_event.listen(engine, "before_cursor_execute", on_statement)
    try:
        assert client.post("/auth/forgot-password", json={"email": email}).status_code == 202
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", on_statement)
    return seen


def test_forgot_password_does_the_same_work_for_known_and_unknown_addresses(
    client: Any, smtp: SMTPServer
) -> None:
    sign_up(client, 1)
    known = statements_of(client, "user1@example.com")
    unknown = statements_of(client, "nobody@example.com")

    # One statement apart: the reset link's own row (docs/security.md, "What still tells").
    assert [s for s in known if "ACTION_TOKENS" not in s] == unknown
    assert len(known) == len(unknown) + 1
    mail_delivery.deliver_due(SessionLocal)
    [no_account] = smtp.mailbox.to("nobody@example.com")
    assert no_account["Subject"] == "Password reset requested"
