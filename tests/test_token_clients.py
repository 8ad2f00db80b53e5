"""The client registry, from the command line and the admin API: secrets shown once and stored
as digests, exact redirect URIs, bad input refused with nothing changed, every change audited."""

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.accounts import PASSWORD, bearer, make_admin, signed_in_user
from tests.conftest import LiveServer
from tests.tokens import create_user, register_client
from userbase.cli import app as cli
from userbase.database import SessionLocal
from userbase.models import OAuthClient, SecurityEvent
from userbase.tokens import clients

runner = CliRunner()


def stored(client_id: str) -> OAuthClient:
    with SessionLocal() as session:
        return session.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).one()


def events() -> list[tuple[str, str, int | None, str | None]]:
    with SessionLocal() as session:
        rows = session.execute(
            select(
                SecurityEvent.kind,
                SecurityEvent.channel,
                SecurityEvent.actor_id,
                SecurityEvent.detail,
            ).order_by(SecurityEvent.id)
        ).all()
    return [tuple(row) for row in rows if row[0].startswith("client_")]  # type: ignore[misc]


def client_credentials(client: Any, client_id: str, secret: str) -> int:
    response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    status: int = response.status_code
    return status


def test_create_prints_one_json_line_and_keeps_only_the_secrets_digest() -> None:
    result = runner.invoke(
        cli,
        [
            "clients", "create", "--name", "Billing",
            "--redirect-uri", "https://billing.example.com/cb",
            "--redirect-uri", "https://billing.example.com/cb2",
            "--grant", "client_credentials", "--scope", "invoices:read",
        ],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip())
    assert set(line) == {"client_id", "client_secret"}
    row = stored(line["client_id"])
    assert row.secret_hash == hashlib.sha256(line["client_secret"].encode()).hexdigest()
    assert row.redirect_uris.split() == [
        "https://billing.example.com/cb",
        "https://billing.example.com/cb2",
    ]
    assert events() == [("client_created", "cli", None, f"client={line['client_id']}")]
    listed = runner.invoke(cli, ["clients", "list"]).stdout
    assert line["client_id"] in listed
    assert line["client_secret"] not in listed


def test_a_public_client_has_no_secret() -> None:
    result = runner.invoke(cli, ["clients", "create", "--name", "SPA", "--public"])
    line = json.loads(result.stdout.strip())
    assert set(line) == {"client_id"}
    assert stored(line["client_id"]).secret_hash is None


def test_bad_registrations_are_refused_and_change_nothing() -> None:
    for arguments in (
        ["--redirect-uri", "/relative/path"],
        ["--redirect-uri", "https://app.example.com/cb#fragment"],
        ["--grant", "implicit"],
        ["--public", "--grant", "client_credentials"],
        ["--grant", "password"],  # the password grant is for first-party clients only
    ):
        result = runner.invoke(cli, ["clients", "create", "--name", "X", *arguments])
        assert result.exit_code == 1, arguments
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(OAuthClient)) == 0
    assert events() == []


def test_rotate_secret_shows_the_new_one_once_and_the_old_one_stops_working(client: Any) -> None:
    service = register_client(grants=("client_credentials",), first_party=False)
    assert service.client_secret is not None
    assert client_credentials(client, service.client_id, service.client_secret) == 200

    result = runner.invoke(cli, ["clients", "rotate-secret", service.client_id])

    new_secret = json.loads(result.stdout.strip())["client_secret"]
    assert client_credentials(client, service.client_id, service.client_secret) == 401
    assert client_credentials(client, service.client_id, new_secret) == 200
    assert events()[-1] == ("client_secret_rotated", "cli", None, f"client={service.client_id}")


def test_deleting_a_client_ends_its_sign_ins(client: Any) -> None:
    app = register_client()
    create_user(1)
    token = client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "user1", "password": PASSWORD},
        auth=(app.client_id, app.client_secret),
    ).json()
    assert client.get("/users/me", headers=bearer(token["access_token"])).status_code == 200

    assert runner.invoke(cli, ["clients", "delete", app.client_id]).exit_code == 0

    assert client.get("/users/me", headers=bearer(token["access_token"])).status_code == 401
    assert runner.invoke(cli, ["clients", "delete", app.client_id]).exit_code == 1


def test_redirect_uris_match_exactly() -> None:
    app = register_client()
    row = stored(app.client_id)
    assert clients.redirect_uri_allowed(row, "https://app.example.com/callback")
    for near_miss in (
        "https://app.example.com/callback/",
        "https://APP.example.com/callback",
        "https://app.example.com/callback?next=/admin",
        "https://app.example.com/callbackx",
        "http://app.example.com/callback",
    ):
        assert not clients.redirect_uri_allowed(row, near_miss), near_miss


