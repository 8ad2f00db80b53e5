"""A fixed number of turns per event loop, waited for in order, without a thread, and not for ever.

Session slots (session_slots.py) and hashing turns (hashing_turns.py) queue requests the same
way: a request that finds every turn taken waits asynchronously, first come first served, for at
most pool_timeout, and then gets an error its handler answers with 503 and Retry-After.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.lowlevel import RunVar

from userbase.config import get_settings


class Turns:
    """`size()` turns on each event loop (each worker process and each TestClient has its own)."""

    def __init__(
        self, name: str, size: Callable[[], int], timed_out: Callable[[float], Exception]
    ) -> None:
        self._semaphores: RunVar[anyio.Semaphore] = RunVar(name)
        self._size = size
        self._timed_out = timed_out

    def _semaphore(self) -> anyio.Semaphore:
        try:
            return self._semaphores.get()
        except LookupError:
            semaphore = anyio.Semaphore(self._size())
            self._semaphores.set(semaphore)
            return semaphore

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold a turn for the body of the `async with`; raise `timed_out(pool_timeout)` if
        none came free in time."""
        semaphore = self._semaphore()
        try:
            # A free turn needs no timer: the common case skips the cancel scope's deadline.
            semaphore.acquire_nowait()
        except anyio.WouldBlock:
            timeout = get_settings().pool_timeout
            acquired = False
            with anyio.move_on_after(timeout):
                await semaphore.acquire()
                acquired = True
            if not acquired:
                raise self._timed_out(timeout) from None
        try:
            yield
        finally:
            semaphore.release()
