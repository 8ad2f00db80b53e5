"""Signing keys: in the database, private halves encrypted, published with kid/use/alg, created
when none exists, rotated with the previous ones published until their tokens expired."""

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jws
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from tests.accounts import PASSWORD, bearer
from tests.tokens import Registered, create_user, register_client
from userbase.cli import app as cli
from userbase.clock import CLOCK
from userbase.config import get_settings
from userbase.database import SessionLocal
from userbase.models import SigningKey
from userbase.sealing import unseal
from userbase.tokens import access_tokens, keys

runner = CliRunner()


def sign_in(client: Any) -> tuple[Registered, dict[str, Any]]:
    app = register_client()
    create_user(1)
    response = client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "user1", "password": PASSWORD},
        auth=(app.client_id, app.client_secret),
    )
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return app, token


def kid_of(token: str) -> str:
    header = jws.extract_compact(token.encode()).headers()
    kid: str = header["kid"]
    return kid


def test_jwks_publishes_each_key_with_kid_use_alg_and_a_max_age(client: Any) -> None:
    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    published = response.json()["keys"]
    assert {"ES256", "RS256"} <= {key["alg"] for key in published}
    for key in published:
        assert key["use"] == "sig"
        assert key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)  # never a private part


def test_private_keys_are_sealed_at_rest(client: Any) -> None:
    client.get("/.well-known/jwks.json")
    with SessionLocal() as session:
        rows = session.scalars(select(SigningKey)).all()
    assert rows
    for row in rows:
        assert "PRIVATE KEY" not in row.private_pem  # no PEM in the table...
        assert b"-----BEGIN PRIVATE KEY-----" in unseal(row.private_pem)  # ...only sealed


def test_the_development_secret_is_said_and_a_configured_one_is_not(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert keys.secret_key_is_default()
    with caplog.at_level(logging.WARNING, logger="userbase.tokens"):
        keys.warn_if_default_secret()
    assert "USERBASE_SECRET_KEY is not set" in caplog.text

    monkeypatch.setenv("USERBASE_SECRET_KEY", "a secret from the vault, 32 characters at least")
    get_settings.cache_clear()
    try:
        assert not keys.secret_key_is_default()
    finally:
        monkeypatch.delenv("USERBASE_SECRET_KEY")
        get_settings.cache_clear()


def test_migrate_creates_the_keys_a_database_lacks() -> None:
    table = SigningKey.__table__
    with SessionLocal.begin() as session:
        kept = [
            {k: v for k, v in row._mapping.items() if k != "id"}
            for row in session.execute(select(table))
        ]
        session.execute(delete(SigningKey))
    try:
        result = runner.invoke(cli, ["migrate"])

        assert result.exit_code == 0, result.output
        with SessionLocal() as session:
            algorithms = session.scalars(select(SigningKey.alg)).all()
        assert sorted(algorithms) == ["ES256", "RS256"]
    finally:
        # The keys back (newest again, so they sign): the run's live servers may still sign
        # with them for up to a minute (keys.RELOAD_SECONDS), and those tokens must verify.
        if kept:
            with SessionLocal.begin() as session:
                session.execute(table.insert(), kept)
        keys.RING.forget()


def test_tokens_signed_by_the_previous_key_verify_until_they_expire(client: Any) -> None:
    app, before = sign_in(client)
    old_kid = kid_of(before["access_token"])

    result = runner.invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output

    published = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
    assert old_kid in published
    # The old token still works on userbase's own API...
    assert client.get("/users/me", headers=bearer(before["access_token"])).status_code == 200
    # ...new tokens come from the new key...
    app_token = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]},
        auth=(app.client_id, app.client_secret),
    ).json()
    new_kid = kid_of(app_token["access_token"])
    assert new_kid != old_kid
    assert new_kid in published
    # ...and the old key stays published at least until the old token has expired.
    with SessionLocal() as session:
        old = session.scalars(select(SigningKey).where(SigningKey.kid == old_kid)).one()
    assert old.retired_at is not None
    assert old.publish_until is not None
    claims = json.loads(jws.extract_compact(before["access_token"].encode()).payload)
    assert old.publish_until >= datetime.fromtimestamp(claims["exp"], UTC)
    listing = runner.invoke(cli, ["keys", "list"]).output
    assert f"{old_kid}  ES256" in listing
    assert "retired published until" in listing

    # Past that time it is no longer published, and nothing it signed verifies.
    with SessionLocal.begin() as session:
        session.execute(
            update(SigningKey)
            .where(SigningKey.id == old.id)
            .values(publish_until=datetime(2000, 1, 1, tzinfo=UTC))
        )
    keys.RING.forget()
    try:
        published = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
        assert old_kid not in published
        assert client.get("/users/me", headers=bearer(before["access_token"])).status_code == 401
    finally:
        # Published again until its real time: the run's live servers may still sign with it
        # for up to a minute (keys.RELOAD_SECONDS), and their tokens must keep verifying.
        with SessionLocal.begin() as session:
            session.execute(
                update(SigningKey)
                .where(SigningKey.id == old.id)
                .values(publish_until=old.publish_until)
            )
        keys.RING.forget()


def _signed(client: Any, **overrides: Any) -> str:
    """An access token for a live sign-in of user1, signed by userbase's current key."""
    _, token = sign_in(client)
    return _like(token, **overrides)


def _like(token: dict[str, Any], **overrides: Any) -> str:
    """Another access token for the same sign-in, with `overrides` for mint()."""
    claims = json.loads(jws.extract_compact(token["access_token"].encode()).payload)
    minted = access_tokens.mint(
        subject=claims["sub"],
        client_id=claims["client_id"],
        scope=claims["scope"],
        sign_in_id=int(claims["sid"]),
        **overrides,
    )
    return minted.token


def test_an_expired_access_token_is_refused(client: Any) -> None:
    token = _signed(client, ttl_seconds=-1)
    response = client.get("/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_token_checked_once_is_refused_once_it_has_expired(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """userbase keeps tokens whose signature it checked (access_tokens.py): never their expiry."""
    _, token = sign_in(client)
    access = token["access_token"]
    assert client.get("/users/me", headers=bearer(access)).status_code == 200  # now cached
    assert client.get("/users/me", headers=bearer(access)).status_code == 200

    monkeypatch.setattr(CLOCK, "offset", CLOCK.offset + timedelta(seconds=token["expires_in"] + 1))

    response = client.get("/users/me", headers=bearer(access))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_an_access_token_for_another_audience_is_refused(client: Any) -> None:
    _, token = sign_in(client)
    response = client.get(
        "/users/me", headers=bearer(_like(token, audience_="https://billing.example.com"))
    )
    assert response.status_code == 401
    assert "audience" in response.json()["detail"]
    assert client.get("/users/me", headers=bearer(_like(token))).status_code == 200


def test_a_tampered_access_token_is_refused(client: Any) -> None:
    header, payload, signature = _signed(client).split(".")
    forged_payload = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    response = client.get("/users/me", headers=bearer(f"{header}.{forged_payload}.{signature}"))
    assert response.status_code == 401
