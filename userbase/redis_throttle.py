"""The login throttle in Redis (USERBASE_REDIS_URL): one sorted set of event times per key.

Imported only when Redis is configured (throttle_store.get_throttle). Redis down or slow surfaces as
throttle.StoreUnavailable, which errors.py answers with 503 and Retry-After.
"""

import math
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import ParamSpec, TypeVar

import redis
import redis.exceptions
from sqlalchemy.orm import Session

from userbase.throttle import Limit, StoreUnavailable, seconds_until

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def _unavailable_as_503() -> Iterator[None]:
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise StoreUnavailable(type(exc).__name__) from exc


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        with _unavailable_as_503():
            return method(*args, **kwargs)

    return guarded


class RedisThrottle:
    """One sorted set of event times per key, expiring with the window."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def _name(self, key: str) -> str:
        return f"{self.namespace}:throttle:{key}"

    @_guarded
    def retry_after(
        self,
        session: Session,
        limits: Sequence[Limit],
        now: datetime,
        seen: dict[str, int] | None = None,  # not counted here: callers reset as if some were
    ) -> int | None:
        waits = []
        for limit in limits:
            name = self._name(limit.key)
            self.client.zremrangebyscore(name, "-inf", (now - limit.window).timestamp())
            last = limit.events - 1
            nth = self.client.zrevrange(name, last, last, withscores=True)
            if nth:
                occurred_at = datetime.fromtimestamp(float(nth[0][1]), tz=now.tzinfo)
                waits.append(seconds_until(occurred_at + limit.window, now))
        return max(waits) if waits else None

    @_guarded
    def record(self, session: Session, limits: Sequence[Limit], now: datetime) -> None:
        pipeline = self.client.pipeline()
        for limit in limits:
            name = self._name(limit.key)
            pipeline.zadd(name, {f"{now.timestamp()}:{secrets.token_hex(4)}": now.timestamp()})
            pipeline.expire(name, math.ceil(limit.window.total_seconds()))
        pipeline.execute()

    @_guarded
    def reset(self, session: Session, key: str) -> None:
        self.client.delete(self._name(key))
