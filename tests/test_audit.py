"""The audit trail: each security event is recorded, admins page through it, retention purges."""

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from tests.accounts import PASSWORD, bearer, sign_in, sign_up, signed_in_user, token_for
from tests.smtp import SMTPServer
from userbase import mail_delivery
from userbase.cli import app as cli
from userbase.config import get_settings
from userbase.database import SessionLocal, engine
from userbase.models import OutboxMail, SecurityEvent, utcnow


def events(client: Any, admin_token: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/admin/events", params=params, headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def _last_token(smtp: SMTPServer, to: str) -> str:
    body = smtp.mailbox.to(to)[-1].get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).split("#token=")[1].split()[0]


def test_each_security_event_is_recorded_with_its_context(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"User-Agent": "audit-test/1.0", "X-Request-ID": "req-42"}
    user = sign_up(client, 1)
    uid = user["id"]
    sign_in(client, "user1", "wrong password!")
    token = token_for(client, "user1")
    client.post("/auth/logout", headers={**bearer(token), **headers})
    token = token_for(client, "user1")
    client.put(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "second password"},
        headers=bearer(token),
    )
    token = token_for(client, "user1", "second password")
    client.patch(
        f"/users/{uid}",
        json={"email": "moved@example.com", "current_password": "second password"},
        headers=bearer(token),
    )
    # The outbox keeps no link once sent (docs/mail-and-audit.md): read them as received.
    smtp = SMTPServer().start()
    monkeypatch.setattr(get_settings(), "smtp_url", smtp.url)
    try:
        mail_delivery.deliver_due(SessionLocal)
        verify = _last_token(smtp, "moved@example.com")
        client.post("/auth/verify", json={"token": verify})
        client.post("/auth/forgot-password", json={"email": "moved@example.com"})
        mail_delivery.deliver_due(SessionLocal)
        reset = _last_token(smtp, "moved@example.com")
    finally:
        smtp.stop()
    client.post("/auth/reset-password", json={"token": reset, "new_password": "third password"})
    admin, admin_token = signed_in_user(client, "admin", admin=True)
    client.patch(f"/users/{uid}", json={"is_admin": True}, headers=bearer(admin_token))
    client.patch(f"/users/{uid}", json={"is_active": False}, headers=bearer(admin_token))
    monkeypatch.setattr(get_settings(), "login_account_limit", 1)
    sign_in(client, "user1", "wrong again!!")
    sign_in(client, "user1", "third password")  # throttled now
    client.delete(f"/users/{uid}", headers={**bearer(admin_token), **headers})

    trail = events(client, admin_token, user_id=uid, limit=1000)

    kinds = [e["kind"] for e in trail]
    assert kinds == [
        "user_created",
        "login_failed",
        "login_succeeded",
        "logout",
        "login_succeeded",
        "password_changed",
        "login_succeeded",
        "email_changed",
        "email_verified",
        "password_reset_requested",
        "password_reset",
        "role_changed",
        "activation_changed",
        "login_failed",
        "login_throttled",
        "user_deleted",
    ]
    assert trail[1]["detail"] == "wrong_password"
    assert trail[13]["detail"] == "wrong_password"
    assert trail[11]["actor_id"] == admin["id"]
    logout, deleted = trail[3], trail[-1]
    assert logout["user_agent"] == "audit-test/1.0"
    assert logout["request_id"] == "req-42"
    assert deleted["actor_id"] == admin["id"]
    assert all(e["client_address"] == "testclient" for e in trail)
    everything = str(trail)
    for secret in (PASSWORD, "second password", "third password", verify, reset):
        assert secret not in everything
    assert hashlib.sha256(reset.encode()).hexdigest() not in everything


def test_unknown_user_failures_are_recorded_without_a_user(client: Any) -> None:
    _, admin_token = signed_in_user(client, "admin", admin=True)
    sign_in(client, "ghost", "whatever pass")
    failures = events(client, admin_token, kind="login_failed")
    assert [(e["user_id"], e["detail"]) for e in failures] == [(None, "unknown_user")]


def test_events_are_for_admins_only(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    assert client.get("/admin/events", headers=bearer(token)).status_code == 403
    assert client.get("/admin/events").status_code == 401


def test_events_page_by_keyset_with_a_next_link(client: Any) -> None:
    _, admin_token = signed_in_user(client, "admin", admin=True)
    for n in range(5):
        sign_in(client, f"ghost{n}", "whatever pass")

    first = client.get("/admin/events?kind=login_failed&limit=2", headers=bearer(admin_token))
    seen = [e["id"] for e in first.json()]
    link = first.headers["link"]
    while link:
        url = link.split(";")[0].strip("<>")
        page = client.get(url, headers=bearer(admin_token))
        seen += [e["id"] for e in page.json()]
        link = page.headers.get("link")
    assert len(seen) == 5
    assert seen == sorted(set(seen))


def test_unknown_event_kind_is_422(client: Any) -> None:
    _, admin_token = signed_in_user(client, "admin", admin=True)
    response = client.get("/admin/events?kind=nonsense", headers=bearer(admin_token))
    assert response.status_code == 422


def test_purge_events_keeps_the_retention_period(client: Any) -> None:
    for n in range(3):
        sign_in(client, f"ghost{n}", "whatever pass")
    with engine.begin() as connection:
        oldest = connection.execute(select(func.min(SecurityEvent.id))).scalar_one()
        connection.execute(
            update(SecurityEvent)
            .where(SecurityEvent.id == oldest)
            .values(created_at=utcnow() - timedelta(days=91))
        )

    result = CliRunner().invoke(cli, ["purge-events", "--batch-size", "1"])

    assert result.exit_code == 0, result.output
    assert "purged 1 events" in result.output
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(SecurityEvent)) == 2


def test_send_mail_command_delivers_the_outbox(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sign_up(client, 1)
    result = CliRunner().invoke(cli, ["send-mail"])
    assert result.exit_code == 0, result.output
    assert "sent 1, failed 0" in result.output
    with SessionLocal() as session:
        assert session.scalar(select(OutboxMail.sent_at)) is not None
