"""The code flow driven by a client library nobody here wrote: Authlib's OAuth 2 client finds
the endpoints by discovery, sends PKCE (S256) and a nonce, exchanges the code, and the ID
token is checked against the published JWKS with Authlib's ID token rules. The browser's
part is played by an HTTP client reading userbase's forms (tests/oidc.py)."""

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import LiveServer
from tests.oidc import REDIRECT_URI, form_of, register_rp
from tests.tokens import create_user

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def issuer(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url, public_url_is_own=True)
    yield server
    server.stop()


def browse_to_callback(browser: httpx.Client, url: str, login: str) -> str:
    """A person at a browser: opens the authorization URL, signs in, allows; the URL the
    browser is sent back to."""
    page = browser.get(url)
    while page.status_code == 200:
        action, hidden = form_of(page)
        fields = {"username": login, "password": "correct horse battery"}
        if "decision" in page.text:
            fields = {"decision": "allow"}
        page = browser.post(action, data={**hidden, **fields})
    assert page.status_code in (302, 303), page.text
    location: str = page.headers["location"]
    assert location.startswith(REDIRECT_URI)
    return location


def verified_id_token(
    metadata: dict[str, Any], token: dict[str, Any], client_id: str, nonce: str
) -> Any:
    keys = KeySet.import_key_set(httpx.get(metadata["jwks_uri"]).json())
    decoded = jwt.decode(
        token["id_token"], keys, algorithms=metadata["id_token_signing_alg_values_supported"]
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"value": metadata["issuer"]}, "aud": {"value": client_id}},
        {"nonce": nonce, "access_token": token["access_token"]},  # at_hash is checked too
    )
    claims.validate()
    return claims


@pytest.mark.parametrize("public", [False, True], ids=["web app", "single-page app"])
def test_authlibs_client_completes_the_code_flow_with_pkce(
    issuer: LiveServer, public: bool
) -> None:
    user_id = create_user(1)
    rp = register_rp(public=public)
    metadata = httpx.get(f"{issuer.url}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == issuer.url
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    options: dict[str, Any] = {"token_endpoint_auth_method": "none"} if public else {}
    with OAuth2Client(
        rp.client_id,
        rp.client_secret,
        scope="openid profile email",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        **options,
    ) as client:
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        with httpx.Client(base_url=issuer.url) as browser:
            callback = browse_to_callback(browser, url, "user1")
        token = client.fetch_token(
            metadata["token_endpoint"],
            authorization_response=callback,
            code_verifier=verifier,
            state=state,
        )
        claims = verified_id_token(metadata, token, rp.client_id, nonce)
        userinfo = client.get(metadata["userinfo_endpoint"]).json()
        refreshed = client.refresh_token(metadata["token_endpoint"])

    assert parse_qs(urlsplit(callback).query)["iss"] == [issuer.url]  # RFC 9207
    assert claims["sub"] == str(user_id) == userinfo["sub"]
    assert userinfo["preferred_username"] == "user1"
    assert userinfo["email"] == "user1@example.com"
    assert refreshed["access_token"] != token["access_token"]
