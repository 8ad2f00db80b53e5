"""One clock: every instance keeps time by the database's clock, whatever its host's says.

The fault is injected for real: the `userbase` command runs under libfaketime (Debian's
`faketime`, installed here when missing), with its host's clock minutes off the database
server's. The tests fail if it cannot be installed: they never skip.
"""

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from userbase.clock import CLOCK, measure_offset
from userbase.database import SessionLocal, engine
from userbase.models import Token, User, utcnow


def _faketime() -> str:
    found = shutil.which("faketime")
    if found:
        return found
    # Debian's package; the index is refreshed only when the install cannot find it.
    if subprocess.run(["apt-get", "install", "-y", "faketime"], capture_output=True).returncode:
        subprocess.run(["apt-get", "update"], capture_output=True, check=True)
        subprocess.run(["apt-get", "install", "-y", "faketime"], capture_output=True, check=True)
    found = shutil.which("faketime")
    assert found, "faketime is not installed and `apt-get install -y faketime` did not install it"
    return found


def userbase_under_skew(skew: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `userbase ARGS` with this host's clock moved by `skew` (e.g. "+10m")."""
    env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    command = [_faketime(), "-f", skew, sys.executable, "-m", "userbase", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def a_token_expiring_in(delta: timedelta) -> None:
    with SessionLocal.begin() as session:
        user = User(username="ada", email="ada@example.com", password_hash="!x")
        session.add(user)
        session.flush()
        now = utcnow()
        session.execute(
            insert(Token).values(
                user_id=user.id,
                token_hash="0" * 64,
                created_at=now,
                expires_at=now + delta,
            )
        )


def tokens() -> int:
    with SessionLocal() as session:
        return session.scalar(select(func.count()).select_from(Token)) or 0


def test_the_offset_of_a_database_on_this_host_is_about_zero() -> None:
    assert abs(measure_offset(engine)) < timedelta(seconds=1)
    assert abs(CLOCK.synchronize(engine)) < timedelta(seconds=1)


@pytest.mark.engines("postgresql", "mariadb")
def test_a_purge_on_a_host_whose_clock_runs_ahead_keeps_live_tokens() -> None:
    a_token_expiring_in(timedelta(minutes=5))

    result = userbase_under_skew("+10m", "purge-tokens")

    assert result.returncode == 0, result.stderr
    assert "purged 0 expired tokens" in result.stderr
    assert tokens() == 1


@pytest.mark.engines("postgresql", "mariadb")
def test_a_purge_on_a_host_whose_clock_runs_behind_still_purges_expired_tokens() -> None:
    a_token_expiring_in(timedelta(minutes=-5))

    result = userbase_under_skew("-10m", "purge-tokens")

    assert result.returncode == 0, result.stderr
    assert "purged 1 expired tokens" in result.stderr
    assert tokens() == 0


@pytest.mark.engines("postgresql", "mariadb")
def test_a_server_on_a_skewed_host_warns_at_start_up(tmp_path: Path, database_url: str) -> None:
    from tests.conftest import LiveServer

    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = LiveServer(
            database_url,
            output=output,
            FAKETIME="+30s",
            FAKETIME_DONT_FAKE_MONOTONIC="1",
            LD_PRELOAD=_libfaketime(),
        )
        server.stop()
    assert "HOST CLOCK OFF" in log.read_text()


@pytest.mark.engines("postgresql", "mariadb")
def test_instances_an_hour_ahead_and_behind_agree_on_whether_a_token_is_still_valid(
    database_url: str,
) -> None:
    from tests.accounts import bearer, sign_up, token_for
    from tests.conftest import LiveServer

    skews = ("+1h", "-1h")
    servers = [
        LiveServer(
            database_url,
            FAKETIME=skew,
            FAKETIME_DONT_FAKE_MONOTONIC="1",
            LD_PRELOAD=_libfaketime(),
        )
        for skew in skews
    ]
    try:
        with httpx.Client(base_url=servers[0].url, timeout=30) as client:
            sign_up(client, "skew")
            token = token_for(client, "userskew")

        def answers(expires_in: timedelta) -> list[int]:
            with SessionLocal.begin() as session:
                session.execute(update(Token).values(expires_at=utcnow() + expires_in))
            return [
                httpx.get(f"{server.url}/users/me", headers=bearer(token), timeout=30).status_code
                for server in servers
            ]

        # By the database's clock: valid five more minutes, then expired five minutes ago.
        assert answers(timedelta(minutes=5)) == [200, 200]
        assert answers(timedelta(minutes=-5)) == [401, 401]
    finally:
        for server in servers:
            server.stop()


def _libfaketime() -> str:
    _faketime()
    for folder in ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime"):
        candidate = Path(folder) / "libfaketime.so.1"
        if candidate.exists():
            return str(candidate)
    raise AssertionError("libfaketime.so.1 not found beside the faketime command")
