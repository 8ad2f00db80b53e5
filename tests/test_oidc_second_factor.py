"""The hosted sign-in page's second step (issue 19): an account with an authenticator signs in
with its password, then a code of the app (or a recovery code), and the ID token says how."""

from typing import Any

import pytest

from tests.accounts import sign_up, token_for
from tests.mfa import STEP, StepClock, code, enrol
from tests.oidc import (
    AuthRequest,
    exchange,
    form_of,
    redirected_params,
    register_rp,
    submit_sign_in,
)
from tests.test_oidc_flow import id_token_claims as checked_id_token
from userbase.clock import utcnow


def id_token_claims(client: Any, token: str, client_id: str, nonce: str | None) -> Any:
    """test_oidc_flow's check, at userbase's clock (StepClock moved it a step ahead)."""
    return checked_id_token(client, token, client_id, nonce, now=int(utcnow().timestamp()))


@pytest.fixture
def enrolled(client: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str], StepClock]:
    """user1 with an authenticator app: its secret and recovery codes, and the step clock."""
    clock = StepClock(monkeypatch)
    sign_up(client, 1)
    secret, recovery = enrol(client, token_for(client, "user1"))
    clock.move(STEP)  # enrolling used this step's code: a code is taken once
    return secret, recovery, clock


def submit_second_factor(client: Any, page: Any, **code_or_recovery_code: str) -> Any:
    action, hidden = form_of(page)
    return client.post(action, data={**hidden, **code_or_recovery_code}, follow_redirects=False)


def test_the_page_asks_for_the_code_and_the_id_token_says_otp(client: Any, enrolled: Any) -> None:
    secret, _codes, _clock = enrolled
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)

    asked = submit_sign_in(client, client.get(request.url()), "user1")

    assert asked.status_code == 200
    assert 'name="code"' in asked.text
    assert 'name="password"' not in asked.text
    assert "userbase_sso" not in asked.headers.get("set-cookie", "")  # not signed in yet
    done = submit_second_factor(client, asked, code=code(secret))
    params = redirected_params(done)
    tokens = exchange(client, rp, request, params["code"]).json()
    claims = id_token_claims(client, tokens["id_token"], rp.client_id, request.nonce)
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_a_recovery_code_signs_in_once_and_says_mfa(client: Any, enrolled: Any) -> None:
    _secret, recovery, _clock = enrolled
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    asked = submit_sign_in(client, client.get(request.url()), "user1")

    params = redirected_params(submit_second_factor(client, asked, recovery_code=recovery[0]))
    claims = id_token_claims(
        client,
        exchange(client, rp, request, params["code"]).json()["id_token"],
        rp.client_id,
        request.nonce,
    )
    assert claims["amr"] == ["pwd", "mfa"]

    client.cookies.clear()
    again = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    refused = submit_second_factor(client, again, recovery_code=recovery[0])
    assert refused.status_code == 401
    assert 'name="code"' in refused.text  # asked again, the same waiting sign-in


def test_a_wrong_code_asks_again_and_five_spend_the_waiting_sign_in(
    client: Any, enrolled: Any
) -> None:
    secret, _codes, _clock = enrolled
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    page = submit_sign_in(client, client.get(request.url()), "user1")
    wrong = "000000" if code(secret) != "000000" else "111111"

    for _ in range(5):
        page = submit_second_factor(client, page, code=wrong)
        assert page.status_code == 401
    assert 'name="code"' in page.text
    # The fifth wrong code spent the waiting sign-in: even the right code goes back to the password.
    spent = submit_second_factor(client, page, code=code(secret))
    assert spent.status_code == 401
    assert 'name="password"' in spent.text


def test_a_replayed_code_is_refused_on_the_page(client: Any, enrolled: Any) -> None:
    secret, _codes, _clock = enrolled
    rp = register_rp(first_party=True)
    first = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    used = code(secret)
    redirected_params(submit_second_factor(client, first, code=used))

    client.cookies.clear()
    second = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    replayed = submit_second_factor(client, second, code=used)
    assert replayed.status_code == 401
    assert "not correct" in replayed.text


def test_the_second_step_needs_its_form_token(client: Any, enrolled: Any) -> None:
    secret, _codes, _clock = enrolled
    rp = register_rp(first_party=True)
    page = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    action, hidden = form_of(page)

    forged = client.post(
        action,
        data={**hidden, "csrf_token": "forged", "code": code(secret)},
        follow_redirects=False,
    )

    assert forged.status_code == 403
    assert "userbase_sso" not in forged.headers.get("set-cookie", "")


def test_an_account_without_a_factor_signs_in_with_its_password_alone(client: Any) -> None:
    sign_up(client, 2)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    params = redirected_params(submit_sign_in(client, client.get(request.url()), "user2"))
    claims = id_token_claims(
        client,
        exchange(client, rp, request, params["code"]).json()["id_token"],
        rp.client_id,
        request.nonce,
    )
    assert claims["amr"] == ["pwd"]


def test_the_second_step_offers_only_what_the_account_has(client: Any, enrolled: Any) -> None:
    """An authenticator app and recovery codes, no passkey: no passkey button (and no script)
    on the page, asked first and asked again after a wrong code."""
    rp = register_rp(first_party=True)
    asked = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    again = submit_second_factor(client, asked, code="000000")

    for page in (asked, again):
        assert 'name="code"' in page.text
        assert 'name="recovery_code"' in page.text
        assert "Use a passkey" not in page.text
        assert "passkeys.js" not in page.text
        assert "script-src" not in page.headers["content-security-policy"]
    assert again.status_code == 401
