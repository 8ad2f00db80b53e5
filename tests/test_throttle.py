"""Failed sign-ins are throttled per account and per client address, in the database or Redis."""

import secrets
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import redis
from pydantic import SecretStr

from tests.accounts import PASSWORD, sign_in, sign_up
from tests.conftest import LiveServer
from userbase.config import get_settings
from userbase.redis_client import redis_client
from userbase.throttle_store import get_throttle

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["database", "redis"])
def throttle_store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Each throttle test runs once per store; Redis keys get a namespace of their own."""
    settings = get_settings()
    namespace = f"userbase-test-{secrets.token_hex(4)}"
    if request.param == "redis":
        monkeypatch.setattr(settings, "redis_url", SecretStr(REDIS_URL))
        monkeypatch.setattr(settings, "redis_namespace", namespace)
    get_throttle.cache_clear()
    redis_client.cache_clear()
    yield request.param
    get_throttle.cache_clear()
    redis_client.cache_clear()
    if request.param == "redis":
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)


def fail(client: Any, login: str, times: int, **headers: str) -> list[int]:
    return [
        client.post(
            "/auth/token", data={"username": login, "password": "wrong password!"}, headers=headers
        ).status_code
        for _ in range(times)
    ]


def test_ten_failures_lock_the_account_even_for_the_right_password(
    client: Any, throttle_store: str
) -> None:
    sign_up(client, 1)

    assert fail(client, "user1", 10) == [401] * 10
    locked = sign_in(client, "user1", PASSWORD)

    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    retry_after = int(locked.headers["retry-after"])
    assert 0 < retry_after <= 15 * 60


def test_username_and_email_count_against_one_account(client: Any, throttle_store: str) -> None:
    sign_up(client, 1)
    fail(client, "user1", 5)
    fail(client, "USER1@example.com", 5)
    assert sign_in(client, "user1").status_code == 429


def test_a_success_resets_the_account_count(client: Any, throttle_store: str) -> None:
    sign_up(client, 1)
    fail(client, "user1", 9)
    assert sign_in(client, "user1").status_code == 200
    assert fail(client, "user1", 9) == [401] * 9
    assert sign_in(client, "user1").status_code == 200


def test_the_lock_lifts_when_the_window_has_passed(
    client: Any, throttle_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, 1)
    fail(client, "user1", 10)
    assert sign_in(client, "user1").status_code == 429

    # Pretend 15 minutes have passed by narrowing the window to what has already passed.
    monkeypatch.setattr(get_settings(), "login_window_seconds", 0)

    assert sign_in(client, "user1").status_code == 200


def test_the_client_address_has_its_own_higher_limit(
    client: Any, throttle_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "login_address_limit", 12)
    sign_up(client, "victim")
    for n in range(4):
        fail(client, f"someone{n}", 3)  # 12 failures from one address, no account at its limit

    assert sign_in(client, "uservictim").status_code == 429


def test_forwarded_for_is_ignored_from_an_untrusted_peer(
    client: Any, throttle_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "login_address_limit", 3)
    sign_up(client, 1)

    for n in range(3):
        fail(client, f"ghost{n}", 1, **{"X-Forwarded-For": f"203.0.113.{n}"})

    assert sign_in(client, "user1").status_code == 429


def test_behind_a_trusted_proxy_each_forwarded_client_is_counted_apart(
    throttle_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from userbase.app import app

    settings = get_settings()
    monkeypatch.setattr(settings, "login_address_limit", 3)
    monkeypatch.setattr(settings, "trusted_proxies", ["10.0.0.0/8"])
    with TestClient(app, client=("10.1.2.3", 40000)) as proxied:
        sign_up(proxied, 1)
        fail(proxied, "ghost", 3, **{"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})

        def from_(address: str) -> int:
            return proxied.post(
                "/auth/token",
                data={"username": "user1", "password": PASSWORD},
                headers={"X-Forwarded-For": address},
            ).status_code

        assert from_("203.0.113.9") == 429
        assert from_("203.0.113.10") == 200
        # The left-most entry is whatever the client claimed; only the proxy's entry counts.
        assert from_("203.0.113.9, 10.0.0.5") == 429


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),
        ("10.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "1.1.1.1, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.1"),
        ("10.0.0.1", "not-an-ip", "10.0.0.1"),
        ("10.0.0.1", None, "10.0.0.1"),
        (None, None, "unknown"),
    ],
)
def test_client_address_reads_forwarded_for_from_the_right(
    peer: str | None, forwarded: str | None, expected: str
) -> None:
    from userbase.client_address import client_address

    assert client_address(peer, forwarded, ["10.0.0.0/8"]) == expected


@pytest.mark.live
def test_two_instances_share_tokens_logouts_and_the_throttle(
    database_url: str, throttle_store: str
) -> None:
    extra = {}
    if throttle_store == "redis":
        settings = get_settings()
        extra = {
            "USERBASE_REDIS_URL": REDIS_URL,
            "USERBASE_REDIS_NAMESPACE": settings.redis_namespace,
        }
    first, second = LiveServer(database_url, **extra), LiveServer(database_url, **extra)
    try:
        with httpx.Client(base_url=first.url) as a, httpx.Client(base_url=second.url) as b:
            sign_up(a, 1)
            token = sign_in(a, "user1").json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            assert b.get("/users/me", headers=auth).status_code == 200
            assert b.post("/auth/logout", headers=auth).status_code == 204
            assert a.get("/users/me", headers=auth).status_code == 401

            # Neither client has signed in to the account before (no device cookie): their
            # failures count for the account, on whichever instance they land.
            a.cookies.clear()
            statuses = [fail(c, "user1", 1)[0] for c in (a, b) * 5]
            assert statuses == [401] * 10
            assert sign_in(a, "user1").status_code == 429
            assert sign_in(b, "user1").status_code == 429
    finally:
        first.stop()
        second.stop()


def test_pruning_deletes_only_events_that_left_every_window() -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from userbase.database import SessionLocal
    from userbase.models import ThrottleEvent, utcnow
    from userbase.throttle import longest_window, prune_throttle_events

    now = utcnow()
    with SessionLocal.begin() as session:
        session.add_all(
            [
                ThrottleEvent(key="old", occurred_at=now - longest_window() - timedelta(seconds=1)),
                ThrottleEvent(
                    key="live", occurred_at=now - longest_window() + timedelta(minutes=1)
                ),
            ]
        )
    with SessionLocal.begin() as session:
        assert prune_throttle_events(session, now) == 1
    with SessionLocal() as session:
        assert session.scalars(select(ThrottleEvent.key)).all() == ["live"]
