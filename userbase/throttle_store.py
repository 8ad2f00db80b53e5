"""The throttle store this process counts in: Redis when USERBASE_REDIS_URL is set, else the
database. Apart from throttle.py, which the Redis store imports for its types.
"""

from functools import lru_cache

from userbase.config import get_settings
from userbase.redis_client import redis_client
from userbase.throttle import DatabaseThrottle, Throttle


@lru_cache
def get_throttle() -> Throttle:
    client = redis_client()
    if client is not None:
        # Imported only when configured: the redis package is ~5 MB of every worker's memory.
        from userbase.redis_throttle import RedisThrottle

        return RedisThrottle(client, get_settings().redis_namespace)
    return DatabaseThrottle()
