"""An admin (or the operator) helps a user who lost their device; the admins rule."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.accounts import bearer, sign_in, signed_in_user
from tests.mfa import StepClock, code, enrol, mfa_token_for, second_step
from userbase.cli import app as cli
from userbase.config import get_settings
from userbase.database import SessionLocal
from userbase.models import MfaChallenge, MfaFactor, OutboxMail, RecoveryCode, SecurityEvent
from userbase.security import token_digest


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    return StepClock(monkeypatch)


def reset_events() -> list[tuple[int | None, int | None, str, str | None]]:
    with SessionLocal() as session:
        rows = session.execute(
            select(
                SecurityEvent.user_id,
                SecurityEvent.actor_id,
                SecurityEvent.channel,
                SecurityEvent.detail,
            ).where(SecurityEvent.kind == "mfa_reset")
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def mails_to(address: str) -> list[str]:
    with SessionLocal() as session:
        return list(
            session.scalars(select(OutboxMail.subject).where(OutboxMail.recipient == address))
        )


def test_an_admin_removes_every_factor_of_a_user_who_lost_their_device(
    client: Any, clock: StepClock
) -> None:
    user, token = signed_in_user(client, 1)
    enrol(client, token)
    admin, admin_token = signed_in_user(client, "admin", admin=True)
    _, other_token = signed_in_user(client, 2)
    waiting = mfa_token_for(client, "user1")

    by_a_user = client.delete(f"/users/{user['id']}/mfa", headers=bearer(other_token))
    by_the_admin = client.delete(f"/users/{user['id']}/mfa", headers=bearer(admin_token))
    unknown = client.delete("/users/999999/mfa", headers=bearer(admin_token))

    assert (by_a_user.status_code, by_the_admin.status_code, unknown.status_code) == (403, 204, 404)
    assert reset_events() == [(user["id"], admin["id"], "api", "removed")]
    assert mails_to("user1@example.com")[-1] == (
        "The second factor of your userbase account was removed"
    )
    with SessionLocal() as session:
        assert session.scalar(select(MfaFactor.id)) is None
        assert session.scalar(select(RecoveryCode.id)) is None
    # The password alone signs in again; a sign-in waiting for a code when it happened is over.
    assert sign_in(client, "user1").status_code == 200
    assert second_step(client, waiting, recovery_code="0000-0000-0000-0000").status_code == 401


def test_the_operator_resets_with_the_same_workflow(client: Any, clock: StepClock) -> None:
    user, token = signed_in_user(client, 1)
    enrol(client, token)

    result = CliRunner().invoke(cli, ["reset-mfa", "--id", str(user["id"]), "--yes"])
    nothing_left = CliRunner().invoke(cli, ["reset-mfa", "--id", str(user["id"]), "--yes"])
    unknown = CliRunner().invoke(cli, ["reset-mfa", "--id", "999999", "--yes"])

    assert result.exit_code == 0, result.output
    assert "second factors removed" in result.output
    assert "had no second factor" in nothing_left.output
    assert unknown.exit_code == 1
    assert reset_events() == [
        (user["id"], None, "cli", "removed"),
        (user["id"], None, "cli", "none"),
    ]
    assert len(mails_to("user1@example.com")) == 2  # verification, then the one reset
    assert sign_in(client, "user1").status_code == 200


def test_with_the_admins_rule_an_admin_without_a_factor_may_only_enrol_one(
    client: Any, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "require_mfa_for_admins", True)
    _, admin = signed_in_user(client, "admin", admin=True)
    user, user_token = signed_in_user(client, 1)

    refused = client.get("/admin/events", headers=bearer(admin))
    refused_change = client.patch(
        f"/users/{user['id']}", json={"display_name": "x"}, headers=bearer(admin)
    )
    me = client.get("/users/me", headers=bearer(admin))
    a_user = client.get("/users/me/sessions", headers=bearer(user_token))

    assert refused.status_code == 403
    assert refused.json()["mfa_enrolment_required"] is True
    assert refused_change.status_code == 403
    assert me.status_code == 200
    assert a_user.status_code == 200  # the rule is for admins
    secret, _ = enrol(client, admin)
    # Enrolled: the same sign-in may do what admins do.
    assert client.get("/admin/events", headers=bearer(admin)).status_code == 200
    # And the next sign-in asks for the code.
    assert (
        second_step(client, mfa_token_for(client, "useradmin"), code=code(secret, 1)).status_code
        == 200
    )


def test_without_the_admins_rule_admins_need_no_second_factor(client: Any) -> None:
    _, admin = signed_in_user(client, "admin", admin=True)

    assert client.get("/admin/events", headers=bearer(admin)).status_code == 200


def test_with_the_admins_rule_an_admin_whose_factor_was_reset_must_enrol_again(
    client: Any, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, token = signed_in_user(client, "admin", admin=True)
    enrol(client, token)
    _, other = signed_in_user(client, "other", admin=True)
    assert client.delete(f"/users/{admin['id']}/mfa", headers=bearer(other)).status_code == 204
    monkeypatch.setattr(get_settings(), "require_mfa_for_admins", True)

    assert client.get("/admin/events", headers=bearer(token)).status_code == 403
    assert client.get("/users/me/mfa", headers=bearer(token)).json()["totp"] is False


def test_purge_tokens_deletes_expired_mfa_tokens_only(client: Any, clock: StepClock) -> None:
    _, token = signed_in_user(client, 1)
    enrol(client, token)
    mfa_token_for(client, "user1")
    clock.move(timedelta(minutes=5, seconds=1))
    live = mfa_token_for(client, "user1")

    result = CliRunner().invoke(cli, ["purge-tokens"])

    assert result.exit_code == 0, result.output
    assert "purged 1 expired tokens" in result.output
    with SessionLocal() as session:
        left = session.scalars(select(MfaChallenge.token_hash)).all()
    assert left == [token_digest(live)]
