"""Set-up for the OpenID Connect tests: clients, PKCE, and a browser's way through the pages
(userbase's own HTML, read as a browser without JavaScript would: forms and links)."""

import html
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.accounts import PASSWORD
from tests.tokens import Registered
from userbase import audit
from userbase.database import SessionLocal
from userbase.tokens import clients

REDIRECT_URI = "https://rp.example.com/callback"
LOGOUT_URI = "https://rp.example.com/signed-out"
ISSUER = "http://localhost:8000"  # USERBASE_PUBLIC_URL's default, in-process tests


def register_rp(
    *,
    first_party: bool = False,
    public: bool = False,
    redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
    scope: str = "read",
    name: str = "Example RP",
) -> Registered:
    with SessionLocal.begin() as session:
        registered = clients.create_client(
            session,
            name=name,
            redirect_uris=list(redirect_uris),
            public=public,
            first_party=first_party,
            grant_types=["authorization_code", "refresh_token"],
            scope=scope,
            actor_id=None,
            context=audit.CLI,
            post_logout_redirect_uris=[LOGOUT_URI],
        )
        return Registered(registered.client.client_id, registered.client_secret)


@dataclass
class AuthRequest:
    """One authorization request of a relying party, with its PKCE verifier."""

    client_id: str
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    extra: dict[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile email",
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": create_s256_code_challenge(self.verifier),
            "code_challenge_method": "S256",
        }
        params.update(self.extra)
        return {key: value for key, value in params.items() if value != ""}

    def url(self) -> str:
        return f"/oauth/authorize?{urlencode(self.params())}"


def form_of(page: Any) -> tuple[str, dict[str, str]]:
    """The first form's action and hidden fields."""
    text = page.text
    action = html.unescape(re.search(r'<form method="post" action="([^"]*)"', text).group(1))  # type: ignore[union-attr]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', text))
    return action, hidden


def redirected_params(response: Any) -> dict[str, str]:
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def submit_sign_in(client: Any, page: Any, login: str, password: str = PASSWORD) -> Any:
    action, hidden = form_of(page)
    return client.post(
        action, data={**hidden, "username": login, "password": password}, follow_redirects=False
    )


def submit_consent(client: Any, page: Any, decision: str = "allow") -> Any:
    action, hidden = form_of(page)
    return client.post(action, data={**hidden, "decision": decision}, follow_redirects=False)


def code_for(client: Any, request: AuthRequest, login: str, *, consent: bool = True) -> str:
    """Sign in on the page (and consent) for `request`; the code it comes back with."""
    page = client.get(request.url(), follow_redirects=False)
    if page.status_code == 200:
        page = submit_sign_in(client, page, login)
    if page.status_code == 200 and consent:
        page = submit_consent(client, page)
    params = redirected_params(page)
    assert params["state"] == request.state
    assert params["iss"] == ISSUER
    return params["code"]


def exchange(
    client: Any, registered: Registered, request: AuthRequest, code: str, **over: str
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": request.verifier,
        "client_id": registered.client_id,
    }
    if registered.client_secret:
        data["client_secret"] = registered.client_secret
    data.update(over)
    return client.post("/oauth/token", data={k: v for k, v in data.items() if v != ""})


def user_password() -> str:
    return PASSWORD
