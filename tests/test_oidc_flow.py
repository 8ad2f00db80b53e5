"""The OpenID Connect provider in-process: discovery, the authorization endpoint's rules, the
hosted pages, consent, the code grant, the ID token and UserInfo. docs/oidc.md lists the
OpenID Foundation's Basic OP rules with the test of each."""

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from tests.accounts import PASSWORD, bearer
from tests.oidc import (
    ISSUER,
    LOGOUT_URI,
    REDIRECT_URI,
    AuthRequest,
    code_for,
    exchange,
    form_of,
    redirected_params,
    register_rp,
    submit_consent,
    submit_sign_in,
)
from tests.tokens import create_user, register_client
from userbase.config import get_settings
from userbase.database import SessionLocal
from userbase.models import (
    AuthorizationCode,
    BrowserSignIn,
    OutboxMail,
    SecurityEvent,
    Token,
    utcnow,
)
from userbase.oidc.browser import COOKIE


def id_token_claims(
    client: Any, token: str, client_id: str, nonce: str | None, *, now: int | None = None
) -> Any:
    """The ID token checked as a relying party checks it: signature against the published
    JWKS, then Authlib's rules for a code flow ID token (iss, aud, exp, iat, nonce), at `now`
    (this host's clock by default)."""
    keys = KeySet.import_key_set(client.get("/.well-known/jwks.json").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"value": ISSUER}, "aud": {"value": client_id}},
        {"nonce": nonce},
    )
    claims.validate(now=now)
    return claims


def test_discovery_document_is_valid_and_says_what_is_supported(client: Any) -> None:
    response = client.get("/.well-known/openid-configuration")
    document = response.json()

    OpenIDProviderMetadata(document).validate()  # Authlib's checks of Discovery 1.0 section 3
    assert document["issuer"] == ISSUER
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert client.get(urlsplit(document["jwks_uri"]).path).status_code == 200


def test_the_code_flow_signs_in_asks_consent_and_answers_an_id_token(client: Any) -> None:
    user_id = create_user(1)
    rp = register_rp()
    request = AuthRequest(rp.client_id)

    page = client.get(request.url(), follow_redirects=False)
    assert page.status_code == 200
    assert "Example RP" in page.text
    consent = submit_sign_in(client, page, "user1")
    assert consent.status_code == 200
    assert "Allow" in consent.text
    assert "See your email address" in consent.text
    params = redirected_params(submit_consent(client, consent))
    assert params["state"] == request.state
    assert params["iss"] == ISSUER  # RFC 9207
    tokens = exchange(client, rp, request, params["code"]).json()

    claims = id_token_claims(client, tokens["id_token"], rp.client_id, request.nonce)
    assert claims["sub"] == str(user_id)
    assert claims["nonce"] == request.nonce
    assert abs(claims["auth_time"] - utcnow().timestamp()) < 60
    assert claims["amr"] == ["pwd"]
    browser_sign_in = int(claims["sid"])
    with SessionLocal() as session:
        assert session.get(BrowserSignIn, browser_sign_in) is not None
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    assert claims["email"] == "user1@example.com"


