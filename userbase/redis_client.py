"""The Redis client, when USERBASE_REDIS_URL is set (the throttle store, the readiness checks)."""

from functools import lru_cache
from typing import TYPE_CHECKING

from userbase.config import get_settings

if TYPE_CHECKING:
    from redis import Redis


@lru_cache
def redis_client() -> "Redis | None":
    """One client (with its own connection pool) per process, or None when Redis is not set."""
    settings = get_settings()
    if settings.redis_url is None:
        return None
    # Imported only when configured: the redis package is ~5 MB of every worker's memory.
    from redis import Redis

    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=settings.connect_timeout,
    )
