"""Verify an address and reset a forgotten password, end to end through a real SMTP server."""

import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.accounts import PASSWORD, bearer, sign_in, sign_up, signed_in_user, token_for
from tests.conftest import new_user
from tests.smtp import SMTPServer, free_port
from userbase import mail_delivery
from userbase.config import get_settings
from userbase.database import SessionLocal, engine
from userbase.models import ActionToken, OutboxMail, utcnow


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    monkeypatch.setattr(get_settings(), "smtp_url", server.url)
    yield server
    server.stop()


def deliver() -> mail_delivery.DeliveryReport:
    return mail_delivery.deliver_due(SessionLocal)


def link_in(message: EmailMessage, page: str) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(rf"(\S+/{page}#token=([A-Za-z0-9_-]+))", body.get_content())
    assert match, body.get_content()
    return match.group(2)


def outbox_size() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(OutboxMail)) or 0


def test_a_new_account_is_mailed_a_link_that_verifies_it_once(
    client: Any, smtp: SMTPServer
) -> None:
    _, token = signed_in_user(client, 1)
    assert deliver().sent == 1

    [message] = smtp.mailbox.to("user1@example.com")
    assert message["Subject"] == "Confirm your email address"
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "http://localhost:8000/verify-email#token=" in html.get_content()
    verify_token = link_in(message, "verify-email")

    assert client.get("/users/me", headers=bearer(token)).json()["email_verified"] is False
    first = client.post("/auth/verify", json={"token": verify_token})
    assert first.status_code == 200
    assert first.json() == {"email": "user1@example.com", "email_verified": True}
    assert client.get("/users/me", headers=bearer(token)).json()["email_verified"] is True

    again = client.post("/auth/verify", json={"token": verify_token})
    assert again.status_code == 400
    assert again.headers["content-type"] == "application/problem+json"


def test_a_failed_request_leaves_no_mail_in_the_outbox(client: Any, smtp: SMTPServer) -> None:
    sign_up(client, 1)
    assert client.post("/users/", json=new_user(1)).status_code == 409
    assert outbox_size() == 1
    assert deliver().sent == 1
    assert len(smtp.mailbox.messages) == 1


def test_the_link_opens_a_page_that_posts_the_token(client: Any) -> None:
    for page, endpoint in (
        ("verify-email", "auth/verify"),
        ("reset-password", "auth/reset-password"),
    ):
        response = client.get(f"/{page}")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert f"../{endpoint}" in response.text
        assert "location.hash" in response.text


def test_changing_the_email_unverifies_it_and_mails_the_new_address(
    client: Any, smtp: SMTPServer
) -> None:
    user, token = signed_in_user(client, 1)
    deliver()
    old_token = link_in(smtp.mailbox.to("user1@example.com")[0], "verify-email")

    changed = client.patch(
        f"/users/{user['id']}",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=bearer(token),
    )
    assert changed.json()["email_verified"] is False
    deliver()

    assert client.post("/auth/verify", json={"token": old_token}).status_code == 400
    new_token = link_in(smtp.mailbox.to("new@example.com")[0], "verify-email")
    assert client.post("/auth/verify", json={"token": new_token}).status_code == 200


def test_resend_is_for_signed_in_unverified_users_and_rate_limited(
    client: Any, smtp: SMTPServer
) -> None:
    _, token = signed_in_user(client, 1)
    assert client.post("/auth/verify/resend").status_code == 401

    statuses = [
        client.post("/auth/verify/resend", headers=bearer(token)).status_code for _ in range(4)
    ]

    assert statuses == [202, 202, 202, 429]
    deliver()
    assert len(smtp.mailbox.to("user1@example.com")) == 4  # sign-up + three resends
    latest = link_in(smtp.mailbox.to("user1@example.com")[-1], "verify-email")
    assert client.post("/auth/verify", json={"token": latest}).status_code == 200
    assert client.post("/auth/verify/resend", headers=bearer(token)).status_code == 409


