"""examples/resource_server.py (FastAPI, verifies every token) and
examples/cached_resource_server.py (plain ASGI, keeps verified tokens until they expire), each
started as its own process next to a live userbase: they check userbase's access tokens with
nothing but the published keys, and refuse alike."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from joserfc import jws
from typer.testing import CliRunner

from tests.accounts import bearer
from tests.conftest import LiveServer, _free_port, stop_process
from tests.tokens import oauth_client, register_client, signed_in
from userbase.cli import app as cli
from userbase.tokens import access_tokens, keys

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(
    scope="module",
    params=["examples.resource_server:app", "examples.cached_resource_server:app"],
    ids=["fastapi", "cached"],
)
def resource_server(live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", request.param,
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            # userbase's default public URL is its issuer; the keys come from the live server.
            "USERBASE_URL": "http://localhost:8000",
            "USERBASE_JWKS_URL": f"{live_server.url}/.well-known/jwks.json",
        },
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                stop_process(process)
                raise RuntimeError("the example resource server did not start") from None
            time.sleep(0.1)
    yield url
    stop_process(process)


def test_it_accepts_a_users_access_token_without_asking_userbase(
    live_server: LiveServer, resource_server: str
) -> None:
    app = register_client()
    token = signed_in(live_server.url, app)
    user_id = httpx.get(
        f"{live_server.url}/users/me", headers=bearer(token["access_token"])
    ).json()["id"]

    response = httpx.get(f"{resource_server}/hello", headers=bearer(token["access_token"]))

    assert response.status_code == 200, response.text
    assert response.json() == {"user": str(user_id), "client": app.client_id, "scope": "read write"}


def test_it_accepts_a_service_token(live_server: LiveServer, resource_server: str) -> None:
    service = register_client(grants=("client_credentials",), first_party=False, scope="audit")
    with oauth_client(service) as client:
        token = client.fetch_token(
            f"{live_server.url}/oauth/token", grant_type="client_credentials"
        )
    response = httpx.get(f"{resource_server}/hello", headers=bearer(token["access_token"]))
    assert response.json() == {
        "user": service.client_id,
        "client": service.client_id,
        "scope": "audit",
    }


def test_it_refuses_no_token_a_tampered_one_and_an_opaque_one(
    live_server: LiveServer, resource_server: str
) -> None:
    token = signed_in(live_server.url, register_client())["access_token"]
    header, payload, signature = token.split(".")
    tampered = (
        f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    )
    opaque = httpx.post(
        f"{live_server.url}/auth/token",
        data={"username": "user1", "password": "correct horse battery"},
    ).json()["access_token"]

    assert httpx.get(f"{resource_server}/hello").status_code == 401
    assert httpx.get(f"{resource_server}/hello", headers=bearer(tampered)).status_code == 401
    assert httpx.get(f"{resource_server}/hello", headers=bearer(opaque)).status_code == 401


def test_a_sign_out_reaches_it_only_when_the_token_expires(
    live_server: LiveServer, resource_server: str
) -> None:
    """What docs/tokens.md says: userbase refuses at once, a service checking locally keeps
    accepting the token for the rest of its (5 minute) life."""
    token = signed_in(live_server.url, register_client())["access_token"]
    httpx.post(f"{live_server.url}/auth/logout", headers=bearer(token))

    assert httpx.get(f"{live_server.url}/users/me", headers=bearer(token)).status_code == 401
    assert httpx.get(f"{resource_server}/hello", headers=bearer(token)).status_code == 200


def _like(token: dict[str, Any], **overrides: Any) -> str:
    """An access token with the claims of `token`, signed here with userbase's current key
    (as a userbase server signs: the keys are the database's), with `overrides` for mint()."""
    claims = json.loads(jws.extract_compact(token["access_token"].encode()).payload)
    return access_tokens.mint(
        subject=claims["sub"],
        client_id=claims["client_id"],
        scope=claims["scope"],
        sign_in_id=int(claims["sid"]),
        **overrides,
    ).token


def _kid(token: str) -> str:
    kid: str = jws.extract_compact(token.encode()).headers()["kid"]
    return kid


def test_it_refuses_an_expired_token_and_one_for_another_audience(
    live_server: LiveServer, resource_server: str
) -> None:
    token = signed_in(live_server.url, register_client())
    hello = f"{resource_server}/hello"

    assert httpx.get(hello, headers=bearer(_like(token))).status_code == 200
    assert httpx.get(hello, headers=bearer(_like(token, ttl_seconds=-1))).status_code == 401
    other_audience = _like(token, audience_="https://billing.example.com")
    assert httpx.get(hello, headers=bearer(other_audience)).status_code == 401


def test_a_token_it_took_before_is_refused_once_it_expires(
    live_server: LiveServer, resource_server: str
) -> None:
    """The cached example checks a known token's expiry on every request, as a full check does."""
    short = _like(signed_in(live_server.url, register_client()), ttl_seconds=3)
    hello = f"{resource_server}/hello"
    assert httpx.get(hello, headers=bearer(short)).status_code == 200
    assert httpx.get(hello, headers=bearer(short)).status_code == 200  # a cache hit there
    deadline = time.monotonic() + 8
    while httpx.get(hello, headers=bearer(short)).status_code == 200:
        assert time.monotonic() < deadline, "an expired token was still accepted"
        time.sleep(0.1)
    assert httpx.get(hello, headers=bearer(short)).status_code == 401


def test_it_answers_404_elsewhere_and_needs_the_bearer_scheme(
    live_server: LiveServer, resource_server: str
) -> None:
    token = signed_in(live_server.url, register_client())["access_token"]
    assert httpx.get(f"{resource_server}/nowhere", headers=bearer(token)).status_code == 404
    basic = {"Authorization": f"Basic {token}"}
    assert httpx.get(f"{resource_server}/hello", headers=basic).status_code == 401


# Last: the rotation leaves the services a key they may not fetch for 30 s (docs/tokens.md).
def test_after_a_key_rotation_it_still_takes_tokens_of_the_old_key(
    live_server: LiveServer, resource_server: str
) -> None:
    token = signed_in(live_server.url, register_client())
    old = token["access_token"]
    hello = f"{resource_server}/hello"
    assert httpx.get(hello, headers=bearer(old)).status_code == 200  # the keys are cached there

    assert CliRunner().invoke(cli, ["keys", "rotate"]).exit_code == 0
    keys.RING.forget()
    new = _like(token)  # what a userbase server signs once it has read the new keys
    assert _kid(new) != _kid(old)
    # userbase publishes a new key within a second of its making (keys.KeyRing.jwks)...
    deadline = time.monotonic() + 10
    while _kid(new) not in {
        key["kid"] for key in httpx.get(f"{live_server.url}/.well-known/jwks.json").json()["keys"]
    }:
        assert time.monotonic() < deadline, "the new key was not published"
        time.sleep(0.1)
    # ...with the old one, whose tokens the service keeps taking until they expire.
    assert _kid(old) in {
        key["kid"] for key in httpx.get(f"{live_server.url}/.well-known/jwks.json").json()["keys"]
    }
    assert httpx.get(hello, headers=bearer(old)).status_code == 200
