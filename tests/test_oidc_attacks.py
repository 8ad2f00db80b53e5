"""Attacks on the hosted pages and the code flow: open redirects, CSRF on every form, session
fixation, guessing through the page (the throttle), code replay from two places at once,
and logout requests that would redirect or sign out on another's say."""

import threading
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from sqlalchemy import select

from tests.accounts import PASSWORD, bearer
from tests.conftest import LiveServer
from tests.oidc import (
    LOGOUT_URI,
    AuthRequest,
    code_for,
    exchange,
    form_of,
    redirected_params,
    register_rp,
    submit_consent,
    submit_sign_in,
)
from tests.tokens import create_user
from userbase.config import get_settings
from userbase.database import SessionLocal
from userbase.models import BrowserSignIn, SecurityEvent
from userbase.oidc.browser import COOKIE
from userbase.oidc.csrf import CSRF_COOKIE


def events() -> list[str]:
    with SessionLocal() as session:
        return list(session.scalars(select(SecurityEvent.kind).order_by(SecurityEvent.id)))


def test_sign_in_without_the_forms_csrf_token_signs_nobody_in(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    page = client.get(AuthRequest(rp.client_id).url())
    action, hidden = form_of(page)
    real = hidden["csrf_token"]
    for token in ("", "0" * 64, real[:-1] + ("1" if real.endswith("0") else "0")):
        forged = client.post(
            action,
            data={"csrf_token": token, "username": "user1", "password": PASSWORD},
            follow_redirects=False,
        )
        assert forged.status_code == 403
        assert COOKIE not in forged.headers.get("set-cookie", "")
    # Another browser's token (its own cookie, its own form) does not pass with this cookie.
    client.cookies.clear()
    client.cookies.set(CSRF_COOKIE, "another-browser-cookie", path="/oauth")
    replayed = client.post(
        action,
        data={**hidden, "username": "user1", "password": PASSWORD},
        follow_redirects=False,
    )
    assert replayed.status_code == 403
    assert "login_succeeded" not in events()


def test_consent_without_the_forms_csrf_token_gives_no_code(client: Any) -> None:
    create_user(1)
    rp = register_rp()
    page = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    action, _hidden = form_of(page)
    forged = client.post(action, data={"decision": "allow"}, follow_redirects=False)
    assert forged.status_code == 403
    assert "location" not in forged.headers
    assert "consent_granted" not in events()
    assert "code" in redirected_params(submit_consent(client, page))


def test_a_consent_token_serves_only_its_browser_sign_in(client: Any) -> None:
    create_user(1)
    create_user(2)
    rp = register_rp()
    page = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    action, hidden = form_of(page)
    # The same browser signs in as someone else: the old page's token is worth nothing now.
    again = client.get(AuthRequest(rp.client_id, extra={"prompt": "login"}).url())
    submit_sign_in(client, again, "user2")
    stale = client.post(action, data={**hidden, "decision": "allow"}, follow_redirects=False)
    assert stale.status_code == 403


def test_a_planted_browser_cookie_is_replaced_at_sign_in(client: Any) -> None:
    """Session fixation: the id the browser had before signing in is not the one after."""
    create_user(1)
    rp = register_rp(first_party=True)
    planted = "A" * 43
    client.cookies.set(COOKIE, planted)
    answer = submit_sign_in(client, client.get(AuthRequest(rp.client_id).url()), "user1")
    assert "code" in redirected_params(answer)
    issued = next(
        c.split(";")[0].split("=", 1)[1]
        for c in answer.headers.get_list("set-cookie")
        if c.startswith(f"{COOKIE}=")
    )
    assert issued != planted

    # The attacker's copy of the planted value signs nobody in.
    client.cookies.clear()
    client.cookies.set(COOKIE, planted)
    page = client.get(AuthRequest(rp.client_id).url())
    assert page.status_code == 200
    assert 'name="password"' in page.text


def test_signing_in_again_gives_a_new_browser_sign_in_id(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    code_for(client, AuthRequest(rp.client_id), "user1")
    first = client.cookies.get(COOKIE)
    page = client.get(AuthRequest(rp.client_id, extra={"prompt": "login"}).url())
    submit_sign_in(client, page, "user1")
    second = client.cookies.get(COOKIE)
    assert first != second
    with SessionLocal() as session:
        assert len(session.scalars(select(BrowserSignIn)).all()) == 1


def test_guessing_through_the_page_meets_the_throttle(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "login_account_limit", 3)
    create_user(1)
    rp = register_rp(first_party=True)
    page = client.get(AuthRequest(rp.client_id).url())
    unknown = submit_sign_in(client, page, "nobody", "guess")
    for _ in range(3):
        wrong = submit_sign_in(client, page, "user1", "guess")
        assert wrong.status_code == 401
    # Enumeration-safe: an unknown user reads exactly as a wrong password.
    assert "Incorrect username or password." in unknown.text
    assert "Incorrect username or password." in wrong.text

    locked = submit_sign_in(client, page, "user1", PASSWORD)  # the right password: too late
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in locked.text
    assert COOKIE not in locked.headers.get("set-cookie", "")
    assert events().count("login_failed") == 4
    assert events()[-1] == "login_throttled"


def test_a_code_used_from_two_places_at_once_gives_tokens_once(live_server: LiveServer) -> None:
    """Code replay with real concurrency: two exchanges race on a live server."""
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    with httpx.Client(base_url=live_server.url) as browser:
        code = code_for(browser, request, "user1")
    barrier = threading.Barrier(2)
    answers: list[httpx.Response] = []

    def use() -> None:
        with httpx.Client(base_url=live_server.url) as rp_server:
            barrier.wait()
            answers.append(exchange(rp_server, rp, request, code))

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 400]
    winner = next(answer for answer in answers if answer.status_code == 200).json()
    # Whoever came second, the tokens the first one got are dead.
    userinfo = httpx.get(
        f"{live_server.url}/oauth/userinfo", headers=bearer(winner["access_token"])
    )
    assert userinfo.status_code == 401


def test_logout_never_redirects_to_an_unregistered_address(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    id_token = exchange(client, rp, request, code_for(client, request, "user1")).json()["id_token"]
    for params in (
        {"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example.com/"},
        {"client_id": rp.client_id, "post_logout_redirect_uri": LOGOUT_URI + "/x"},
        {"post_logout_redirect_uri": LOGOUT_URI},  # no client named
        {"id_token_hint": id_token[:-4] + "AAAA", "post_logout_redirect_uri": LOGOUT_URI},
        {"id_token_hint": "not.a.token", "post_logout_redirect_uri": LOGOUT_URI},
    ):
        page = client.get(f"/oauth/logout?{urlencode(params)}", follow_redirects=False)
        assert page.status_code == 400, params
        assert "location" not in page.headers
    assert client.cookies.get(COOKIE)  # still signed in


def test_logout_without_a_hint_asks_first_and_its_form_needs_the_token(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    code_for(client, AuthRequest(rp.client_id), "user1")
    params = urlencode({"client_id": rp.client_id, "post_logout_redirect_uri": LOGOUT_URI})
    page = client.get(f"/oauth/logout?{params}", follow_redirects=False)
    assert page.status_code == 200
    assert "Sign out of userbase?" in page.text
    action, hidden = form_of(page)

    forged = client.post(action, data={"csrf_token": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
    still = client.get(AuthRequest(rp.client_id).url(), follow_redirects=False)
    assert "code" in redirected_params(still)  # a forged logout signed nobody out

    done = client.post(action, data=hidden, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == LOGOUT_URI
    assert "logout" in events()


@pytest.mark.parametrize(
    "path",
    [
        "/oauth/authorize?client_id=%00&response_type=code",
        '/oauth/authorize?response_type=code&redirect_uri=https://x.example.com/"\\&client_id={rp}',
        "/oauth/authorize?response_type=code&redirect_uri=https://rp.example.com/callback"
        "&client_id={rp}&scope=openid&nonce=%00&code_challenge_method=S256"
        "&code_challenge=" + "a" * 43,
        "/oauth/authorize?response_type=code&client_id={rp}&client_id={rp}"
        "&redirect_uri=https://rp.example.com/callback",
        "/oauth/logout?client_id=%00",
        "/oauth/logout?id_token_hint=%00.%00.%00",
        "/oauth/logout?id_token_hint=e30.e30.e30&post_logout_redirect_uri=x",
        "/oauth/sign-in?%00=%00",
    ],
)
def test_malformed_requests_are_refused_never_a_500(client: Any, path: str) -> None:
    rp = register_rp()
    answer = client.get(path.replace("{rp}", rp.client_id), follow_redirects=False)
    assert 200 <= answer.status_code < 500
    if answer.status_code in (302, 303):  # only ever to the registered address
        assert answer.headers["location"].startswith("https://rp.example.com/callback?")


def test_a_malformed_client_id_in_the_consents_api_is_404(client: Any) -> None:
    create_user(1)
    token = client.post("/auth/token", data={"username": "user1", "password": PASSWORD})
    headers = bearer(token.json()["access_token"])
    for client_id in ("%00", "x" * 300, "nobody"):
        assert client.delete(f"/users/me/consents/{client_id}", headers=headers).status_code == 404