def test_unverified_users_cannot_sign_in_when_verification_is_required(
    client: Any, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "require_verified_email", True)
    assert client.post("/users/", json=new_user(1)).status_code == 202
    deliver()

    refused = sign_in(client, "user1")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert sign_in(client, "user1", "wrong password!").status_code == 401  # no hint without it

    token = link_in(smtp.mailbox.to("user1@example.com")[0], "verify-email")
    client.post("/auth/verify", json={"token": token})
    assert sign_in(client, "user1").status_code == 200


def test_forgot_password_answers_the_same_for_known_and_unknown_addresses(
    client: Any, smtp: SMTPServer
) -> None:
    sign_up(client, 1)
    deliver()
    smtp.mailbox.messages.clear()

    known = client.post("/auth/forgot-password", json={"email": "USER1@example.com"})
    unknown = client.post("/auth/forgot-password", json={"email": "nobody@example.com"})

    assert (known.status_code, unknown.status_code) == (202, 202)
    assert known.content == unknown.content
    deliver()
    subjects = {m["To"]: m["Subject"] for m in smtp.mailbox.messages}
    # The unknown address is told that no account uses it (docs/security.md, 16.9).
    assert subjects == {
        "user1@example.com": "Reset your password",
        "nobody@example.com": "Password reset requested",
    }


def test_a_reset_sets_the_password_revokes_tokens_and_works_once(
    client: Any, smtp: SMTPServer
) -> None:
    sign_up(client, 1)
    old_bearer = token_for(client, "user1")
    client.post("/auth/forgot-password", json={"email": "user1@example.com"})
    deliver()
    reset_token = link_in(smtp.mailbox.to("user1@example.com")[-1], "reset-password")

    done = client.post(
        "/auth/reset-password", json={"token": reset_token, "new_password": "fresh password 9"}
    )

    assert done.status_code == 204
    assert client.get("/users/me", headers=bearer(old_bearer)).status_code == 401
    assert sign_in(client, "user1", PASSWORD).status_code == 401
    assert sign_in(client, "user1", "fresh password 9").status_code == 200
    reused = client.post(
        "/auth/reset-password", json={"token": reset_token, "new_password": "another pass 10"}
    )
    assert reused.status_code == 400


