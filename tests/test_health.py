"""/healthz never touches the database; /readyz does and says 503 when it cannot."""

from typing import Any

import pytest

from userbase.config import Settings
from userbase.database import build_engine
from userbase.routers import health


def test_healthz_answers_ok(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_ok_when_the_database_does(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_readyz_is_503_problem_when_the_database_is_unreachable(
    client: Any, db_engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = {
        "sqlite": "sqlite:////nonexistent-dir/never/db.sqlite",
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/none",
        "mariadb": "mysql+pymysql://root@127.0.0.1:1/none",
    }[db_engine_name]
    dead_engine = build_engine(Settings(DATABASE_URL=unreachable, connect_timeout=2))  # type: ignore[call-arg]
    monkeypatch.setattr(health, "engine", dead_engine)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert client.get("/healthz").status_code == 200
