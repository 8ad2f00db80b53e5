"""Only USERBASE_TRUSTED_PROXIES decides whose X-Forwarded-For is believed, however the server
is started; `userbase serve` warns when /metrics is open on a reachable address."""

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from tests.conftest import USERBASE_SERVE, LiveServer
from userbase.config import Settings
from userbase.database import SessionLocal
from userbase.models import SecurityEvent

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
# The tutorial's command, from the repository root as the tutorial runs it (watching only the
# package: the whole root holds .venv).
TUTORIAL = ("uvicorn", "main:app", "--reload", "--reload-dir", str(ROOT / "userbase"))
STARTS = {"userbase serve": USERBASE_SERVE, "uvicorn main:app --reload": TUTORIAL}


@pytest.fixture(params=STARTS.values(), ids=STARTS.keys())
def start(request: pytest.FixtureRequest) -> tuple[str, ...]:
    command: tuple[str, ...] = request.param
    return command


def serve(database_url: str, command: tuple[str, ...], **env: str) -> LiveServer:
    # A low address limit: the third failure from one address is throttled.
    return LiveServer(
        database_url,
        command=command,
        PYTHONPATH=str(ROOT),
        USERBASE_LOGIN_ADDRESS_LIMIT="2",
        **env,
    )


def fail_sign_in(server: LiveServer, forwarded_for: str) -> int:
    response = httpx.post(
        f"{server.url}/auth/token",
        data={"username": "nobody", "password": "not the password"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


def recorded_addresses() -> set[str | None]:
    with SessionLocal() as session:
        return set(session.scalars(select(SecurityEvent.client_address)))


@pytest.fixture
def untrusting_server(database_url: str, start: tuple[str, ...]) -> Iterator[LiveServer]:
    server = serve(database_url, start)
    yield server
    server.stop()


def test_with_no_trusted_proxy_a_forwarded_for_from_the_loopback_is_ignored(
    untrusting_server: LiveServer,
) -> None:
    statuses = [fail_sign_in(untrusting_server, f"203.0.113.{n}") for n in (9, 10, 11)]

    assert statuses == [401, 401, 429]  # one address, 127.0.0.1, whatever the header says
    assert recorded_addresses() == {"127.0.0.1"}


@pytest.fixture
def proxied_server(database_url: str, start: tuple[str, ...]) -> Iterator[LiveServer]:
    server = serve(database_url, start, USERBASE_TRUSTED_PROXIES="127.0.0.1")
    yield server
    server.stop()


def test_behind_a_trusted_proxy_the_forwarded_address_is_used(
    proxied_server: LiveServer,
) -> None:
    statuses = [fail_sign_in(proxied_server, f"203.0.113.{n}") for n in (9, 10, 11)]

    assert statuses == [401, 401, 401]  # three clients, one failure each
    assert recorded_addresses() == {"203.0.113.9", "203.0.113.10", "203.0.113.11"}


def test_a_trusted_proxys_forwarded_proto_is_believed_too(proxied_server: LiveServer) -> None:
    # FastAPI's redirect to the slash-terminated path is absolute: it must keep the scheme the
    # client used at the TLS-terminating proxy.
    response = httpx.get(
        f"{proxied_server.url}/users/1/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
    )
    assert response.status_code == 307
    assert response.headers["location"].startswith("https://")


# What the warning is about; the server is up for a second.
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104


def serve_log(database_url: str, tmp_path: Path, host: str, **env: str) -> str:
    """Start `userbase serve` on `host`, stop it once it answers, return its log."""
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        LiveServer(database_url, command=USERBASE_SERVE, host=host, output=log, **env).stop()
    return log_path.read_text()


def test_serve_warns_when_metrics_are_public_on_a_reachable_address(
    database_url: str, tmp_path: Path
) -> None:
    log = serve_log(database_url, tmp_path, EVERY_INTERFACE)
    assert "GET /metrics is public and the server listens on 0.0.0.0" in log


@pytest.mark.parametrize(
    ("host", "env"),
    [("127.0.0.1", {}), (EVERY_INTERFACE, {"USERBASE_METRICS_TOKEN": "scrape-me-please"})],
    ids=["loopback", "token set"],
)
def test_serve_does_not_warn_on_the_loopback_or_with_a_metrics_token(
    database_url: str, tmp_path: Path, host: str, env: dict[str, str]
) -> None:
    assert "GET /metrics is public" not in serve_log(database_url, tmp_path, host, **env)


def test_userbase_check_shows_whose_forwarded_for_is_believed() -> None:
    assert dict(Settings().summary(workers=1))["trusted proxies"] == (
        "none (X-Forwarded-For is ignored)"
    )
    trusting = Settings(trusted_proxies="10.0.0.0/8, 192.0.2.10")
    assert dict(trusting.summary(workers=1))["trusted proxies"] == "10.0.0.0/8, 192.0.2.10/32"


def test_trusted_proxies_are_networks_checked_at_start_up() -> None:
    assert Settings(trusted_proxies="10.1.2.3/8, 192.0.2.10").trusted_proxies == [
        "10.0.0.0/8",
        "192.0.2.10/32",
    ]
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/33")
