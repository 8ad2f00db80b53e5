"""Sessions in use never outnumber pool connections; a request waits for one at most pool_timeout.

get_db takes a slot before it opens its session and gives it back after get_db has
committed and closed, so the pool always has a connection for a session that holds a slot: no
worker thread ever blocks inside the pool. Waiting for a slot is async (no thread is held), FIFO,
and bounded: after pool_timeout the request gets the same 503 an exhausted pool would give.

FastAPI's `Depends(get_db, max_concurrency=N)` queues the same way but without a bound, so a
request behind slow ones can wait for ever; docs/reliability.md has the measurements.
"""

from contextlib import AbstractAsyncContextManager

import anyio.to_thread
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from userbase.config import get_settings
from userbase.turns import Turns

# anyio's default thread pool; routes that hold a slot each need a thread, and /readyz and the
# password hashes need a few more.
_DEFAULT_THREADS = 40
_SPARE_THREADS = 8

_SLOTS = Turns(
    "userbase_session_slots",
    size=lambda: get_settings().max_sessions,
    timed_out=lambda timeout: PoolTimeoutError(f"no database session free within {timeout:g} s"),
)


def session_slot() -> AbstractAsyncContextManager[None]:
    """Hold one of pool_size + max_overflow slots for the life of a request's session."""
    return _SLOTS.held()


def size_thread_pool() -> None:
    """Give the thread pool a thread for every slot and a few more; never shrink it."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    wanted = max(_DEFAULT_THREADS, get_settings().max_sessions + _SPARE_THREADS)
    if limiter.total_tokens < wanted:
        limiter.total_tokens = wanted
