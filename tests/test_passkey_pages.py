"""Passkeys on the hosted pages, as passkeys.js drives them (its two requests, here by hand):
/account/passkeys, "Sign in with a passkey", the second step with a passkey; the ID token's
amr and acr; and a client's acr_values asking for a second factor."""

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from tests.accounts import PASSWORD, sign_up, token_for
from tests.mfa import STEP, StepClock, enrol
from tests.oidc import (
    AuthRequest,
    exchange,
    form_of,
    redirected_params,
    register_rp,
    submit_sign_in,
)
from tests.passkeys import SoftAuthenticator, register
from tests.test_oidc_flow import id_token_claims as checked_id_token
from userbase.clock import utcnow
from userbase.database import SessionLocal
from userbase.models import Passkey, SecurityEvent

MFA = "urn:userbase:acr:mfa"


def id_token_claims(client: Any, token: str, client_id: str, nonce: str | None) -> Any:
    return checked_id_token(client, token, client_id, nonce, now=int(utcnow().timestamp()))


def passkey_form(page: Any) -> tuple[str, str, dict[str, str]]:
    """The passkey form of a page: its action, its options URL, its hidden fields."""
    match = re.search(
        r'<form method="post" action="([^"]*)"[^>]*data-passkey="(?:get|create)"\s*'
        r'data-options-url="([^"]*)">(.*?)</form>',
        page.text,
        re.DOTALL,
    )
    assert match, page.text
    action, options_url, body = match.groups()
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body))
    return action.replace("&amp;", "&"), options_url, hidden


def options_of(client: Any, url: str, fields: dict[str, str]) -> Any:
    return client.post(url, data={k: v for k, v in fields.items() if k != "credential"})


def signed_in_browser(client: Any, login: str = "user1") -> None:
    answer = submit_sign_in(client, client.get("/oauth/sign-in"), login)
    assert answer.status_code == 200, answer.text
    assert "You are signed in" in answer.text


def events(user_id: int) -> list[tuple[str, str | None]]:
    with SessionLocal() as session:
        rows = session.execute(
            select(SecurityEvent.kind, SecurityEvent.detail)
            .where(SecurityEvent.user_id == user_id)
            .order_by(SecurityEvent.id)
        )
        return [(kind, detail) for kind, detail in rows]


def passkey_sign_in(client: Any, page: Any, authenticator: SoftAuthenticator, **how: Any) -> Any:
    """ "Sign in with a passkey" on the sign-in page `page`, as passkeys.js does it."""
    action, options_url, hidden = passkey_form(page)
    options = options_of(client, options_url, hidden)
    assert options.status_code == 200, options.text
    credential = authenticator.get(options.json(), **how)
    return client.post(
        action, data={**hidden, "credential": json.dumps(credential)}, follow_redirects=False
    )


# /account/passkeys


