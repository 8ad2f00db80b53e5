"""Signing in with a second factor: the mfa_token of the first step, codes made by pyotp as an
authenticator app makes them, recovery codes; and what an attacker with the password tries."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.accounts import PASSWORD, bearer, sign_in, signed_in_user
from tests.mfa import STEP, StepClock, code, enrol, mfa_token_for, second_step
from userbase.config import get_settings
from userbase.database import SessionLocal
from userbase.models import SecurityEvent


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    return StepClock(monkeypatch)


def enrolled(client: Any, n: int | str = 1) -> tuple[dict[str, Any], str, list[str]]:
    user, token = signed_in_user(client, n)
    secret, codes = enrol(client, token)
    return user, secret, codes


def details(kind: str) -> list[str | None]:
    with SessionLocal() as session:
        return list(
            session.scalars(
                select(SecurityEvent.detail)
                .where(SecurityEvent.kind == kind)
                .order_by(SecurityEvent.id)
            )
        )


def test_the_right_password_answers_401_mfa_required_and_no_token(
    client: Any, clock: StepClock
) -> None:
    enrolled(client)

    response = sign_in(client, "user1")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["mfa_required"] is True
    assert body["expires_in"] == 300
    assert "access_token" not in body
    assert "userbase_device" not in response.cookies
    # The mfa_token grants no access.
    assert client.get("/users/me", headers=bearer(body["mfa_token"])).status_code == 401
    assert details("mfa_required") == [None]


def test_a_wrong_password_is_the_same_401_as_without_a_second_factor(
    client: Any, clock: StepClock
) -> None:
    enrolled(client)

    response = sign_in(client, "user1", "not the password")

    assert response.status_code == 401
    assert "mfa_required" not in response.json()


def test_a_code_from_the_authenticator_finishes_the_sign_in(client: Any, clock: StepClock) -> None:
    _, secret, _ = enrolled(client)
    mfa_token = mfa_token_for(client, "user1")

    response = second_step(client, mfa_token, code=code(secret, 1))

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert client.get("/users/me", headers=bearer(body["access_token"])).json()["username"] == (
        "user1"
    )
    assert "userbase_device" in response.cookies
    assert details("login_succeeded")[-1] == "second_factor=totp"


def test_a_code_is_accepted_once_and_no_earlier_code_after_it(
    client: Any, clock: StepClock
) -> None:
    _, secret, _ = enrolled(client)
    clock.move(STEP)
    used = second_step(client, mfa_token_for(client, "user1"), code=code(secret))

    replayed = second_step(client, mfa_token_for(client, "user1"), code=code(secret))
    earlier = second_step(client, mfa_token_for(client, "user1"), code=code(secret, -1))
    clock.move(STEP)
    next_step = second_step(client, mfa_token_for(client, "user1"), code=code(secret))

    assert used.status_code == 200
    assert replayed.status_code == 401
    assert earlier.status_code == 401
    assert next_step.status_code == 200


def test_one_step_of_clock_drift_either_way_is_accepted_two_are_not(
    client: Any, clock: StepClock
) -> None:
    _, secret, _ = enrolled(client)  # confirmed with the code of step s
    clock.move(3 * STEP)  # now s + 3; s + 1 and s + 5 are two steps away, never used

    two_behind = second_step(client, mfa_token_for(client, "user1"), code=code(secret, -2))
    two_ahead = second_step(client, mfa_token_for(client, "user1"), code=code(secret, 2))
    one_behind = second_step(client, mfa_token_for(client, "user1"), code=code(secret, -1))
    one_ahead = second_step(client, mfa_token_for(client, "user1"), code=code(secret, 1))
    # s + 4 was accepted: the code of now (s + 3) is older, so it is no longer.
    now = second_step(client, mfa_token_for(client, "user1"), code=code(secret))

    assert (two_behind.status_code, two_ahead.status_code) == (401, 401)
    assert (one_behind.status_code, one_ahead.status_code) == (200, 200)
    assert now.status_code == 401


def test_five_wrong_codes_spend_the_mfa_token(client: Any, clock: StepClock) -> None:
    _, secret, _ = enrolled(client)
    mfa_token = mfa_token_for(client, "user1")
    right = code(secret, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    answers = [second_step(client, mfa_token, code=wrong) for _ in range(5)]
    after = second_step(client, mfa_token, code=right)

    assert [a.status_code for a in answers] == [401] * 5
    assert [a.json()["attempts_left"] for a in answers] == [4, 3, 2, 1, 0]
    assert after.status_code == 401
    assert "invalid" in after.json()["detail"]
    assert details("mfa_failed") == ["totp"] * 5
    # A new sign-in takes the code that the spent token refused.
    assert second_step(client, mfa_token_for(client, "user1"), code=right).status_code == 200


def test_wrong_codes_count_in_the_accounts_throttle_across_mfa_tokens(
    client: Any, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stolen password does not buy a fresh set of guesses with each new mfa_token."""
    monkeypatch.setattr(get_settings(), "login_account_limit", 6)
    _, secret, _ = enrolled(client)
    client.cookies.clear()  # the attacker's client never signed in to the account
    right = code(secret, 1)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    first = mfa_token_for(client, "user1")
    statuses = [second_step(client, first, code=wrong).status_code for _ in range(5)]
    second = mfa_token_for(client, "user1")  # the right password does not reset the count
    statuses.append(second_step(client, second, code=wrong).status_code)
    throttled = second_step(client, second, code=right)
    password_step = sign_in(client, "user1")

    assert statuses == [401] * 6
    assert throttled.status_code == 429  # even the right code, while the limit holds
    assert int(throttled.headers["retry-after"]) > 0
    assert password_step.status_code == 429


