"""Passkeys over the API (docs/mfa.md): register, list, rename, remove, and use one as the
second factor of a sign-in; and the attacks py_webauthn and our challenges must stop. The
authenticator is tests/passkeys.py's, which makes real WebAuthn answers."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner
from webauthn.helpers import bytes_to_base64url

from tests.accounts import PASSWORD, bearer, make_admin, sign_in, signed_in_user
from tests.mfa import STEP, StepClock, enrol, mfa_token_for, second_step
from tests.passkeys import (
    SoftAuthenticator,
    register,
    registration_options,
    second_factor_options,
)
from userbase.cli import app as cli
from userbase.clock import CLOCK
from userbase.config import get_settings
from userbase.database import SessionLocal
from userbase.models import Passkey, PasskeyChallenge, SecurityEvent


def events(user_id: int) -> list[tuple[str, str | None]]:
    with SessionLocal() as session:
        return [
            (kind, detail)
            for kind, detail in session.execute(
                select(SecurityEvent.kind, SecurityEvent.detail)
                .where(SecurityEvent.user_id == user_id)
                .order_by(SecurityEvent.id)
            )
        ]


def passkey_count() -> int:
    with SessionLocal() as session:
        return len(session.scalars(select(Passkey.id)).all())


def sign_in_with(client: Any, authenticator: SoftAuthenticator, login: str, **how: Any) -> Any:
    """Password, then the passkey as the second factor, over the API."""
    mfa_token = mfa_token_for(client, login)
    answer = authenticator.get(second_factor_options(client, mfa_token), **how)
    return second_step(client, mfa_token, passkey=answer)


def test_registration_options_ask_for_a_discoverable_user_verified_passkey(client: Any) -> None:
    user, token = signed_in_user(client, 1)

    options = registration_options(client, token)

    assert options["rp"] == {"id": "localhost", "name": "userbase"}
    assert options["user"]["name"] == "user1"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["requireResidentKey"] is True
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == []
    assert ("mfa_enrolment_started", "passkey") in events(user["id"])


def test_a_registered_passkey_is_listed_with_its_name_and_excluded_from_the_next(
    client: Any,
) -> None:
    user, token = signed_in_user(client, 1)

    authenticator, passkey = register(client, token, name="Work laptop")

    assert passkey["name"] == "Work laptop"
    assert passkey["transports"] == ["internal"]
    assert passkey["last_used_at"] is None
    listed = client.get("/users/me/mfa/passkeys", headers=bearer(token)).json()
    assert listed == {"passkeys": [passkey]}
    status = client.get("/users/me/mfa", headers=bearer(token)).json()
    assert status == {"totp": False, "passkeys": 1, "recovery_codes_left": 0}
    again = registration_options(client, token)
    excluded = [c["id"] for c in again["excludeCredentials"]]
    assert excluded == [bytes_to_base64url(authenticator.credential_id)]
    assert ("mfa_enabled", "passkey") in events(user["id"])


def test_registration_needs_the_current_password(client: Any) -> None:
    _, token = signed_in_user(client, 1)

    response = client.post(
        "/users/me/mfa/passkeys/registration",
        json={"current_password": "not it"},
        headers=bearer(token),
    )

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    with SessionLocal() as session:
        assert session.scalars(select(PasskeyChallenge.id)).all() == []


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"origin": "http://127.0.0.1:8000"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"verified": False}, "verif"),
    ],
)
def test_a_registration_from_another_origin_or_rp_or_unverified_is_refused_and_audited(
    client: Any, how: dict[str, Any], reason: str
) -> None:
    user, token = signed_in_user(client, 1)
    credential = SoftAuthenticator().create(registration_options(client, token), **how)

    response = client.post(
        "/users/me/mfa/passkeys",
        json={"name": "Mine", "credential": credential},
        headers=bearer(token),
    )

    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "The passkey was not accepted. Try again."
    assert passkey_count() == 0
    failures = [d for k, d in events(user["id"]) if k == "mfa_failed"]
    assert len(failures) == 1
    assert reason.lower() in (failures[0] or "").lower(), failures


def test_a_registration_answer_serves_once(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    credential = SoftAuthenticator().create(registration_options(client, token))
    body = {"name": "Mine", "credential": credential}
    assert (
        client.post("/users/me/mfa/passkeys", json=body, headers=bearer(token)).status_code == 201
    )

    again = client.post("/users/me/mfa/passkeys", json=body, headers=bearer(token))

    assert again.status_code == 400
    assert passkey_count() == 1


def test_another_users_registration_challenge_is_refused(client: Any) -> None:
    _, alice = signed_in_user(client, 1)
    _, bob = signed_in_user(client, 2)
    credential = SoftAuthenticator().create(registration_options(client, alice))

    response = client.post(
        "/users/me/mfa/passkeys",
        json={"name": "Mine", "credential": credential},
        headers=bearer(bob),
    )

    assert response.status_code == 400
    assert passkey_count() == 0


@pytest.mark.parametrize(
    "credential",
    [{}, {"id": "x"}, {"id": "AA", "rawId": "AA", "response": {"clientDataJSON": "!!"}}],
)
def test_a_malformed_credential_is_400_and_changes_nothing(
    client: Any, credential: dict[str, Any]
) -> None:
    _, token = signed_in_user(client, 1)
    registration_options(client, token)

    response = client.post(
        "/users/me/mfa/passkeys",
        json={"name": "Mine", "credential": credential},
        headers=bearer(token),
    )

    assert response.status_code == 400
    assert passkey_count() == 0


def test_a_passkey_is_a_second_factor_for_the_password_sign_in(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    authenticator, _ = register(client, token)

    refused = sign_in(client, "user1")
    assert refused.status_code == 401
    assert refused.json()["mfa_required"] is True
    response = sign_in_with(client, authenticator, "user1")

    assert response.status_code == 200, response.text
    assert response.json()["access_token"]
    assert ("login_succeeded", "second_factor=passkey") in events(user["id"])
    listed = client.get("/users/me/mfa/passkeys", headers=bearer(token)).json()["passkeys"]
    assert listed[0]["last_used_at"] is not None


def test_the_second_factor_options_name_only_the_users_passkeys(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    register(client, token)
    _, other = signed_in_user(client, 2)
    register(client, other)

    options = second_factor_options(client, mfa_token_for(client, "user1"))

    assert len(options["allowCredentials"]) == 1
    assert options["rpId"] == "localhost"
    assert options["userVerification"] == "required"


def test_a_replayed_assertion_is_refused(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    authenticator, _ = register(client, token)
    mfa_token = mfa_token_for(client, "user1")
    answer = authenticator.get(second_factor_options(client, mfa_token))
    assert second_step(client, mfa_token, passkey=answer).status_code == 200

    another = mfa_token_for(client, "user1")
    second_factor_options(client, another)
    replayed = second_step(client, another, passkey=answer)

    assert replayed.status_code == 401
    assert replayed.json()["attempts_left"] == 4


def test_an_assertion_over_a_used_challenge_is_refused_even_for_the_same_sign_in(
    client: Any,
) -> None:
    _, token = signed_in_user(client, 1)
    authenticator, _ = register(client, token)
    mfa_token = mfa_token_for(client, "user1")
    options = second_factor_options(client, mfa_token)
    wrong_origin = authenticator.get(options, origin="https://evil.example")
    assert second_step(client, mfa_token, passkey=wrong_origin).status_code == 401

    # The challenge went with the failed answer: a right answer over it is refused too.
    right = authenticator.get(options)
    response = second_step(client, mfa_token, passkey=right)

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "rp id"),
        ({"verified": False}, "verif"),
    ],
)
def test_an_assertion_from_another_origin_or_rp_or_unverified_is_refused_and_audited(
    client: Any, how: dict[str, Any], reason: str
) -> None:
    user, token = signed_in_user(client, 1)
    authenticator, _ = register(client, token)

    response = sign_in_with(client, authenticator, "user1", **how)

    assert response.status_code == 401
    failures = [d or "" for k, d in events(user["id"]) if k == "mfa_failed"]
    assert len(failures) == 1
    assert reason in failures[0].lower(), failures


def test_a_counter_that_does_not_increase_is_refused_and_audited(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    authenticator, _ = register(client, token)
    assert sign_in_with(client, authenticator, "user1", counter=5).status_code == 200

    cloned = sign_in_with(client, authenticator, "user1", counter=5)
    backwards = sign_in_with(client, authenticator, "user1", counter=3)

    assert cloned.status_code == backwards.status_code == 401
    failures = [d or "" for k, d in events(user["id"]) if k == "mfa_failed"]
    assert len(failures) == 2
    assert all("sign count" in f for f in failures), failures
    assert sign_in_with(client, authenticator, "user1", counter=6).status_code == 200


def test_another_users_passkey_is_no_second_factor(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    register(client, token)
    _, other = signed_in_user(client, 2)
    theirs, _ = register(client, other)

    response = sign_in_with(client, theirs, "user1")

    assert response.status_code == 401
    failures = [d or "" for k, d in events(user["id"]) if k == "mfa_failed"]
    assert failures
    assert "credential of user" in failures[0]


def test_passkey_options_need_a_live_mfa_token(client: Any) -> None:
    response = client.post("/auth/token/mfa/passkey", json={"mfa_token": "x" * 43})

    assert response.status_code == 401


def test_rename_and_remove_a_passkey(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    _, passkey = register(client, token)
    path = f"/users/me/mfa/passkeys/{passkey['id']}"

    renamed = client.patch(path, json={"name": "Phone"}, headers=bearer(token))
    wrong = client.request(
        "DELETE", path, json={"current_password": "not it"}, headers=bearer(token)
    )
    removed = client.request(
        "DELETE", path, json={"current_password": PASSWORD}, headers=bearer(token)
    )

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Phone"
    assert wrong.status_code == 403
    assert removed.status_code == 204
    assert passkey_count() == 0
    assert ("mfa_removed", f"passkey {passkey['id']}") in events(user["id"])
    # The last factor gone: the password alone signs in again.
    assert sign_in(client, "user1").status_code == 200


def test_another_users_passkey_cannot_be_renamed_or_removed(client: Any) -> None:
    _, alice = signed_in_user(client, 1)
    _, passkey = register(client, alice)
    _, bob = signed_in_user(client, 2)
    path = f"/users/me/mfa/passkeys/{passkey['id']}"

    renamed = client.patch(path, json={"name": "Mine"}, headers=bearer(bob))
    removed = client.request(
        "DELETE", path, json={"current_password": PASSWORD}, headers=bearer(bob)
    )
    huge = client.patch(
        "/users/me/mfa/passkeys/99999999999", json={"name": "x"}, headers=bearer(bob)
    )

    assert renamed.status_code == removed.status_code == huge.status_code == 404
    assert passkey_count() == 1


def test_an_admins_reset_removes_passkeys(client: Any) -> None:
    user, token = signed_in_user(client, 1)
    register(client, token)
    register(client, token, name="Second")
    admin, admin_token = signed_in_user(client, 2)
    make_admin(admin["id"])

    response = client.delete(f"/users/{user['id']}/mfa", headers=bearer(admin_token))

    assert response.status_code == 204
    assert passkey_count() == 0
    assert sign_in(client, "user1").status_code == 200


def test_a_passkey_meets_the_admins_rule(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _admin, token = signed_in_user(client, 1, admin=True)
    monkeypatch.setattr(get_settings(), "require_mfa_for_admins", True)
    assert client.get("/users/", headers=bearer(token)).status_code == 403

    authenticator, _ = register(client, token)
    signed_in = sign_in_with(client, authenticator, "user1")

    assert signed_in.status_code == 200
    fresh = bearer(signed_in.json()["access_token"])
    assert client.get("/users/", headers=fresh).status_code == 200


def test_a_challenge_lives_five_minutes_and_is_then_purged(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = signed_in_user(client, 1)
    credential = SoftAuthenticator().create(registration_options(client, token))
    monkeypatch.setattr(CLOCK, "synchronize", lambda engine: CLOCK.offset)
    monkeypatch.setattr(CLOCK, "offset", CLOCK.offset + timedelta(minutes=5, seconds=1))

    late = client.post(
        "/users/me/mfa/passkeys",
        json={"name": "Mine", "credential": credential},
        headers=bearer(token),
    )
    registration_options(client, token)  # a live one, which the purge keeps
    purged = CliRunner().invoke(cli, ["purge-tokens"])

    assert late.status_code == 400
    assert passkey_count() == 0
    assert purged.exit_code == 0, purged.output
    with SessionLocal() as session:
        assert len(session.scalars(select(PasskeyChallenge.id)).all()) == 1


def test_a_passkey_only_account_may_make_recovery_codes_and_they_sign_in(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    register(client, token)

    made = client.post(
        "/users/me/mfa/recovery-codes", json={"current_password": PASSWORD}, headers=bearer(token)
    )

    assert made.status_code == 200, made.text
    codes = made.json()["recovery_codes"]
    status = client.get("/users/me/mfa", headers=bearer(token)).json()
    assert status == {"totp": False, "passkeys": 1, "recovery_codes_left": 10}
    signed_in = second_step(client, mfa_token_for(client, "user1"), recovery_code=codes[0])
    assert signed_in.status_code == 200


def test_removing_the_authenticator_keeps_passkeys_and_the_codes(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = StepClock(monkeypatch)
    _, token = signed_in_user(client, 1)
    enrol(client, token)
    clock.move(STEP)
    register(client, token)

    removed = client.request(
        "DELETE", "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(token)
    )

    assert removed.status_code == 204
    status = client.get("/users/me/mfa", headers=bearer(token)).json()
    assert status == {"totp": False, "passkeys": 1, "recovery_codes_left": 10}
    assert sign_in(client, "user1").status_code == 401  # the passkey is still a second factor