def test_the_account_page_asks_a_signed_out_browser_to_sign_in(client: Any) -> None:
    page = client.get("/account/passkeys", follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"] == "/oauth/sign-in?return_to=/account/passkeys"


def test_a_passkey_is_added_listed_and_removed_on_the_account_page(client: Any) -> None:
    user = sign_up(client, 1)
    signed_in_browser(client)
    page = client.get("/account/passkeys")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    action, options_url, hidden = passkey_form(page)
    assert options_url == "/account/passkeys/registration"

    options = options_of(client, options_url, {**hidden, "current_password": PASSWORD})
    assert options.status_code == 200, options.text
    credential = SoftAuthenticator().create(options.json())
    added = client.post(
        action,
        data={**hidden, "name": "Laptop", "credential": json.dumps(credential)},
        follow_redirects=False,
    )

    assert added.status_code == 303
    listed = client.get(added.headers["location"])
    assert "Your passkey was added." in listed.text
    assert "<td>Laptop</td>" in listed.text
    with SessionLocal() as session:
        passkey_id = session.scalars(select(Passkey.id)).one()
    remove = f"/account/passkeys/{passkey_id}/delete"
    token = hidden["csrf_token"]
    wrong = client.post(remove, data={"csrf_token": token, "current_password": "not it"})
    assert wrong.status_code == 403
    removed = client.post(
        remove, data={"csrf_token": token, "current_password": PASSWORD}, follow_redirects=False
    )
    assert removed.status_code == 303
    assert "You have no passkeys yet." in client.get("/account/passkeys").text
    kinds = [kind for kind, _ in events(user["id"])]
    assert {"mfa_enrolment_started", "mfa_enabled", "mfa_removed"} <= set(kinds)


def test_the_account_pages_forms_need_their_csrf_token(client: Any) -> None:
    sign_up(client, 1)
    signed_in_browser(client)
    page = client.get("/account/passkeys")
    action, options_url, hidden = passkey_form(page)
    _authenticator, _ = register(client, token_for(client, "user1"))
    with SessionLocal() as session:
        passkey_id = session.scalars(select(Passkey.id)).one()

    options = client.post(options_url, data={"current_password": PASSWORD, "csrf_token": "x"})
    added = client.post(action, data={"name": "Mine", "credential": "{}", "csrf_token": "x"})
    removed = client.post(
        f"/account/passkeys/{passkey_id}/delete",
        data={"current_password": PASSWORD, "csrf_token": hidden["csrf_token"] + "0"},
    )

    assert options.status_code == 403
    assert options.headers["content-type"] == "application/problem+json"
    assert added.status_code == removed.status_code == 403
    with SessionLocal() as session:
        assert session.scalars(select(Passkey.id)).all() == [passkey_id]


def test_a_registration_from_another_origin_is_refused_on_the_page(client: Any) -> None:
    sign_up(client, 1)
    signed_in_browser(client)
    action, options_url, hidden = passkey_form(client.get("/account/passkeys"))
    options = options_of(client, options_url, {**hidden, "current_password": PASSWORD}).json()
    credential = SoftAuthenticator().create(options, origin="http://127.0.0.1:8000")

    answer = client.post(
        action, data={**hidden, "name": "Laptop", "credential": json.dumps(credential)}
    )

    assert answer.status_code == 400
    assert "The passkey was not accepted" in answer.text


# Sign in with a passkey, and the ID token's amr and acr


def test_sign_in_with_a_passkey_alone_and_the_id_token_says_swk_mfa(client: Any) -> None:
    user = sign_up(client, 1)
    authenticator, _ = register(client, token_for(client, "user1"))
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id, extra={"acr_values": MFA})

    page = client.get(request.url())
    assert page.status_code == 200
    done = passkey_sign_in(client, page, authenticator)

    params = redirected_params(done)
    tokens = exchange(client, rp, request, params["code"]).json()
    claims = id_token_claims(client, tokens["id_token"], rp.client_id, request.nonce)
    assert claims["amr"] == ["swk", "mfa"]
    assert claims["acr"] == MFA
    assert ("login_succeeded", "passkey") in events(user["id"])


def test_a_passkey_answer_from_another_origin_signs_nobody_in(client: Any) -> None:
    user = sign_up(client, 1)
    authenticator, _ = register(client, token_for(client, "user1"))

    refused = passkey_sign_in(
        client, client.get("/oauth/sign-in"), authenticator, origin="http://127.0.0.1:8000"
    )

    assert refused.status_code == 401
    assert "The passkey was not accepted" in refused.text
    assert "userbase_sso" not in refused.headers.get("set-cookie", "")
    failures = [d or "" for k, d in events(user["id"]) if k == "login_failed"]
    assert len(failures) == 1
    assert "origin" in failures[0]


def test_a_passkey_challenge_of_one_browser_serves_no_other(client: Any) -> None:
    sign_up(client, 1)
    authenticator, _ = register(client, token_for(client, "user1"))
    action, options_url, hidden = passkey_form(client.get("/oauth/sign-in"))
    credential = authenticator.get(options_of(client, options_url, hidden).json())

    client.cookies.clear()  # another browser, with a CSRF cookie (and token) of its own
    _, _, theirs = passkey_form(client.get("/oauth/sign-in"))
    answer = client.post(action, data={**theirs, "credential": json.dumps(credential)})

    assert answer.status_code == 401


def test_a_replayed_passkey_sign_in_is_refused(client: Any) -> None:
    sign_up(client, 1)
    authenticator, _ = register(client, token_for(client, "user1"))
    page = client.get("/oauth/sign-in")
    action, options_url, hidden = passkey_form(page)
    data = {
        **hidden,
        "credential": json.dumps(authenticator.get(options_of(client, options_url, hidden).json())),
    }
    assert client.post(action, data=data).status_code == 200

    assert client.post(action, data=data).status_code == 401


def test_the_passkey_sign_in_needs_its_csrf_token(client: Any) -> None:
    sign_up(client, 1)
    authenticator, _ = register(client, token_for(client, "user1"))
    action, options_url, hidden = passkey_form(client.get("/oauth/sign-in"))

    options = client.post(options_url, data={"csrf_token": "forged"})
    credential = authenticator.get(options_of(client, options_url, hidden).json())
    answer = client.post(
        action, data={"csrf_token": "forged", "credential": json.dumps(credential)}
    )

    assert options.status_code == 403
    assert answer.status_code == 401
    assert "userbase_sso" not in answer.headers.get("set-cookie", "")


# The second step with a passkey