def test_used_expired_unknown_and_wrong_kind_tokens_get_one_400_body(
    client: Any, smtp: SMTPServer
) -> None:
    sign_up(client, 1)
    client.post("/auth/forgot-password", json={"email": "user1@example.com"})
    deliver()
    verify_token = link_in(smtp.mailbox.to("user1@example.com")[0], "verify-email")
    reset_token = link_in(smtp.mailbox.to("user1@example.com")[1], "reset-password")

    wrong_kind_reset = client.post(
        "/auth/reset-password", json={"token": verify_token, "new_password": "fresh password 9"}
    )
    wrong_kind_verify = client.post("/auth/verify", json={"token": reset_token})
    unknown = client.post("/auth/verify", json={"token": "A" * 43})
    with engine.begin() as connection:
        connection.execute(update(ActionToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = client.post(
        "/auth/reset-password", json={"token": reset_token, "new_password": "fresh password 9"}
    )

    answers = [wrong_kind_reset, wrong_kind_verify, unknown, expired]
    assert [a.status_code for a in answers] == [400] * 4
    assert len({a.json()["detail"] for a in answers}) == 1
    assert sign_in(client, "user1", PASSWORD).status_code == 200


def test_reset_mails_per_address_are_limited_silently(
    client: Any, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "mails_per_recipient_limit", 4)
    sign_up(client, 1)
    answers = [
        client.post("/auth/forgot-password", json={"email": "user1@example.com"}).status_code
        for _ in range(5)
    ]
    assert answers == [202] * 5
    deliver()
    assert len(smtp.mailbox.to("user1@example.com")) == 1 + 3  # verification + 3 resets


def test_reset_requests_per_client_are_limited(client: Any) -> None:
    answers = [
        client.post("/auth/forgot-password", json={"email": f"n{n}@example.com"}).status_code
        for n in range(21)
    ]
    assert answers == [202] * 20 + [429]


def test_an_smtp_outage_delays_mail_but_loses_none(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setattr(get_settings(), "smtp_url", f"smtp://127.0.0.1:{port}")
    sign_up(client, 1)

    assert deliver().failed == 1
    with SessionLocal() as session:
        pending = session.scalars(select(OutboxMail)).one()
    assert pending.sent_at is None
    assert pending.attempts == 1
    assert pending.last_error
    assert pending.next_attempt_at > utcnow()
    assert deliver().sent == 0  # backing off

    server = SMTPServer(port).start()
    try:
        with engine.begin() as connection:  # the back-off has passed
            connection.execute(update(OutboxMail).values(next_attempt_at=utcnow()))
        assert deliver().sent == 1
        assert len(server.mailbox.to("user1@example.com")) == 1
    finally:
        server.stop()
    assert deliver().sent == 0  # sent once, never again


def test_concurrent_senders_deliver_each_mail_exactly_once(client: Any, smtp: SMTPServer) -> None:
    for n in range(12):
        sign_up(client, f"c{n}")
    barrier = threading.Barrier(4, timeout=10)

    def sender() -> mail_delivery.DeliveryReport:
        barrier.wait()  # the four senders look at the outbox at the same moment
        return mail_delivery.deliver_due(SessionLocal, limit=5)

    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: sender(), range(4)))
    while (report := deliver()).sent:  # what the four left for a later round
        reports.append(report)

    recipients = sorted(str(m["To"]) for m in smtp.mailbox.messages)
    assert recipients == sorted(f"userc{n}@example.com" for n in range(12))
    assert sum(r.sent for r in reports) == 12
    with SessionLocal() as session:
        unsent = session.scalar(
            select(func.count()).select_from(OutboxMail).where(OutboxMail.sent_at.is_(None))
        )
    assert unsent == 0


def test_a_sender_round_delivers_batch_after_batch_until_none_is_due(
    client: Any, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mail_delivery, "BATCH", 5)
    for n in range(12):
        sign_up(client, f"b{n}")

    report = mail_delivery.deliver_until_done(SessionLocal)

    assert (report.sent, report.failed) == (12, 0)
    assert len(smtp.mailbox.messages) == 12


def test_a_batch_is_sent_over_one_smtp_connection(client: Any, smtp: SMTPServer) -> None:
    for n in range(5):
        sign_up(client, f"k{n}")

    assert deliver().sent == 5

    assert len(smtp.mailbox.messages) == 5
    assert len(set(smtp.mailbox.peers)) == 1


def test_a_sender_round_stops_at_the_first_batch_that_fails(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mail_delivery, "BATCH", 5)
    monkeypatch.setattr(get_settings(), "smtp_url", f"smtp://127.0.0.1:{free_port()}")
    for n in range(12):
        sign_up(client, f"f{n}")

    report = mail_delivery.deliver_until_done(SessionLocal)

    # The first failure ends the round: 4 of the batch go back, the other 7 were not leased.
    assert (report.sent, report.failed, report.released) == (0, 1, 4)


def test_without_smtp_the_mail_and_its_link_go_to_the_log(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="userbase.mail")
    sign_up(client, 1)
    assert deliver().sent == 1
    assert "/verify-email#token=" in caplog.text


@pytest.mark.live
def test_the_server_delivers_the_outbox_in_the_background(database_url: str) -> None:
    import time

    import httpx2 as httpx

    from tests.conftest import LiveServer

    smtp = SMTPServer().start()
    server = LiveServer(
        database_url,
        USERBASE_SMTP_URL=smtp.url,
        USERBASE_MAIL_BACKGROUND="true",
        USERBASE_MAIL_POLL_SECONDS="0.2",
    )
    try:
        with httpx.Client(base_url=server.url) as client:
            sign_up(client, "bg")
        deadline = time.monotonic() + 10
        while not smtp.mailbox.messages and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [m["To"] for m in smtp.mailbox.messages] == ["userbg@example.com"]
    finally:
        server.stop()
        smtp.stop()