def test_a_first_party_client_is_never_asked_for_consent(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    page = client.get(request.url(), follow_redirects=False)
    answer = submit_sign_in(client, page, "user1")
    assert "code" in redirected_params(answer)


def test_single_sign_on_a_second_authorization_asks_nothing(client: Any) -> None:
    create_user(1)
    first, second = register_rp(name="First"), register_rp(name="Second", first_party=True)
    code_for(client, AuthRequest(first.client_id), "user1")

    again = client.get(AuthRequest(first.client_id).url(), follow_redirects=False)
    assert "code" in redirected_params(again)  # consent remembered, no sign-in page
    other = client.get(AuthRequest(second.client_id).url(), follow_redirects=False)
    assert "code" in redirected_params(other)


def test_consent_is_remembered_listed_and_revocable(client: Any) -> None:
    create_user(1)
    rp = register_rp()
    request = AuthRequest(rp.client_id)
    tokens = exchange(client, rp, request, code_for(client, request, "user1")).json()
    access = tokens["access_token"]

    given = client.get("/users/me/consents", headers=bearer(access)).json()
    assert [(c["client_id"], c["scope"]) for c in given] == [(rp.client_id, "openid profile email")]
    # From another sign-in of the user's (revoking ends this client's sign-ins).
    own = client.post(
        "/auth/token", data={"username": "user1", "password": "correct horse battery"}
    )
    other = own.json()["access_token"]
    assert (
        client.delete(f"/users/me/consents/{rp.client_id}", headers=bearer(other)).status_code
        == 204
    )
    assert client.get("/oauth/userinfo", headers=bearer(access)).status_code == 401
    asked_again = client.get(AuthRequest(rp.client_id).url(), follow_redirects=False)
    assert asked_again.status_code == 200
    assert "Allow" in asked_again.text
    assert (
        client.delete(f"/users/me/consents/{rp.client_id}", headers=bearer(other)).status_code
        == 404
    )


def test_denying_consent_sends_access_denied_back(client: Any) -> None:
    create_user(1)
    rp = register_rp()
    request = AuthRequest(rp.client_id)
    page = submit_sign_in(client, client.get(request.url()), "user1")
    params = redirected_params(submit_consent(client, page, decision="deny"))
    assert params["error"] == "access_denied"
    assert params["state"] == request.state
    assert params["iss"] == ISSUER


def test_prompt_none_without_a_browser_sign_in_is_login_required(client: Any) -> None:
    rp = register_rp()
    request = AuthRequest(rp.client_id, extra={"prompt": "none"})
    params = redirected_params(client.get(request.url(), follow_redirects=False))
    assert params["error"] == "login_required"
    assert params["state"] == request.state
    assert params["iss"] == ISSUER


@pytest.mark.parametrize(
    ("parameter", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_a_request_object_is_refused_not_ignored(client: Any, parameter: str, error: str) -> None:
    rp = register_rp()
    # A request object could carry another redirect URI or scope: it is refused, never half-read.
    request = AuthRequest(rp.client_id, extra={parameter: "eyJhbGciOiJub25lIn0.e30."})
    params = redirected_params(client.get(request.url(), follow_redirects=False))
    assert params["error"] == error
    assert params["state"] == request.state
    assert params["iss"] == ISSUER


def test_prompt_none_needing_consent_is_consent_required(client: Any) -> None:
    create_user(1)
    code_for(client, AuthRequest(register_rp(first_party=True).client_id), "user1")
    third_party = register_rp(name="Third")
    request = AuthRequest(third_party.client_id, extra={"prompt": "none"})
    params = redirected_params(client.get(request.url(), follow_redirects=False))
    assert params["error"] == "consent_required"


def test_prompt_none_with_a_browser_sign_in_answers_at_once(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    code_for(client, AuthRequest(rp.client_id), "user1")
    request = AuthRequest(rp.client_id, extra={"prompt": "none"})
    assert "code" in redirected_params(client.get(request.url(), follow_redirects=False))


def test_prompt_login_asks_for_the_password_again_and_renews_auth_time(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    code_for(client, AuthRequest(rp.client_id), "user1")
    with SessionLocal.begin() as session:
        session.execute(
            update(BrowserSignIn).values(authenticated_at=utcnow() - timedelta(hours=1))
        )
    request = AuthRequest(rp.client_id, extra={"prompt": "login"})
    page = client.get(request.url(), follow_redirects=False)
    assert page.status_code == 200
    assert 'name="password"' in page.text
    code = redirected_params(submit_sign_in(client, page, "user1"))["code"]
    claims = id_token_claims(
        client, exchange(client, rp, request, code).json()["id_token"], rp.client_id, request.nonce
    )
    assert utcnow().timestamp() - claims["auth_time"] < 60


def test_max_age_past_asks_for_the_password_again(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    code_for(client, AuthRequest(rp.client_id), "user1")
    with SessionLocal.begin() as session:
        session.execute(
            update(BrowserSignIn).values(authenticated_at=utcnow() - timedelta(seconds=120))
        )

    fresh_enough = AuthRequest(rp.client_id, extra={"max_age": "3600"})
    assert "code" in redirected_params(client.get(fresh_enough.url(), follow_redirects=False))
    too_old = AuthRequest(rp.client_id, extra={"max_age": "60"})
    page = client.get(too_old.url(), follow_redirects=False)
    assert page.status_code == 200
    assert 'name="password"' in page.text
    code = redirected_params(submit_sign_in(client, page, "user1"))["code"]
    tokens = exchange(client, rp, too_old, code).json()
    claims = id_token_claims(client, tokens["id_token"], rp.client_id, too_old.nonce)
    assert utcnow().timestamp() - claims["auth_time"] < 60
    not_silently = AuthRequest(rp.client_id, extra={"max_age": "0", "prompt": "none"})
    with SessionLocal.begin() as session:
        session.execute(
            update(BrowserSignIn).values(authenticated_at=utcnow() - timedelta(seconds=5))
        )
    params = redirected_params(client.get(not_silently.url(), follow_redirects=False))
    assert params["error"] == "login_required"
    bad = AuthRequest(rp.client_id, extra={"max_age": "soon"})
    assert (
        redirected_params(client.get(bad.url(), follow_redirects=False))["error"]
        == "invalid_request"
    )


def test_login_hint_fills_the_username(client: Any) -> None:
    rp = register_rp()
    page = client.get(AuthRequest(rp.client_id, extra={"login_hint": "ada@example.com"}).url())
    assert 'value="ada@example.com"' in page.text


def test_an_unsupported_response_type_goes_back_as_an_error(client: Any) -> None:
    rp = register_rp()
    for response_type in ("token", "id_token", "code id_token"):
        request = AuthRequest(rp.client_id, extra={"response_type": response_type})
        params = redirected_params(client.get(request.url(), follow_redirects=False))
        assert params["error"] == "unsupported_response_type"
        assert params["state"] == request.state
        assert params["iss"] == ISSUER


def test_a_request_without_the_openid_scope_is_invalid_scope(client: Any) -> None:
    rp = register_rp()
    request = AuthRequest(rp.client_id, extra={"scope": "profile email"})
    assert (
        redirected_params(client.get(request.url(), follow_redirects=False))["error"]
        == "invalid_scope"
    )


def test_unknown_scopes_are_ignored_and_the_token_has_what_was_granted(client: Any) -> None:
    user_id = create_user(1)
    rp = register_rp(first_party=True, scope="read")
    request = AuthRequest(rp.client_id, extra={"scope": "openid read admin:everything"})
    tokens = exchange(client, rp, request, code_for(client, request, "user1")).json()
    assert tokens["scope"] == "openid read"
    userinfo = client.get("/oauth/userinfo", headers=bearer(tokens["access_token"])).json()
    assert userinfo == {"sub": str(user_id)}


def test_an_unknown_client_is_an_error_page_and_never_a_redirect(client: Any) -> None:
    for client_id in ("nobody", "", "x" * 500, "\u0000"):
        request = AuthRequest(client_id)
        page = client.get(request.url(), follow_redirects=False)
        assert page.status_code == 400, client_id
        assert "location" not in page.headers
        assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/callback",
        "https://rp.example.com/callback/../evil",
        "https://rp.example.com/callback?next=https://evil.example.com",
        "https://rp.example.com/callbackx",
        "https://rp.example.com/CALLBACK",
        "http://rp.example.com/callback",
        "https://rp.example.com.evil.example.com/callback",
        "",
    ],
)
def test_a_redirect_uri_not_registered_exactly_is_an_error_page(
    client: Any, redirect_uri: str
) -> None:
    rp = register_rp()
    request = AuthRequest(
        rp.client_id, extra={"redirect_uri": redirect_uri, "response_type": "token"}
    )
    for extra in ({}, {"response_type": "code"}, {"prompt": "none"}, {"scope": "email"}):
        request.extra.update(extra)
        page = client.get(request.url(), follow_redirects=False)
        assert page.status_code == 400
        assert "location" not in page.headers


def test_pkce_is_required_with_s256(client: Any) -> None:
    rp = register_rp(public=True)
    for extra in (
        {"code_challenge": "", "code_challenge_method": ""},
        {"code_challenge_method": ""},
        {"code_challenge_method": "plain"},
        {"code_challenge": "short"},
    ):
        request = AuthRequest(rp.client_id, extra=dict(extra))
        params = redirected_params(client.get(request.url(), follow_redirects=False))
        assert params["error"] == "invalid_request", extra


@pytest.mark.parametrize("public", [True, False])
def test_a_wrong_or_missing_code_verifier_is_refused_and_spends_the_code(
    client: Any, public: bool
) -> None:
    create_user(1)
    rp = register_rp(public=public, first_party=True)
    request = AuthRequest(rp.client_id)
    code = code_for(client, request, "user1")
    wrong = exchange(client, rp, request, code, code_verifier="w" * 43)
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    # The code is spent: the right verifier is too late now.
    assert exchange(client, rp, request, code).json()["error"] == "invalid_grant"
    request = AuthRequest(rp.client_id)
    code = code_for(client, request, "user1")
    missing = exchange(client, rp, request, code, code_verifier="")
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


def test_a_code_works_once_and_its_reuse_ends_what_it_gave(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    code = code_for(client, request, "user1")
    tokens = exchange(client, rp, request, code).json()
    assert client.get("/oauth/userinfo", headers=bearer(tokens["access_token"])).status_code == 200

    replay = exchange(client, rp, request, code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert client.get("/oauth/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    refreshed = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(rp.client_id, rp.client_secret),
    )
    assert refreshed.json()["error"] == "invalid_grant"
    with SessionLocal() as session:
        kinds = session.scalars(select(SecurityEvent.kind)).all()
    assert "authorization_code_reused" in kinds


def test_a_code_is_bound_to_its_client_and_redirect_uri_and_lives_60_seconds(client: Any) -> None:
    create_user(1)
    rp, other = register_rp(first_party=True), register_rp(first_party=True, name="Other")
    request = AuthRequest(rp.client_id)
    code = code_for(client, request, "user1")
    assert exchange(client, other, request, code).json()["error"] == "invalid_grant"
    wrong_uri = exchange(client, rp, request, code, redirect_uri=REDIRECT_URI + "/x")
    assert wrong_uri.json()["error"] == "invalid_grant"

    request = AuthRequest(rp.client_id)
    code = code_for(client, request, "user1")
    with SessionLocal() as session:
        row = session.scalars(
            select(AuthorizationCode).order_by(AuthorizationCode.id.desc())
        ).first()
        assert row is not None
        assert (row.expires_at - row.created_at).total_seconds() == 60
        assert row.code_hash != code  # stored as a digest
    with SessionLocal.begin() as session:
        session.execute(
            update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert exchange(client, rp, request, code).json()["error"] == "invalid_grant"


def test_userinfo_by_get_and_post_releases_what_the_scope_allows(client: Any) -> None:
    user_id = create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id, extra={"scope": "openid email"})
    access = exchange(client, rp, request, code_for(client, request, "user1")).json()[
        "access_token"
    ]

    by_get = client.get("/oauth/userinfo", headers=bearer(access))
    by_post = client.post("/oauth/userinfo", data={"access_token": access})
    expected = {"sub": str(user_id), "email": "user1@example.com", "email_verified": False}
    assert by_get.json() == expected
    assert by_post.json() == expected
    assert client.post("/oauth/userinfo", headers=bearer(access)).json() == expected


def test_userinfo_refuses_bad_tokens_as_rfc_6750_says(client: Any) -> None:
    create_user(1)
    for headers in ({}, bearer("nonsense"), bearer("a.b.c")):
        refused = client.get("/oauth/userinfo", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    # An access token of the password grant, without openid: not one for UserInfo.
    app = register_client(scope="read")
    token = client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "user1", "password": PASSWORD},
        auth=(app.client_id, app.client_secret),
    ).json()
    refused = client.get("/oauth/userinfo", headers=bearer(token["access_token"]))
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


def test_the_browser_sign_in_is_one_of_the_users_sessions_and_ends_from_there(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    tokens = exchange(client, rp, request, code_for(client, request, "user1")).json()
    own = client.post(
        "/auth/token", data={"username": "user1", "password": "correct horse battery"}
    )
    api = bearer(own.json()["access_token"])

    sessions = client.get("/users/me/sessions", headers=api).json()
    assert len(sessions) == 3  # the browser's, the client's through it, this token
    with SessionLocal() as session:
        browser_id = session.scalar(select(BrowserSignIn.sign_in_id))
    assert {s["id"]: s["kind"] for s in sessions}[browser_id] == "browser"
    assert sorted(s["kind"] for s in sessions) == ["bearer_token", "browser", "oauth_client"]
    assert client.delete(f"/users/me/sessions/{browser_id}", headers=api).status_code == 204

    assert client.get("/oauth/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    page = client.get(AuthRequest(rp.client_id).url(), follow_redirects=False)
    assert page.status_code == 200
    assert 'name="password"' in page.text
    current = next(s["id"] for s in sessions if s["current"])
    with SessionLocal() as session:
        assert session.scalars(select(Token.id)).all() == [current]


def test_the_browser_cookie_is_httponly_lax_and_secure_on_https(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    page = client.get(AuthRequest(rp.client_id).url())
    answer = submit_sign_in(client, page, "user1")
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # USERBASE_PUBLIC_URL is http://localhost here

    monkeypatch.setattr(get_settings(), "public_url", "https://id.example.com")
    client.cookies.clear()
    client.base_url = "https://testserver"  # a browser sends Secure cookies over https only
    page = client.get(AuthRequest(rp.client_id).url())
    answer = submit_sign_in(client, page, "user1")
    cookies = [*page.headers.get_list("set-cookie"), *answer.headers.get_list("set-cookie")]
    assert {c.split("=", 1)[0] for c in cookies} >= {COOKIE, "userbase_csrf"}
    assert all("Secure" in c for c in cookies), cookies
    assert parse_qs(urlsplit(answer.headers["location"]).query)["iss"] == ["https://id.example.com"]


def test_pages_forbid_framing_and_run_no_script_but_the_passkeys_file(client: Any) -> None:
    rp = register_rp()
    for path, scripts in (
        (AuthRequest(rp.client_id).url(), True),  # the sign-in page: "Sign in with a passkey"
        ("/oauth/authorize?client_id=nobody", False),
        ("/oauth/sign-in", True),
    ):
        page = client.get(path)
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        scripts_run = re.findall(r"<script[^>]*>", page.text)
        if scripts:  # only this origin's files, none inline (docs/mfa.md)
            assert "script-src 'self';" in csp
            assert scripts_run == ['<script src="/oauth/passkeys.js" defer>']
        else:
            assert "script-src" not in csp  # default-src 'none': no script at all
            assert scripts_run == []
    assert client.get("/oauth/pages.css").headers["content-type"].startswith("text/css")
    script = client.get("/oauth/passkeys.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "parseRequestOptionsFromJSON" in script.text


def test_the_sign_in_form_is_labelled_and_its_error_tied_to_the_fields(client: Any) -> None:
    create_user(1)
    rp = register_rp()
    page = client.get(AuthRequest(rp.client_id).url())
    assert '<label for="username">' in page.text
    assert '<label for="password">' in page.text
    assert '<html lang="en">' in page.text
    refused = submit_sign_in(client, page, "user1", "wrong password")
    assert refused.status_code == 401
    assert 'id="sign-in-error" class="error" role="alert"' in refused.text
    assert refused.text.count('aria-describedby="sign-in-error"') == 2
    assert refused.text.count('aria-invalid="true"') == 2
    action, hidden = form_of(refused)
    assert action.startswith("/oauth/sign-in?")
    assert hidden["csrf_token"]


def test_create_an_account_from_the_sign_in_page_then_sign_in(client: Any) -> None:
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    sign_in_page = client.get(request.url())
    assert 'href="/oauth/sign-up"' in sign_in_page.text
    query = request.url().split("?", 1)[1]
    page = client.get(f"/oauth/sign-up?{query}")
    action, hidden = form_of(page)
    assert action == f"/oauth/sign-up?{query}"

    short = client.post(
        action, data={**hidden, "username": "ada", "email": "ada@example.com", "password": "short"}
    )
    assert short.status_code == 422
    assert 'id="password-error"' in short.text
    assert 'aria-invalid="true"' in short.text
    assert 'aria-describedby="password-error password-hint"' in short.text
    made = client.post(
        action, data={**hidden, "username": "ada", "email": "ada@example.com", "password": PASSWORD}
    )
    assert made.status_code == 200
    assert "is ready" in made.text
    taken = client.post(
        action, data={**hidden, "username": "ADA", "email": "b@example.com", "password": PASSWORD}
    )
    assert taken.status_code == 409
    assert 'id="username-error"' in taken.text

    page = client.get(request.url())
    assert "code" in redirected_params(submit_sign_in(client, page, "ada"))


def test_forgot_password_from_the_sign_in_page_mails_a_link(client: Any) -> None:
    create_user(1)
    page = client.get("/oauth/forgot-password")
    action, hidden = form_of(page)
    sent = client.post(action, data={**hidden, "email": "user1@example.com"})
    unknown = client.post(action, data={**hidden, "email": "nobody@example.com"})
    assert sent.status_code == unknown.status_code == 200
    assert "on its way" in sent.text
    assert "on its way" in unknown.text
    with SessionLocal() as session:
        recipients = session.scalars(select(OutboxMail.recipient)).all()
    # user1's first mail verified the address at sign-up; the second is the reset link.
    assert sorted(recipients) == ["nobody@example.com", "user1@example.com", "user1@example.com"]
    forged = client.post(action, data={"csrf_token": "0" * 64, "email": "user1@example.com"})
    assert forged.status_code == 403


@pytest.mark.parametrize(
    "extra",
    [
        {"nonce": ""},
        {"scope": "email openid"},
        {"display": "popup", "ui_locales": "fr-CA", "claims_locales": "fr", "acr_values": "1"},
        {"id_token_hint": "ignored", "unknown_parameter": "x", "scope": "openid address phone"},
    ],
    ids=["without nonce", "other scope order", "display and locales", "unknown parameters"],
)
def test_requests_the_basic_op_plan_expects_to_succeed(client: Any, extra: dict[str, str]) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id, extra=dict(extra))
    tokens = exchange(client, rp, request, code_for(client, request, "user1")).json()
    nonce = request.nonce if extra.get("nonce") != "" else None
    claims = id_token_claims(client, tokens["id_token"], rp.client_id, nonce)
    assert ("nonce" in claims) == (nonce is not None)


def test_an_authorization_request_may_be_posted(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    page = client.post("/oauth/authorize", data=request.params(), follow_redirects=False)
    assert page.status_code == 200
    params = redirected_params(submit_sign_in(client, page, "user1"))
    assert exchange(client, rp, request, params["code"]).status_code == 200


def test_a_missing_response_type_goes_back_as_an_error(client: Any) -> None:
    rp = register_rp()
    request = AuthRequest(rp.client_id, extra={"response_type": ""})
    params = redirected_params(client.get(request.url(), follow_redirects=False))
    assert params["error"] == "unsupported_response_type"


def test_logout_with_an_id_token_hint_signs_out_at_once_and_goes_back(client: Any) -> None:
    create_user(1)
    rp = register_rp(first_party=True)
    request = AuthRequest(rp.client_id)
    tokens = exchange(client, rp, request, code_for(client, request, "user1")).json()
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": LOGOUT_URI,
        "state": "back-here",
    }
    done = client.get("/oauth/logout", params=params, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"{LOGOUT_URI}?state=back-here"
    assert f'{COOKIE}=""' in done.headers["set-cookie"]  # the cookie is deleted
    assert client.get("/oauth/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    with SessionLocal() as session:
        assert session.scalars(select(Token)).all() == []
        assert "logout" in session.scalars(select(SecurityEvent.kind)).all()
    # Once more, signed out already: no question, userbase's own page.
    again = client.get("/oauth/logout", follow_redirects=False)
    assert again.status_code == 200
    assert "You are signed out" in again.text


def test_an_operator_replaces_a_template_by_name(
    client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    (tmp_path / "error.html").write_text(
        '{% extends "base.html" %}{% block content %}<h1>ACME identity</h1>'
        "<p>{{ message }}</p>{% endblock %}"
    )
    monkeypatch.setattr(get_settings(), "templates_dir", tmp_path)
    page = client.get("/oauth/authorize?client_id=nobody&response_type=code")
    assert page.status_code == 400
    assert "<h1>ACME identity</h1>" in page.text
    assert (
        '<link rel="stylesheet" href="/oauth/pages.css">' in page.text
    )  # base.html: the package's
    assert "Sign in" in client.get("/oauth/sign-in").text  # the others stay


def test_a_public_url_on_plain_http_is_refused_by_the_authorization_endpoint(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "public_url", "http://id.example.com")
    rp = register_rp()
    page = client.get(AuthRequest(rp.client_id).url(), follow_redirects=False)
    assert page.status_code == 500
    assert "https" in page.text
    assert "location" not in page.headers


def test_prompt_consent_asks_again_though_the_consent_is_remembered(client: Any) -> None:
    create_user(1)
    rp = register_rp()
    code_for(client, AuthRequest(rp.client_id), "user1")
    request = AuthRequest(rp.client_id, extra={"prompt": "consent"})
    page = client.get(request.url(), follow_redirects=False)
    assert page.status_code == 200
    assert "Allow" in page.text
    assert "code" in redirected_params(submit_consent(client, page))
    # A first-party application is never asked, prompt=consent or not.
    own = register_rp(first_party=True, name="Own")
    asked = AuthRequest(own.client_id, extra={"prompt": "consent"}).url()
    assert "code" in redirected_params(client.get(asked, follow_redirects=False))
