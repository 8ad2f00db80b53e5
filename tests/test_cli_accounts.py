"""The account commands of `userbase`: they go through the account workflows, so an operator's
change is checked like the API's and shows up in the audit trail with the channel "cli"."""

from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from tests.accounts import PASSWORD, bearer, sign_in, sign_up, signed_in_user
from userbase.cli import app
from userbase.database import SessionLocal
from userbase.models import SecurityEvent, User

runner = CliRunner()


def events_of(user_id: int) -> list[tuple[str, str, str | None]]:
    with SessionLocal() as session:
        rows = session.execute(
            select(SecurityEvent.kind, SecurityEvent.channel, SecurityEvent.detail)
            .where(SecurityEvent.user_id == user_id)
            .order_by(SecurityEvent.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def stored(user_id: int) -> User:
    with SessionLocal() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user


def test_create_admin_never_promotes_a_name_someone_else_registered(client: Any) -> None:
    # The attacker signs up first as "ops" with an address of their own...
    squatter = sign_up(client, "ops", username="ops", email="attacker@example.com")

    # ...then the operator creates the admin they meant to have.
    result = runner.invoke(
        app,
        ["create-admin", "--username", "ops", "--email", "ops@corp.example.com"],
        env={"USERBASE_ADMIN_PASSWORD": "operator pass 1"},
    )

    assert result.exit_code == 1
    assert "attacker@example.com" in result.output  # the operator sees whose account it is
    assert f"promote-admin --id {squatter['id']}" in result.output
    account = stored(squatter["id"])
    assert not account.is_admin
    assert account.email == "attacker@example.com"
    # The attacker's own password still works and the operator's does not: nothing changed.
    assert sign_in(client, "ops", PASSWORD).status_code == 200
    assert sign_in(client, "ops", "operator pass 1").status_code == 401
    assert events_of(squatter["id"]) == [
        ("user_created", "api", None),
        ("login_succeeded", "api", None),
        ("login_failed", "api", "wrong_password"),
    ]


def test_create_admin_promotes_the_same_address_in_any_case_and_audits_it(client: Any) -> None:
    user, token = signed_in_user(client, "ada")  # userada@example.com

    result = runner.invoke(
        app,
        ["create-admin", "--username", "USERADA", "--email", "UserAda@Example.com"],
        env={"USERBASE_ADMIN_PASSWORD": "operator pass 1"},
    )

    assert result.exit_code == 0, result.output
    assert stored(user["id"]).is_admin
    assert client.get("/users/me", headers=bearer(token)).status_code == 401  # new password
    assert events_of(user["id"])[-2:] == [
        ("role_changed", "cli", "is_admin=True"),
        ("password_changed", "cli", None),
    ]


def test_promote_admin_names_the_account_by_id_and_shows_its_address(client: Any) -> None:
    user = sign_up(client, "grace")

    refused = runner.invoke(app, ["promote-admin", "--id", str(user["id"])], input="n\n")
    assert refused.exit_code == 1
    assert user["email"] in refused.output
    assert not stored(user["id"]).is_admin

    result = runner.invoke(app, ["promote-admin", "--id", str(user["id"]), "--yes"])
    assert result.exit_code == 0, result.output
    assert stored(user["id"]).is_admin
    assert events_of(user["id"])[-1] == ("role_changed", "cli", "is_admin=True")


def test_promote_admin_of_an_unknown_id_fails_cleanly() -> None:
    result = runner.invoke(app, ["promote-admin", "--id", "999999", "--yes"])
    assert result.exit_code == 1
    assert "No user with id 999999" in result.output


def test_set_password_is_audited_as_an_operator_action_visible_to_admins(client: Any) -> None:
    user = sign_up(client, "linus")
    _, admin_token = signed_in_user(client, "boss", admin=True)

    result = runner.invoke(app, ["set-password", "userlinus", "--password", "fresh password 1"])

    assert result.exit_code == 0, result.output
    page = client.get(
        "/admin/events",
        params={"user_id": user["id"], "kind": "password_changed"},
        headers=bearer(admin_token),
    )
    assert page.status_code == 200
    [event] = page.json()
    assert event["channel"] == "cli"
    assert event["client_address"] is None
    assert event["actor_id"] is None


def test_create_admin_of_a_new_user_records_its_creation_and_role() -> None:
    result = runner.invoke(
        app,
        ["create-admin", "--username", "root", "--email", "root@example.com"],
        env={"USERBASE_ADMIN_PASSWORD": "operator pass 1"},
    )
    assert result.exit_code == 0, result.output
    with SessionLocal() as session:
        user_id = session.scalar(select(User.id).where(User.username == "root"))
    assert user_id is not None
    assert events_of(user_id) == [
        ("user_created", "cli", None),
        ("role_changed", "cli", "is_admin=True"),
    ]