def test_the_second_step_takes_a_passkey_and_the_id_token_says_pwd_swk_mfa(client: Any) -> None:
    sign_up(client, 1)
    authenticator, _ = register(client, token_for(client, "user1"))
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)

    asked = submit_sign_in(client, client.get(request.url()), "user1")
    assert asked.status_code == 200
    assert "Use a passkey" in asked.text
    assert 'name="code"' not in asked.text  # no authenticator app: no field for its code
    assert 'name="recovery_code"' in asked.text
    action, options_url, hidden = passkey_form(asked)
    assert options_url == "/oauth/sign-in/second-factor/passkey-options"
    options = options_of(client, options_url, hidden)
    assert options.status_code == 200, options.text
    credential = authenticator.get(options.json())
    done = client.post(
        action, data={**hidden, "credential": json.dumps(credential)}, follow_redirects=False
    )

    params = redirected_params(done)
    tokens = exchange(client, rp, request, params["code"]).json()
    claims = id_token_claims(client, tokens["id_token"], rp.client_id, request.nonce)
    assert claims["amr"] == ["pwd", "swk", "mfa"]
    assert claims["acr"] == MFA


def test_the_second_steps_passkey_options_need_the_csrf_token(client: Any) -> None:
    sign_up(client, 1)
    register(client, token_for(client, "user1"))
    asked = submit_sign_in(client, client.get("/oauth/sign-in"), "user1")
    _, options_url, hidden = passkey_form(asked)

    forged = client.post(options_url, data={**hidden, "csrf_token": "forged"})

    assert forged.status_code == 403


# acr_values


def test_a_password_sign_in_says_acr_pwd(client: Any) -> None:
    sign_up(client, 1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)

    params = redirected_params(submit_sign_in(client, client.get(request.url()), "user1"))

    tokens = exchange(client, rp, request, params["code"]).json()
    claims = id_token_claims(client, tokens["id_token"], rp.client_id, request.nonce)
    assert claims["acr"] == "urn:userbase:acr:pwd"
    assert claims["amr"] == ["pwd"]


def test_acr_values_mfa_for_an_account_without_a_second_factor_is_unmet(client: Any) -> None:
    sign_up(client, 1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id, extra={"acr_values": MFA})

    answer = submit_sign_in(client, client.get(request.url()), "user1")

    params = redirected_params(answer)
    assert params["error"] == "unmet_authentication_requirements"
    assert params["state"] == request.state
    assert "code" not in params
    # Already signed in with one factor: the next such request is refused at once.
    again = client.get(
        AuthRequest(rp.client_id, extra={"acr_values": MFA}).url(), follow_redirects=False
    )
    assert redirected_params(again)["error"] == "unmet_authentication_requirements"


def test_acr_values_mfa_asks_a_one_factor_browser_for_the_second_factor(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = StepClock(monkeypatch)
    sign_up(client, 1)
    signed_in_browser(client)  # one factor: the account had none then
    secret, _ = enrol(client, token_for(client, "user1"))
    clock.move(STEP)
    rp = register_rp(first_party=True)
    plain = client.get(AuthRequest(rp.client_id).url(), follow_redirects=False)
    assert plain.status_code == 302  # no acr_values: single sign-on as it is
    request = AuthRequest(rp.client_id, extra={"acr_values": f"{MFA} other:value"})

    page = client.get(request.url(), follow_redirects=False)
    assert page.status_code == 200
    assert 'name="password"' in page.text
    asked = submit_sign_in(client, page, "user1")
    assert 'name="code"' in asked.text
    from tests.mfa import code

    action, hidden = form_of(asked)
    done = client.post(action, data={**hidden, "code": code(secret)}, follow_redirects=False)

    params = redirected_params(done)
    tokens = exchange(client, rp, request, params["code"]).json()
    claims = id_token_claims(client, tokens["id_token"], rp.client_id, request.nonce)
    assert claims["acr"] == MFA
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_discovery_lists_the_acr_values(client: Any) -> None:
    document = client.get("/.well-known/openid-configuration").json()

    assert document["acr_values_supported"] == ["urn:userbase:acr:pwd", MFA]
    assert "acr" in document["claims_supported"]


def test_location_has_no_code_when_unmet(client: Any) -> None:
    sign_up(client, 1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id, extra={"acr_values": MFA, "prompt": "none"})
    signed_in_browser(client)

    answer = client.get(request.url(), follow_redirects=False)

    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["unmet_authentication_requirements"]


def test_signing_in_from_the_account_page_comes_back_to_it(client: Any) -> None:
    sign_up(client, 1)
    link = "/oauth/sign-in?return_to=/account/passkeys"

    answer = submit_sign_in(client, client.get(link), "user1")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/account/passkeys"
    assert "You have no passkeys yet." in client.get("/account/passkeys").text
