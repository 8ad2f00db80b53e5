"""One fresh database per run on the engine named by --db; every test starts from empty tables.

userbase reads DATABASE_URL when it is first imported, so the database is made in
pytest_configure, before any test module imports the package.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tests.databases import ENGINES, TestDatabase, create_database

_database: TestDatabase | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db", choices=ENGINES, default="sqlite", help="engine to run the suite on (a real server)"
    )


def pytest_configure(config: pytest.Config) -> None:
    global _database
    if hasattr(config, "workerinput"):
        return
    _database = create_database(config.getoption("--db"))
    os.environ["DATABASE_URL"] = _database.url
    os.environ.pop("USERBASE_AUTO_MIGRATE", None)
    # Tests deliver the outbox themselves (mail_delivery.deliver_due): they know when mail left.
    os.environ["USERBASE_MAIL_BACKGROUND"] = "false"
    os.environ.pop("USERBASE_SMTP_URL", None)
    # Tests sign up hundreds of users from one client and mail the same few addresses; the
    # tests of these two limits lower them again.
    os.environ["USERBASE_SIGNUP_ADDRESS_LIMIT"] = "1000000"
    os.environ["USERBASE_MAILS_PER_RECIPIENT_LIMIT"] = "1000000"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked engines(...) belong to those engines' runs only (deselected, not skipped)."""
    engine = config.getoption("--db")
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("engines")
        (dropped if marker and engine not in marker.args else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_unconfigure(config: pytest.Config) -> None:
    if _database is not None:
        from userbase.database import engine

        engine.dispose()
        _database.drop()


def pytest_report_header(config: pytest.Config) -> str:
    return f"userbase test database: {os.environ.get('DATABASE_URL')}"


@pytest.fixture(scope="session")
def db_engine_name() -> str:
    assert _database is not None
    return _database.engine


@pytest.fixture(scope="session")
def database_url() -> str:
    assert _database is not None
    return _database.url


@pytest.fixture(scope="session", autouse=True)
def _migrated() -> None:
    from userbase.database import engine
    from userbase.schema_revision import upgrade_to_head

    upgrade_to_head(engine)


@pytest.fixture(autouse=True)
def _empty_tables() -> Iterator[None]:
    yield
    from sqlalchemy import delete

    from userbase.database import engine
    from userbase.models import Base

    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            # Signing keys outlive a test, as they outlive a server's requests: the live
            # servers of a run keep theirs in memory (userbase/tokens/keys.py).
            if table.name != "signing_keys":
                connection.execute(delete(table))


@pytest.fixture
def client() -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from userbase.app import app

    with TestClient(app) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: "subprocess.Popen[Any]") -> None:
    """SIGTERM, then SIGKILL if the process is still there after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The two ways of starting the server: uvicorn's own command, as the tutorial's `uvicorn
# main:app` runs it (main.py only re-exports this app), and `userbase serve` (`make run`).
UVICORN = ("uvicorn", "userbase.app:app", "--log-level", "warning", "--no-access-log")
USERBASE_SERVE = ("userbase", "serve")


class LiveServer:
    """A real server process serving userbase on the run's database."""

    def __init__(
        self,
        database_url: str,
        *,
        output: Any = None,
        command: tuple[str, ...] = UVICORN,
        host: str = "127.0.0.1",
        public_url_is_own: bool = False,
        public_host: str = "127.0.0.1",
        **env: str,
    ) -> None:
        """`output`: a file for the server's stdout and stderr (its logs); default: inherited.
        `command`: what follows `python -m` (UVICORN or USERBASE_SERVE, and options);
        `host`: the address it binds (it is reached on 127.0.0.1 in any case);
        `public_url_is_own`: USERBASE_PUBLIC_URL is its own address (the OpenID Connect
        issuer a client library finds it at), under the name `public_host` (WebAuthn takes no
        IP address for its relying party: the passkey tests say localhost)."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if public_url_is_own:
            env = {**env, "USERBASE_PUBLIC_URL": f"http://{public_host}:{self.port}"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", *command, "--host", host, "--port", str(self.port)],
            env={**os.environ, "DATABASE_URL": database_url, **env},
            stdout=output,
            stderr=output,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not answer /healthz within 30 s")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url)
    yield server
    server.stop()


def new_user(n: int | str = 1, **overrides: Any) -> dict[str, Any]:
    """A valid POST /users/ body, distinct for each n."""
    body: dict[str, Any] = {
        "username": f"user{n}",
        "email": f"user{n}@example.com",
        "password": "correct horse battery",
    }
    body.update(overrides)
    return body