def test_admins_manage_clients_over_the_api(client: Any) -> None:
    admin, admin_token = signed_in_user(client, "admin", admin=True)
    headers = bearer(admin_token)

    created = client.post(
        "/admin/clients",
        json={"name": "Reports", "grant_types": ["client_credentials"], "scope": "reports"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    client_id, secret = body["client_id"], body["client_secret"]
    assert created.headers["cache-control"] == "no-store"

    listed = client.get("/admin/clients", headers=headers)
    assert [entry["client_id"] for entry in listed.json()] == [client_id]
    assert secret not in listed.text
    assert "client_secret" not in listed.json()[0]

    rotated = client.post(f"/admin/clients/{client_id}/secret", headers=headers).json()
    assert rotated["client_secret"] != secret
    assert client_credentials(client, client_id, rotated["client_secret"]) == 200

    public = client.post("/admin/clients", json={"name": "SPA", "public": True}, headers=headers)
    assert "client_secret" not in public.json()
    no_secret = client.post(f"/admin/clients/{public.json()['client_id']}/secret", headers=headers)
    assert no_secret.status_code == 409
    client.delete(f"/admin/clients/{public.json()['client_id']}", headers=headers)

    assert client.delete(f"/admin/clients/{client_id}", headers=headers).status_code == 204
    assert client.delete(f"/admin/clients/{client_id}", headers=headers).status_code == 404
    assert [event for event in events() if event[3] == f"client={client_id}"] == [
        ("client_created", "api", admin["id"], f"client={client_id}"),
        ("client_secret_rotated", "api", admin["id"], f"client={client_id}"),
        ("client_deleted", "api", admin["id"], f"client={client_id}"),
    ]


def test_bad_input_over_the_api_is_422_and_creates_nothing(client: Any) -> None:
    _, admin_token = signed_in_user(client, "admin", admin=True)
    for body in (
        {"name": "X", "redirect_uris": ["not a uri"]},
        {"name": "X", "grant_types": ["implicit"]},
        {"name": "X", "secret": "chosen by me"},
        {"name": ""},
        {"name": "X", "public": 0},  # a boolean is true or false, not a number
    ):
        response = client.post("/admin/clients", json=body, headers=bearer(admin_token))
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/admin/clients", headers=bearer(admin_token)).json() == []


def test_only_admins_see_or_change_clients(client: Any) -> None:
    _, token = signed_in_user(client, 1)
    assert client.get("/admin/clients", headers=bearer(token)).status_code == 403
    assert (
        client.post("/admin/clients", json={"name": "X"}, headers=bearer(token)).status_code == 403
    )
    assert client.get("/admin/clients").status_code == 401


def test_a_client_secret_is_never_logged(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = LiveServer(database_url, output=output, USERBASE_LOG_LEVEL="debug")
        try:
            make_admin(create_user("admin"))
            admin_token = httpx.post(
                f"{server.url}/auth/token", data={"username": "useradmin", "password": PASSWORD}
            ).json()["access_token"]
            created = httpx.post(
                f"{server.url}/admin/clients",
                json={"name": "S", "grant_types": ["client_credentials"]},
                headers=bearer(admin_token),
            ).json()
            rotated = httpx.post(
                f"{server.url}/admin/clients/{created['client_id']}/secret",
                headers=bearer(admin_token),
            ).json()
            for secret in (created["client_secret"], rotated["client_secret"]):
                httpx.post(
                    f"{server.url}/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(created["client_id"], secret),
                )
                httpx.post(
                    f"{server.url}/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": created["client_id"],
                        "client_secret": secret,
                    },
                )
        finally:
            server.stop()
    written = log.read_text()
    assert "/admin/clients" in written  # the requests were logged...
    assert created["client_secret"] not in written  # ...their secrets never
    assert rotated["client_secret"] not in written


def test_the_cli_lists_a_client_as_the_api_shows_it(client: Any) -> None:
    _admin, admin_token = signed_in_user(client, "admin", admin=True)
    result = runner.invoke(
        cli,
        [
            "clients", "create", "--name", "Shop",
            "--redirect-uri", "https://shop.example.com/cb",
            "--post-logout-redirect-uri", "https://shop.example.com/bye",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    printed = runner.invoke(cli, ["clients", "list"]).stdout
    listed = [json.loads(line) for line in printed.splitlines()]
    shown = client.get("/admin/clients", headers=bearer(admin_token)).json()

    assert listed == shown
    assert listed[0]["post_logout_redirect_uris"] == ["https://shop.example.com/bye"]
