"""The token endpoint, driven by a real OAuth client library (Authlib's httpx client) against a
live server: the grants, rotation, reuse detection, client authentication, revocation and
introspection, and userbase's own API taking the JWT access tokens."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx2 as httpx
import pytest
from authlib.integrations.httpx_client import OAuthError
from pydantic import ValidationError
from sqlalchemy import select, update

from tests.accounts import PASSWORD, bearer
from tests.conftest import LiveServer
from tests.tokens import Registered, create_user, oauth_client, register_client, signed_in
from userbase.config import Settings
from userbase.database import SessionLocal
from userbase.models import RefreshToken, SecurityEvent, Token


def me(server: LiveServer, access_token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/users/me", headers=bearer(access_token))


def test_a_first_party_client_signs_in_and_userbase_takes_its_jwt(
    live_server: LiveServer,
) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)

    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["scope"] == "read write"
    assert token["access_token"].count(".") == 2
    assert len(token["refresh_token"]) == 43
    assert me(live_server, token["access_token"]).json()["username"] == "user1"


def test_each_refresh_rotates_the_refresh_token(live_server: LiveServer) -> None:
    app = register_client()
    first = signed_in(live_server.url, app)

    with oauth_client(app) as client:
        second = client.refresh_token(
            f"{live_server.url}/oauth/token", refresh_token=first["refresh_token"]
        )
        third = client.refresh_token(
            f"{live_server.url}/oauth/token", refresh_token=second["refresh_token"]
        )

    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert me(live_server, third["access_token"]).status_code == 200
    # Stored as digests: no refresh token appears in the table.
    with SessionLocal() as session:
        stored = set(session.scalars(select(RefreshToken.token_hash)))
    assert not stored & {first["refresh_token"], second["refresh_token"], third["refresh_token"]}


def test_reusing_a_spent_refresh_token_ends_the_whole_sign_in_and_is_audited(
    live_server: LiveServer,
) -> None:
    app = register_client()
    first = signed_in(live_server.url, app)
    url = f"{live_server.url}/oauth/token"
    with oauth_client(app) as client:
        second = client.refresh_token(url, refresh_token=first["refresh_token"])

        # An attacker replays the first one...
        with pytest.raises(OAuthError) as refused:
            client.refresh_token(url, refresh_token=first["refresh_token"])
        assert refused.value.error == "invalid_grant"

        # ...and the legitimate holder's newer tokens die with it.
        with pytest.raises(OAuthError):
            client.refresh_token(url, refresh_token=second["refresh_token"])
    assert me(live_server, second["access_token"]).status_code == 401
    with SessionLocal() as session:
        kinds = session.scalars(select(SecurityEvent.kind)).all()
    assert "refresh_token_reused" in kinds


def test_a_refresh_narrows_the_scope_of_its_access_token_never_of_the_sign_in(
    live_server: LiveServer,
) -> None:
    app = register_client()
    first = signed_in(live_server.url, app)
    url = f"{live_server.url}/oauth/token"
    with oauth_client(app) as client:
        narrowed = client.refresh_token(url, refresh_token=first["refresh_token"], scope="read")
        assert narrowed["scope"] == "read"
        with pytest.raises(OAuthError) as refused:
            client.refresh_token(url, refresh_token=narrowed["refresh_token"], scope="read admin")
        assert refused.value.error == "invalid_scope"
        # The refused request did not spend the refresh token, which keeps the full scope.
        again = client.refresh_token(url, refresh_token=narrowed["refresh_token"])
    assert again["scope"] == "read write"


# Clients racing with one refresh token (two browser tabs, or a thief and the owner).
USES = 4


def test_concurrent_uses_of_one_refresh_token_at_most_one_succeeds(
    live_server: LiveServer,
) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    start = threading.Barrier(USES)
    outcomes: list[Any] = []

    def use() -> None:
        with oauth_client(app) as client:
            start.wait()
            try:
                outcomes.append(
                    client.refresh_token(
                        f"{live_server.url}/oauth/token", refresh_token=token["refresh_token"]
                    )
                )
            except OAuthError as exc:
                outcomes.append(exc)

    threads = [threading.Thread(target=use) for _ in range(USES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    succeeded = [outcome for outcome in outcomes if not isinstance(outcome, OAuthError)]
    assert len(outcomes) == USES
    assert len(succeeded) <= 1
    assert any(isinstance(o, OAuthError) and o.error == "invalid_grant" for o in outcomes)
    # The second use was a reuse: the sign-in is over, the winner's tokens too.
    for winner in succeeded:
        assert me(live_server, winner["access_token"]).status_code == 401


def test_client_credentials_gives_a_service_token_without_refresh(
    live_server: LiveServer,
) -> None:
    service = register_client(grants=("client_credentials",), first_party=False, scope="audit")
    with oauth_client(service) as client:
        token = client.fetch_token(
            f"{live_server.url}/oauth/token", grant_type="client_credentials"
        )
        assert token["scope"] == "audit"
        assert "refresh_token" not in token
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(
                f"{live_server.url}/oauth/token", grant_type="client_credentials", scope="admin"
            )
    assert refused.value.error == "invalid_scope"
    # It names no user: userbase's own user API refuses it.
    assert me(live_server, token["access_token"]).status_code == 401


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_confidential_clients_authenticate_either_way(live_server: LiveServer, method: str) -> None:
    app = register_client()
    create_user(1)
    with oauth_client(app, token_endpoint_auth_method=method) as client:
        token = client.fetch_token(
            f"{live_server.url}/oauth/token", username="user1", password=PASSWORD
        )
    assert me(live_server, token["access_token"]).status_code == 200


@pytest.mark.parametrize(
    ("secret", "method"), [("not-the-secret", "client_secret_basic"), (None, "none")]
)
def test_a_wrong_or_missing_secret_is_invalid_client(
    live_server: LiveServer, secret: str | None, method: str
) -> None:
    app = register_client()
    create_user(1)
    impostor = Registered(app.client_id, secret)
    with (
        oauth_client(impostor, token_endpoint_auth_method=method) as client,
        pytest.raises(OAuthError) as refused,
    ):
        client.fetch_token(f"{live_server.url}/oauth/token", username="user1", password=PASSWORD)
    assert refused.value.error == "invalid_client"


def test_a_public_client_authenticates_with_none_and_refreshes(live_server: LiveServer) -> None:
    spa = register_client(public=True)
    assert spa.client_secret is None
    token = signed_in(live_server.url, spa)
    with oauth_client(spa) as client:  # Authlib picks "none" for a client without a secret
        refreshed = client.refresh_token(
            f"{live_server.url}/oauth/token", refresh_token=token["refresh_token"]
        )
    assert me(live_server, refreshed["access_token"]).status_code == 200


def test_a_third_party_client_cannot_use_the_password_grant(live_server: LiveServer) -> None:
    third_party = register_client(grants=("authorization_code", "refresh_token"), first_party=False)
    create_user(1)
    with oauth_client(third_party) as client, pytest.raises(OAuthError) as refused:
        client.fetch_token(f"{live_server.url}/oauth/token", username="user1", password=PASSWORD)
    assert refused.value.error == "unauthorized_client"


def test_a_wrong_password_is_invalid_grant(live_server: LiveServer) -> None:
    app = register_client()
    create_user(1)
    with oauth_client(app) as client, pytest.raises(OAuthError) as refused:
        client.fetch_token(
            f"{live_server.url}/oauth/token", username="user1", password="wrong password"
        )
    assert refused.value.error == "invalid_grant"


def test_revoking_a_refresh_token_reaches_userbases_api_at_once(live_server: LiveServer) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    assert me(live_server, token["access_token"]).status_code == 200

    with oauth_client(app) as client:
        response = client.revoke_token(
            f"{live_server.url}/oauth/revoke",
            token=token["refresh_token"],
            token_type_hint="refresh_token",
        )
    assert response.status_code == 200
    # The access token is still within its 5 minutes, but its sign-in is over.
    assert me(live_server, token["access_token"]).status_code == 401


def test_revoking_an_access_token_ends_its_sign_in(live_server: LiveServer) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    with oauth_client(app) as client:
        assert (
            client.revoke_token(
                f"{live_server.url}/oauth/revoke", token=token["access_token"]
            ).status_code
            == 200
        )
        with pytest.raises(OAuthError):
            client.refresh_token(
                f"{live_server.url}/oauth/token", refresh_token=token["refresh_token"]
            )
    assert me(live_server, token["access_token"]).status_code == 401


def test_signing_out_with_a_jwt_ends_the_sign_in(live_server: LiveServer) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    response = httpx.post(f"{live_server.url}/auth/logout", headers=bearer(token["access_token"]))
    assert response.status_code == 204
    assert me(live_server, token["access_token"]).status_code == 401


def test_introspection_says_live_then_not(live_server: LiveServer) -> None:
    app = register_client()
    resource_server = register_client(grants=("client_credentials",), first_party=False)
    token = signed_in(live_server.url, app)
    url = f"{live_server.url}/oauth/introspect"
    with oauth_client(resource_server) as client:
        access = client.introspect_token(url, token=token["access_token"]).json()
        refresh = client.introspect_token(url, token=token["refresh_token"]).json()
        assert access["active"] is True
        assert access["sub"] == refresh["sub"]
        assert access["client_id"] == app.client_id
        assert access["scope"] == "read write"
        assert refresh["active"] is True
        assert refresh["token_type"] == "refresh_token"

        httpx.post(f"{live_server.url}/auth/logout", headers=bearer(token["access_token"]))

        assert client.introspect_token(url, token=token["access_token"]).json() == {"active": False}
        assert client.introspect_token(url, token=token["refresh_token"]).json() == {
            "active": False
        }
        assert client.introspect_token(url, token="garbage").json() == {"active": False}


def test_a_public_client_may_not_introspect(live_server: LiveServer) -> None:
    spa = register_client(public=True)
    token = signed_in(live_server.url, spa)
    with oauth_client(spa) as client:
        response = client.introspect_token(
            f"{live_server.url}/oauth/introspect", token=token["access_token"]
        )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_the_sessions_api_lists_both_kinds_of_sign_in(live_server: LiveServer) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    opaque = httpx.post(
        f"{live_server.url}/auth/token", data={"username": "user1", "password": PASSWORD}
    ).json()["access_token"]

    listed = httpx.get(
        f"{live_server.url}/users/me/sessions", headers=bearer(token["access_token"])
    ).json()

    assert len(listed) == 2
    assert [entry["current"] for entry in listed] == [False, True]  # newest first
    assert [entry["client"] for entry in listed] == [None, app.client_id]
    assert [entry["kind"] for entry in listed] == ["bearer_token", "oauth_client"]
    assert me(live_server, opaque).status_code == 200


def test_token_endpoint_errors_are_oauth_errors_and_never_cached(live_server: LiveServer) -> None:
    response = httpx.post(f"{live_server.url}/oauth/token", data={"grant_type": "magic"})
    assert response.status_code == 401  # the client is authenticated first
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"
    app = register_client()
    response = httpx.post(
        f"{live_server.url}/oauth/token",
        data={"grant_type": "magic"},
        auth=(app.client_id, app.client_secret or ""),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_parameter_sent_twice_or_outside_a_form_is_refused_and_spends_nothing(
    live_server: LiveServer, path: str
) -> None:
    app = register_client(grants=("password", "refresh_token", "client_credentials"))
    token = signed_in(live_server.url, app)
    spent = token["refresh_token"]
    url, auth = f"{live_server.url}{path}", (app.client_id, app.client_secret or "")
    form = {"grant_type": "refresh_token", "refresh_token": spent, "token": spent}

    # RFC 6749 section 3.1: a parameter MUST NOT be included more than once. Which of two
    # refresh tokens (or two grant types) would count is for nobody to guess.
    twice = [*form.items(), ("grant_type", "client_credentials"), ("token", "other")]
    twice += [("refresh_token", "x" * 43)]
    response = httpx.post(url, content=urlencode(twice), auth=auth, headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert "more than once" in response.json()["error_description"]
    # Section 3.2: form-encoded, in the body; JSON, multipart or a query string are not read.
    for sent in (
        {"json": form},
        {"files": {"grant_type": (None, "refresh_token")}, "data": form},
        {"params": form},
    ):
        response = httpx.post(url, auth=auth, **sent)  # type: ignore[arg-type]
        assert response.status_code == 400, sent
        assert response.json()["error"] == "invalid_request", sent
    # Bytes that are not UTF-8 once percent-decoded.
    response = httpx.post(url, content=b"token=%ff%fe&grant_type=refresh_token", auth=auth,
        headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")

    # Nothing above spent the refresh token or ended its sign-in.
    with oauth_client(app) as client:
        renewed = client.refresh_token(f"{live_server.url}/oauth/token", refresh_token=spent)
    assert me(live_server, renewed["access_token"]).status_code == 200


def test_a_parameter_sent_empty_counts_as_omitted(live_server: LiveServer) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    url, auth = f"{live_server.url}/oauth/token", (app.client_id, app.client_secret or "")
    # RFC 6749 section 3.1: "Parameters sent without a value MUST be treated as if they were
    # omitted": an empty scope asks for the refresh token's whole scope, not for none.
    form = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "scope": ""}
    response = httpx.post(url, data=form, auth=auth)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read write"
    response = httpx.post(url, data={"grant_type": ""}, auth=auth)
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "grant_type is missing.",
    }


def test_ending_the_sign_in_from_the_sessions_api_ends_its_refresh_tokens(
    live_server: LiveServer,
) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    sessions = httpx.get(
        f"{live_server.url}/users/me/sessions", headers=bearer(token["access_token"])
    ).json()
    (sign_in,) = sessions

    ended = httpx.delete(
        f"{live_server.url}/users/me/sessions/{sign_in['id']}",
        headers=bearer(token["access_token"]),
    )

    assert ended.status_code == 204
    with oauth_client(app) as client, pytest.raises(OAuthError) as refused:
        client.refresh_token(f"{live_server.url}/oauth/token", refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"


@pytest.mark.parametrize("lifetime", ["idle", "absolute"])
def test_a_refresh_token_past_its_idle_or_absolute_lifetime_is_refused(
    live_server: LiveServer, lifetime: str
) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with SessionLocal.begin() as session:
        if lifetime == "idle":  # the refresh token's own expiry: last use + the idle time
            session.execute(update(RefreshToken).values(expires_at=past))
        else:  # the sign-in's: its start + the absolute time
            session.execute(update(Token).values(expires_at=past))

    with oauth_client(app) as client, pytest.raises(OAuthError) as refused:
        client.refresh_token(f"{live_server.url}/oauth/token", refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_lifetimes_follow_the_settings_and_access_tokens_live_at_most_15_minutes(
    live_server: LiveServer,
) -> None:
    signed_in(live_server.url, register_client())
    with SessionLocal() as session:
        refresh = session.scalars(select(RefreshToken)).one()
        sign_in = session.scalars(select(Token)).one()
    defaults = Settings()
    idle = timedelta(seconds=defaults.refresh_token_idle_seconds)
    absolute = timedelta(seconds=defaults.refresh_token_absolute_seconds)
    assert refresh.expires_at - refresh.created_at == idle
    assert sign_in.expires_at - sign_in.created_at == absolute
    with pytest.raises(ValidationError):
        Settings(access_token_ttl_seconds=901)


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_malformed_input_is_an_oauth_error_and_never_a_500(client: Any, path: str) -> None:
    app = register_client(grants=("client_credentials", "refresh_token"), first_party=False)
    for value in ("\x00", "a" * 5000, "é", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", " "):
        for field in ("client_id", "client_secret", "refresh_token", "token", "scope"):
            data = {
                "grant_type": "refresh_token",
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "refresh_token": "x" * 43,
                "token": "x" * 43,
                field: value,
            }
            response = client.post(path, data=data)
            assert response.status_code in (200, 400, 401), (field, value, response.text)
            if response.status_code != 200:
                assert response.json()["error"], (field, value)
