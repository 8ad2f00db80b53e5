"""The Redis client, when USERBASE_REDIS_URL is set (today only /readyz uses it)."""

from functools import lru_cache

from redis import Redis

from userbase.config import get_settings


@lru_cache
def redis_client() -> Redis | None:
    """One client (with its own connection pool) per process, or None when Redis is not set."""
    settings = get_settings()
    if settings.redis_url is None:
        return None
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=settings.connect_timeout,
    )
