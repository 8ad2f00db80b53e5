"""Durability is checked, not assumed: PostgreSQL settings that lose commits are shouted about."""

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from userbase.app import create_app
from userbase.database import engine
from userbase.readiness import durability


@pytest.fixture
def synchronous_commit_off(database_url: str) -> Iterator[None]:
    """The run's own database, with synchronous_commit off for new sessions."""
    name = engine.url.database
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    engine.dispose()
    try:
        yield
    finally:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" RESET synchronous_commit'))
        engine.dispose()


@pytest.mark.engines("postgresql")
def test_a_durable_postgresql_raises_no_warning() -> None:
    assert [check for check in durability(engine) if check.status != "ok"] == []


@pytest.mark.engines("postgresql")
@pytest.mark.usefixtures("synchronous_commit_off")
def test_start_up_warns_loudly_when_synchronous_commit_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="userbase"), TestClient(create_app()):
        pass

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("DURABILITY AT RISK" in w and "synchronous_commit is off" in w for w in warnings), (
        warnings
    )