def test_an_mfa_token_is_spent_by_its_sign_in(client: Any, clock: StepClock) -> None:
    _, secret, codes = enrolled(client)
    mfa_token = mfa_token_for(client, "user1")
    assert second_step(client, mfa_token, code=code(secret, 1)).status_code == 200

    again = second_step(client, mfa_token, recovery_code=codes[0])

    assert again.status_code == 401


def test_an_mfa_token_expires_after_five_minutes(client: Any, clock: StepClock) -> None:
    _, secret, _ = enrolled(client)
    mfa_token = mfa_token_for(client, "user1")
    clock.move(timedelta(minutes=5, seconds=1))

    late = second_step(client, mfa_token, code=code(secret))

    assert late.status_code == 401


def test_an_mfa_token_signs_in_its_own_user_only(client: Any, clock: StepClock) -> None:
    _, secret_a, _ = enrolled(client, "a")
    _, secret_b, codes_b = enrolled(client, "b")
    token_a = mfa_token_for(client, "usera")

    with_bs_code = second_step(client, token_a, code=code(secret_b, 1))
    with_bs_recovery_code = second_step(client, token_a, recovery_code=codes_b[0])
    signed_in = second_step(client, token_a, code=code(secret_a, 1))

    assert with_bs_code.status_code == 401
    assert with_bs_recovery_code.status_code == 401
    me = client.get("/users/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.json()["username"] == "usera"
    # B's recovery code was not spent by the attempt on A's sign-in.
    assert (
        second_step(client, mfa_token_for(client, "userb"), recovery_code=codes_b[0]).status_code
        == 200
    )


def test_a_recovery_code_signs_in_once_typed_any_way(client: Any, clock: StepClock) -> None:
    _, _, codes = enrolled(client)
    typed = codes[0].upper().replace("-", " ")

    first = second_step(client, mfa_token_for(client, "user1"), recovery_code=typed)
    reused = second_step(client, mfa_token_for(client, "user1"), recovery_code=codes[0])
    other = second_step(client, mfa_token_for(client, "user1"), recovery_code=codes[1])

    assert (first.status_code, reused.status_code, other.status_code) == (200, 401, 200)
    token = other.json()["access_token"]
    assert client.get("/users/me/mfa", headers=bearer(token)).json()["recovery_codes_left"] == 8
    assert details("login_succeeded")[-1] == "second_factor=recovery_code"
    assert details("mfa_failed")[-1] == "recovery_code"


def test_the_second_step_takes_one_code_in_a_valid_shape(client: Any, clock: StepClock) -> None:
    _, secret, codes = enrolled(client)
    mfa_token = mfa_token_for(client, "user1")

    both = second_step(client, mfa_token, code=code(secret, 1), recovery_code=codes[0])
    neither = second_step(client, mfa_token)
    letters = second_step(client, mfa_token, code="12345a")

    assert (both.status_code, neither.status_code, letters.status_code) == (422, 422, 422)
    assert second_step(client, "x" * 43, code=code(secret, 1)).status_code == 401
    assert second_step(client, mfa_token, code=code(secret, 1)).status_code == 200


def test_a_user_deactivated_meanwhile_cannot_finish(client: Any, clock: StepClock) -> None:
    user, secret, _ = enrolled(client)
    _, admin = signed_in_user(client, "admin", admin=True)
    mfa_token = mfa_token_for(client, "user1")
    deactivated = client.patch(
        f"/users/{user['id']}", json={"is_active": False}, headers=bearer(admin)
    )
    assert deactivated.status_code == 200

    assert second_step(client, mfa_token, code=code(secret, 1)).status_code == 401


def test_users_without_a_second_factor_sign_in_as_before(client: Any) -> None:
    signed_in_user(client, 1)

    response = client.post("/auth/token", data={"username": "user1", "password": PASSWORD})

    assert response.status_code == 200
    assert "access_token" in response.json()
