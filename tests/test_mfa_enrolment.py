"""Enrolling an authenticator app (TOTP, RFC 6238), its recovery codes, removing it: over the
API, with codes made by pyotp as an authenticator app makes them."""

import base64
import logging
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from tests.accounts import PASSWORD, bearer, sign_in, signed_in_user
from tests.mfa import StepClock, code, enrol, mfa_token_for, second_step
from userbase.database import SessionLocal
from userbase.models import MfaFactor, RecoveryCode, SecurityEvent


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    return StepClock(monkeypatch)


def events(user_id: int) -> list[str]:
    with SessionLocal() as session:
        return list(
            session.scalars(
                select(SecurityEvent.kind)
                .where(SecurityEvent.user_id == user_id)
                .order_by(SecurityEvent.id)
            )
        )


def test_enrolment_gives_a_secret_and_a_uri_an_authenticator_app_reads(
    client: Any, clock: StepClock
) -> None:
    user, token = signed_in_user(client, 1)

    response = client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(token)
    )

    assert response.status_code == 201
    body = response.json()
    app = pyotp.parse_uri(body["otpauth_uri"])
    assert isinstance(app, pyotp.TOTP)
    assert app.secret == body["secret"]
    assert len(base64.b32decode(body["secret"])) == 20  # 160 bits
    assert app.issuer == "userbase"
    assert app.name == "user1"
    # Not active until confirmed: the password alone still signs in.
    assert sign_in(client, "user1").status_code == 200
    status = client.get("/users/me/mfa", headers=bearer(token)).json()
    assert status == {"totp": False, "passkeys": 0, "recovery_codes_left": 0}
    assert "mfa_enrolment_started" in events(user["id"])


def test_enrolment_needs_the_current_password(client: Any) -> None:
    _, token = signed_in_user(client, 1)

    wrong = client.post(
        "/users/me/mfa/totp", json={"current_password": "not it at all"}, headers=bearer(token)
    )
    missing = client.post("/users/me/mfa/totp", json={}, headers=bearer(token))

    assert wrong.status_code == 403
    assert missing.status_code == 422
    with SessionLocal() as session:
        assert session.scalar(select(MfaFactor.id)) is None


def test_confirming_activates_it_and_shows_ten_recovery_codes_stored_as_digests(
    client: Any, clock: StepClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user, token = signed_in_user(client, 1)
    started = client.post(
        "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(token)
    )
    secret = started.json()["secret"]
    wrong_code = f"{(int(code(secret)) + 1) % 1_000_000:06d}"

    refused = client.post(
        "/users/me/mfa/totp/confirm", json={"code": wrong_code}, headers=bearer(token)
    )
    confirmed = client.post(
        "/users/me/mfa/totp/confirm", json={"code": code(secret)}, headers=bearer(token)
    )
    again = client.post(
        "/users/me/mfa/totp/confirm", json={"code": code(secret, 1)}, headers=bearer(token)
    )

    assert refused.status_code == 400
    assert confirmed.status_code == 200
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert again.status_code == 409
    assert client.get("/users/me/mfa", headers=bearer(token)).json() == {
        "totp": True,
        "passkeys": 0,
        "recovery_codes_left": 10,
    }
    with SessionLocal() as session:
        stored_secret = session.scalars(select(MfaFactor.secret)).one()
        digests = set(session.scalars(select(RecoveryCode.code_hash)))
    # The secret is sealed at rest; the codes are digests; neither is in a log line.
    assert secret not in stored_secret
    assert len(digests) == 10
    assert not {c.replace("-", "") for c in codes} & digests
    assert secret not in caplog.text
    assert not any(c in caplog.text for c in codes)
    assert events(user["id"])[-2:] == ["mfa_failed", "mfa_enabled"]


def test_a_new_enrolment_replaces_one_waiting_but_not_an_active_one(
    client: Any, clock: StepClock
) -> None:
    _, token = signed_in_user(client, 1)
    body = {"current_password": PASSWORD}
    first = client.post("/users/me/mfa/totp", json=body, headers=bearer(token)).json()
    second = client.post("/users/me/mfa/totp", json=body, headers=bearer(token)).json()

    stale = client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": code(first["secret"])},
        headers=bearer(token),
    )
    assert first["secret"] != second["secret"]
    assert stale.status_code == 400 or code(first["secret"]) == code(second["secret"])
    confirmed = client.post(
        "/users/me/mfa/totp/confirm", json={"code": code(second["secret"])}, headers=bearer(token)
    )
    assert confirmed.status_code == 200
    assert client.post("/users/me/mfa/totp", json=body, headers=bearer(token)).status_code == 409


def test_the_confirmation_code_cannot_sign_in_again(client: Any, clock: StepClock) -> None:
    _, token = signed_in_user(client, 1)
    secret, _ = enrol(client, token)

    replayed = second_step(client, mfa_token_for(client, "user1"), code=code(secret))

    assert replayed.status_code == 401


def test_new_recovery_codes_need_the_password_and_kill_the_old_set(
    client: Any, clock: StepClock
) -> None:
    user, token = signed_in_user(client, 1)
    _, old_codes = enrol(client, token)

    wrong = client.post(
        "/users/me/mfa/recovery-codes",
        json={"current_password": "wrong one!"},
        headers=bearer(token),
    )
    fresh = client.post(
        "/users/me/mfa/recovery-codes", json={"current_password": PASSWORD}, headers=bearer(token)
    )

    assert wrong.status_code == 403
    assert fresh.status_code == 200
    new_codes = fresh.json()["recovery_codes"]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    old = second_step(client, mfa_token_for(client, "user1"), recovery_code=old_codes[0])
    new = second_step(client, mfa_token_for(client, "user1"), recovery_code=new_codes[0])
    assert old.status_code == 401
    assert new.status_code == 200
    assert "recovery_codes_regenerated" in events(user["id"])


def test_new_recovery_codes_without_an_authenticator_are_409(client: Any) -> None:
    _, token = signed_in_user(client, 1)

    response = client.post(
        "/users/me/mfa/recovery-codes", json={"current_password": PASSWORD}, headers=bearer(token)
    )

    assert response.status_code == 409


def test_removing_the_authenticator_needs_the_password_and_removes_the_codes(
    client: Any, clock: StepClock
) -> None:
    user, token = signed_in_user(client, 1)
    enrol(client, token)

    wrong = client.request(
        "DELETE",
        "/users/me/mfa/totp",
        json={"current_password": "wrong one!"},
        headers=bearer(token),
    )
    removed = client.request(
        "DELETE", "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(token)
    )
    again = client.request(
        "DELETE", "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(token)
    )

    assert (wrong.status_code, removed.status_code, again.status_code) == (403, 204, 409)
    assert sign_in(client, "user1").status_code == 200  # the password alone, again
    with SessionLocal() as session:
        assert session.scalar(select(RecoveryCode.id)) is None
        assert session.scalar(select(MfaFactor.id)) is None
    assert "mfa_removed" in events(user["id"])
