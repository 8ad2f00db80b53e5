"""Admission: whether a request may start, must wait, or gets 503 or 504, decided in one place.

A request passes three gates on its way to the database, in this order:

1. The request deadline (`RequestDeadline`, middleware): past USERBASE_REQUEST_TIMEOUT, whatever
   the request awaits is cancelled and the answer is 504. Work in a worker thread cannot be
   interrupted; it ends by the statement timeout, and the deadline takes effect when it returns.
   The answer never lies about a write: get_db calls `claim_commit()` before committing, which
   either refuses (the deadline passed: roll back, 504) or lifts the deadline for the rest of the
   request, so a committed unit of work is always answered as such.
2. A hashing turn (`HASHING_TURN`, on the routes that hash a password): a sign-in or sign-up
   spends most of its time in argon2 (~17-40 ms a hash, on USERBASE_HASH_CONCURRENCY threads).
   Without turns, 64 concurrent sign-ins on one hashing thread held all 15 database slots for the
   second they queued, and every other request, a one-row read too, waited behind them (after
   pool_timeout: 503). With turns, at most `hashing_turns()` such requests go on to take a slot;
   the others wait here holding neither a slot nor a thread; past pool_timeout: `HashingBusy`, 503.
3. A database slot (`database_slot()`, taken by get_db before it opens its session and given back
   after it has committed and closed): there are pool_size + max_overflow slots, so the pool
   always has a connection for a session and no worker thread ever blocks inside the pool. Past
   pool_timeout: the same 503 an exhausted pool would give.

Turns and slots are one mechanism (`Turns`): a semaphore per event loop, waited for
asynchronously, first come first served, for at most pool_timeout. FastAPI's
`Depends(get_db, max_concurrency=N)` queues the same way but without a bound, so a request behind
slow ones can wait for ever; docs/reliability.md has the measurements.
"""

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from userbase.config import Settings, get_settings
from userbase.problem import problem


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


# The database slots.

_SLOTS = Turns(
    "userbase_database_slots",
    size=lambda: get_settings().max_sessions,
    timed_out=lambda timeout: PoolTimeoutError(f"no database slot free within {timeout:g} s"),
)


def database_slot() -> AbstractAsyncContextManager[None]:
    """Hold one of pool_size + max_overflow slots for the life of a request's session."""
    return _SLOTS.held()


# anyio's default thread pool; routes that hold a slot each need a thread, and /readyz and the
# password hashes need a few more.
_DEFAULT_THREADS = 40
_SPARE_THREADS = 8


def size_thread_pool() -> None:
    """Give the thread pool a thread for every slot and a few more; never shrink it."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    wanted = max(_DEFAULT_THREADS, get_settings().max_sessions + _SPARE_THREADS)
    if limiter.total_tokens < wanted:
        limiter.total_tokens = wanted


# The hashing turns.


class HashingBusy(Exception):
    """No hashing turn came free within pool_timeout: the service is busy hashing passwords."""


def hashing_turns(settings: Settings) -> int:
    """Two requests per hashing thread keep the threads busy while one of them talks to the
    database; at most half the slots, so the others are never all taken by hashing."""
    return min(2 * settings.hash_concurrency, max(1, settings.max_sessions // 2))


_HASHING_TURNS = Turns(
    "userbase_hashing_turns",
    size=lambda: hashing_turns(get_settings()),
    timed_out=lambda timeout: HashingBusy(f"no hashing turn free within {timeout:g} s"),
)


async def hashing_turn() -> AsyncIterator[None]:
    """Hold a turn for the life of the request."""
    async with _HASHING_TURNS.held():
        yield


# For a route's `dependencies=[...]`: FastAPI solves those before the route's parameters (so
# before get_db takes a database slot) and ends them after (once get_db has committed).
HASHING_TURN = Depends(hashing_turn, scope="function")


# The request deadline.


class DeadlineExceeded(Exception):
    """The request ran out of time before its unit of work could commit."""


def _lift(cancel_scope: anyio.CancelScope) -> None:
    """Let the rest of the request run to its end, however long it takes."""
    cancel_scope.shield = True  # from any other scope's cancellation
    # A shield does not keep out the scope's own deadline: a commit that outlasted it was
    # answered 504, and a started answer cut short (tests/test_admission.py).
    cancel_scope.deadline = math.inf


class _Deadline:
    def __init__(self, cancel_scope: anyio.CancelScope) -> None:
        self.cancel_scope = cancel_scope

    def claim(self) -> bool:
        """On the event loop: False if the deadline has fired, else lift it for the rest."""
        if self.cancel_scope.cancel_called:
            return False
        _lift(self.cancel_scope)
        return True


_current_deadline: ContextVar[_Deadline | None] = ContextVar("userbase_deadline", default=None)


def claim_commit() -> None:
    """From get_db, on the event loop, before commit: raise DeadlineExceeded if it is too late."""
    deadline = _current_deadline.get()
    if deadline is None:  # not inside a request (CLI, scripts)
        return
    if not deadline.claim():
        raise DeadlineExceeded


class RequestDeadline:
    """Pure ASGI middleware: cancel the request after `seconds` and answer 504 if nothing was."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        expired = False
        with anyio.CancelScope(deadline=anyio.current_time() + self.seconds) as cancel_scope:

            async def tracking_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    # Once the answer has started, cutting it off would only truncate it.
                    _lift(cancel_scope)
                await send(message)

            token = _current_deadline.set(_Deadline(cancel_scope))
            try:
                await self.app(scope, receive, tracking_send)
            except DeadlineExceeded:
                expired = True
            finally:
                _current_deadline.reset(token)
        if (expired or cancel_scope.cancelled_caught) and not started:
            detail = f"The request did not complete within {self.seconds:g} seconds."
            await problem(504, detail, instance=scope["path"])(scope, receive, send)
