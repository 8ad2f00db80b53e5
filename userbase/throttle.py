"""The login throttle: failed sign-ins per key in a sliding window, in the database or Redis.

Counts live outside the process, so every instance of the service shares them.
"""

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

import redis
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from userbase.config import get_settings
from userbase.models import LoginFailure


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `failures` failed sign-ins for `key` within the window."""

    key: str
    failures: int


def account_key(user_id: int | None, identifier: str) -> str:
    # Known accounts are counted by id, so switching between username and email gains nothing.
    return f"account:{user_id}" if user_id is not None else f"name:{identifier.lower()[:320]}"


def address_key(client_address: str) -> str:
    return f"address:{client_address}"


class LoginThrottle(Protocol):
    def retry_after(self, session: Session, limits: Sequence[Limit], now: datetime) -> int | None:
        """Seconds until a sign-in may be tried again, or None when no limit is reached."""

    def record_failure(self, session: Session, keys: Sequence[str], now: datetime) -> None: ...

    def reset(self, session: Session, key: str) -> None: ...


class DatabaseThrottle:
    """Counts rows of login_failures, written in the request's own unit of work."""

    _RECENT = (
        select(LoginFailure.failed_at)
        .where(LoginFailure.key == bindparam("key"), LoginFailure.failed_at > bindparam("since"))
        .order_by(LoginFailure.failed_at.desc())
        .limit(bindparam("failures"))
    )

    def __init__(self, window: timedelta) -> None:
        self.window = window

    def retry_after(self, session: Session, limits: Sequence[Limit], now: datetime) -> int | None:
        waits = []
        for limit in limits:
            params = {"key": limit.key, "since": now - self.window, "failures": limit.failures}
            recent = session.scalars(self._RECENT, params).all()
            if len(recent) >= limit.failures:
                # Allowed again when the oldest of the last `failures` failures leaves the window.
                waits.append(_seconds_until(recent[-1] + self.window, now))
        return max(waits) if waits else None

    def record_failure(self, session: Session, keys: Sequence[str], now: datetime) -> None:
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.key.in_(keys), LoginFailure.failed_at <= now - self.window
            )
        )
        session.execute(insert(LoginFailure), [{"key": key, "failed_at": now} for key in keys])

    def reset(self, session: Session, key: str) -> None:
        session.execute(delete(LoginFailure).where(LoginFailure.key == key))


class RedisThrottle:
    """One sorted set of failure times per key, expiring with the window."""

    def __init__(self, client: redis.Redis, window: timedelta, namespace: str) -> None:
        self.client = client
        self.window = window
        self.namespace = namespace

    def _name(self, key: str) -> str:
        return f"{self.namespace}:login-failures:{key}"

    def retry_after(self, session: Session, limits: Sequence[Limit], now: datetime) -> int | None:
        waits = []
        since = (now - self.window).timestamp()
        for limit in limits:
            name = self._name(limit.key)
            self.client.zremrangebyscore(name, "-inf", since)
            nth = self.client.zrevrange(
                name, limit.failures - 1, limit.failures - 1, withscores=True
            )
            if nth:
                failed_at = datetime.fromtimestamp(float(nth[0][1]), tz=now.tzinfo)
                waits.append(_seconds_until(failed_at + self.window, now))
        return max(waits) if waits else None

    def record_failure(self, session: Session, keys: Sequence[str], now: datetime) -> None:
        pipeline = self.client.pipeline()
        for key in keys:
            name = self._name(key)
            pipeline.zadd(name, {f"{now.timestamp()}:{secrets.token_hex(4)}": now.timestamp()})
            pipeline.expire(name, math.ceil(self.window.total_seconds()))
        pipeline.execute()

    def reset(self, session: Session, key: str) -> None:
        self.client.delete(self._name(key))


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


@lru_cache
def get_throttle() -> LoginThrottle:
    settings = get_settings()
    window = timedelta(seconds=settings.login_window_seconds)
    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=settings.connect_timeout)
        return RedisThrottle(client, window, settings.redis_namespace)
    return DatabaseThrottle(window)
