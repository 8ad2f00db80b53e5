"""Sessions in use never outnumber pool connections; a request waits for one at most pool_timeout.

get_db takes a slot before it opens its session and gives it back after get_db has
committed and closed, so the pool always has a connection for a session that holds a slot: no
worker thread ever blocks inside the pool. Waiting for a slot is async (no thread is held), FIFO,
and bounded: after pool_timeout the request gets the same 503 an exhausted pool would give.

FastAPI's `Depends(get_db, max_concurrency=N)` queues the same way but without a bound, so a
request behind slow ones can wait for ever; docs/reliability.md has the measurements.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from userbase.config import get_settings

# One semaphore per event loop (each worker process and each TestClient has its own loop).
_slots: RunVar[anyio.Semaphore] = RunVar("userbase_session_slots")

# anyio's default thread pool; routes that hold a slot each need a thread, and /readyz and the
# password hashes need a few more.
_DEFAULT_THREADS = 40
_SPARE_THREADS = 8


def _semaphore() -> anyio.Semaphore:
    try:
        return _slots.get()
    except LookupError:
        semaphore = anyio.Semaphore(get_settings().max_sessions)
        _slots.set(semaphore)
        return semaphore


@asynccontextmanager
async def session_slot() -> AsyncIterator[None]:
    """Hold one of pool_size + max_overflow slots for the life of a request's session."""
    semaphore = _semaphore()
    timeout = get_settings().pool_timeout
    if not await acquire_within(semaphore, timeout):
        raise PoolTimeoutError(f"no database session free within {timeout:g} s")
    try:
        yield
    finally:
        semaphore.release()


async def acquire_within(semaphore: anyio.Semaphore, timeout: float) -> bool:
    """Take one of `semaphore`'s tokens, waiting at most `timeout` seconds; whether it did."""
    try:
        # A free token needs no timer: the common case skips the cancel scope's deadline.
        semaphore.acquire_nowait()
        return True
    except anyio.WouldBlock:
        pass
    with anyio.move_on_after(timeout):
        await semaphore.acquire()
        return True
    return False


def size_thread_pool() -> None:
    """Give the thread pool a thread for every slot and a few more; never shrink it."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    wanted = max(_DEFAULT_THREADS, get_settings().max_sessions + _SPARE_THREADS)
    if limiter.total_tokens < wanted:
        limiter.total_tokens = wanted
