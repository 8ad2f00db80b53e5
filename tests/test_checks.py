"""`userbase check`: 0 when the database is ready to serve, 1 with the reason when it is not.

The checks themselves (userbase/readiness.py) are tested in tests/test_readiness.py.
"""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.databases import create_database
from userbase.cli import app
from userbase.config import Settings

runner = CliRunner()


def check(database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`userbase check` in its own process, with only the given settings."""
    return subprocess.run(
        [sys.executable, "-m", "userbase", "check"],
        env={"PATH": os.environ["PATH"], "COLUMNS": "200", "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_passes_on_the_migrated_test_database() -> None:
    result = runner.invoke(app, ["check"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("database reachable", "schema at head", "connection budget", "durability"):
        assert name in result.output
    assert "fail" not in result.output


def test_summary_hides_passwords_and_tokens() -> None:
    settings = Settings(
        DATABASE_URL="postgresql+psycopg://app:db-secret@db.internal/app",  # type: ignore[call-arg]
        metrics_token="scrape-secret",
        redis_url="redis://:redis-secret@cache:6379/0",
    )
    summary = dict(settings.summary(workers=2))
    text = str(summary)
    for secret in ("db-secret", "scrape-secret", "redis-secret"):
        assert secret not in text
    assert summary["metrics token"] == "set"
    assert "***" in summary["database"]


@pytest.mark.engines("postgresql", "mariadb")
def test_an_unreachable_database_fails_with_exit_1(db_engine_name: str) -> None:
    url = {
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/none",
        "mariadb": "mysql+pymysql://root@127.0.0.1:1/none",
    }[db_engine_name]
    result = check(url, USERBASE_CONNECT_TIMEOUT="2")
    assert result.returncode == 1
    assert "database reachable" in result.stdout
    assert "fail" in result.stdout


@pytest.mark.engines("postgresql", "mariadb")
def test_a_database_behind_head_fails_and_says_to_migrate(db_engine_name: str) -> None:
    fresh = create_database(db_engine_name)
    try:
        result = check(fresh.url)
    finally:
        fresh.drop()
    assert result.returncode == 1
    assert "schema at head" in result.stdout
    assert "userbase migrate" in result.stdout


@pytest.mark.engines("sqlite")
def test_an_unreachable_sqlite_file_fails() -> None:
    result = check("sqlite:////nonexistent-dir/never/db.sqlite")
    assert result.returncode == 1
    assert "fail" in result.stdout


def test_redis_is_checked_when_configured(database_url: str) -> None:
    reachable = check(database_url, USERBASE_REDIS_URL="redis://127.0.0.1:6379/0")
    assert reachable.returncode == 0, reachable.stdout
    assert "redis reachable" in reachable.stdout

    unreachable = check(database_url, USERBASE_REDIS_URL="redis://127.0.0.1:1/0")
    assert unreachable.returncode == 1
    line = next(x for x in unreachable.stdout.splitlines() if "redis reachable" in x)
    assert "fail" in line


def test_without_a_secret_key_check_warns_and_still_passes(database_url: str) -> None:
    """Issue 17: the development key works, but `userbase check` says it is in use."""
    unset = check(database_url)
    assert unset.returncode == 0, unset.stdout
    line = next(x for x in unset.stdout.splitlines() if "secret key" in x)
    assert "warn" in line
    assert "development key" in line

    configured = check(database_url, USERBASE_SECRET_KEY="a secret from the vault, 32 characters")
    assert configured.returncode == 0, configured.stdout
    line = next(x for x in configured.stdout.splitlines() if "secret key" in x)
    assert "ok" in line
    assert "warn" not in line
