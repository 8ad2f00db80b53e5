"""The `userbase` command: migrate and create-admin."""

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from userbase.cli import app
from userbase.database import SessionLocal
from userbase.models import User

runner = CliRunner()


def stored(username: str) -> User | None:
    with SessionLocal() as session:
        return session.scalar(select(User).where(User.username == username))


def test_migrate_reports_the_head_revision() -> None:
    from userbase.database import engine
    from userbase.schema_revision import head_revision

    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert f"schema at revision {head_revision(engine)}" in result.output


def test_version_flag() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("userbase ")


def test_create_admin_with_password_flag() -> None:
    result = runner.invoke(
        app,
        [
            "create-admin",
            "--username",
            "root",
            "--email",
            "r@example.com",
            "--password",
            "s3cret-pass",
        ],
    )
    assert result.exit_code == 0, result.output
    admin = stored("root")
    assert admin is not None
    assert admin.is_admin
    assert admin.is_active
    assert admin.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in result.output


def test_create_admin_reads_the_password_from_the_environment() -> None:
    result = runner.invoke(
        app,
        ["create-admin", "--username", "envadmin", "--email", "e@example.com"],
        env={"USERBASE_ADMIN_PASSWORD": "from-the-env-1"},
    )
    assert result.exit_code == 0, result.output
    assert stored("envadmin") is not None


def test_create_admin_prompts_for_the_password_twice() -> None:
    result = runner.invoke(
        app,
        ["create-admin", "--username", "prompted", "--email", "p@example.com"],
        input="typed-secret-1\ntyped-secret-1\n",
    )
    assert result.exit_code == 0, result.output
    assert "typed-secret-1" not in result.output
    assert stored("prompted") is not None


def test_create_admin_promotes_an_existing_user() -> None:
    runner.invoke(
        app,
        [
            "create-admin",
            "--username",
            "first",
            "--email",
            "f@example.com",
            "--password",
            "password-1",
        ],
    )
    with SessionLocal.begin() as session:
        user = session.scalar(select(User).where(User.username == "first"))
        assert user is not None
        user.is_admin = False

    result = runner.invoke(
        app,
        [
            "create-admin",
            "--username",
            "FIRST",
            "--email",
            "f@example.com",
            "--password",
            "password-2",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "promoted" in result.output
    promoted = stored("first")
    assert promoted is not None
    assert promoted.is_admin


@pytest.mark.parametrize(
    ("username", "email", "password"),
    [
        ("x", "ok@example.com", "password-1"),
        ("okname", "bad", "password-1"),
        ("okname", "ok@example.com", "short"),
    ],
)
def test_create_admin_refuses_invalid_input(username: str, email: str, password: str) -> None:
    result = runner.invoke(
        app, ["create-admin", "--username", username, "--email", email, "--password", password]
    )
    assert result.exit_code == 1
    assert stored(username) is None


def test_set_password_hashes_and_revokes_tokens() -> None:
    from fastapi.testclient import TestClient

    from tests.accounts import bearer, sign_in, signed_in_user
    from userbase.app import app as web_app

    with TestClient(web_app) as client:
        _, token = signed_in_user(client, 1)

        result = runner.invoke(
            app, ["set-password", "USER1"], input="fresh password 1\nfresh password 1\n"
        )

        assert result.exit_code == 0, result.output
        assert "fresh password 1" not in result.output
        assert client.get("/users/me", headers=bearer(token)).status_code == 401
        assert sign_in(client, "user1", "fresh password 1").status_code == 200


def test_set_password_refuses_unknown_users_and_short_passwords() -> None:
    assert (
        runner.invoke(app, ["set-password", "ghost", "--password", "long enough 1"]).exit_code == 1
    )
    assert runner.invoke(app, ["set-password", "ghost", "--password", "short"]).exit_code == 1


def test_purge_tokens_removes_only_expired_ones() -> None:
    from datetime import timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import func, update

    from tests.accounts import sign_up, token_for
    from userbase.app import app as web_app
    from userbase.database import engine
    from userbase.models import Token, utcnow

    with TestClient(web_app) as client:
        sign_up(client, 1)
        for _ in range(3):
            token_for(client, "user1")
    with engine.begin() as connection:
        ids = connection.execute(select(Token.id).order_by(Token.id)).scalars().all()
        connection.execute(
            update(Token).where(Token.id.in_(ids[:2])).values(expires_at=utcnow() - timedelta(1))
        )

    result = runner.invoke(app, ["purge-tokens", "--batch-size", "1"])

    assert result.exit_code == 0, result.output
    assert "purged 2 expired tokens" in result.output
    with SessionLocal() as session:
        assert session.scalar(select(func.count()).select_from(Token)) == 1
