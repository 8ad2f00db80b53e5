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
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "schema at revision 0001" in result.output


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
