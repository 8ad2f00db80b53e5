"""The request deadline: a request that has not started its answer in time gets 504.

The deadline cancels what awaits (a queue for a session slot, reading the body) at once. Work
in a worker thread cannot be interrupted; it ends by the statement timeout, and the deadline
takes effect when it returns. The answer never lies about a write: get_db calls claim_commit()
before committing, which either refuses (the deadline passed: roll back, 504) or lifts the
deadline for the rest of the request, so a committed unit of work is always answered as such.
"""

from contextvars import ContextVar

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from userbase.errors import problem


class DeadlineExceeded(Exception):
    """The request ran out of time before its unit of work could commit."""


class _Deadline:
    def __init__(self, cancel_scope: anyio.CancelScope) -> None:
        self.cancel_scope = cancel_scope

    def claim(self) -> bool:
        """On the event loop: False if the deadline has fired, else shield the rest."""
        if self.cancel_scope.cancel_called:
            return False
        self.cancel_scope.shield = True
        return True


_current: ContextVar[_Deadline | None] = ContextVar("userbase_deadline", default=None)


def claim_commit() -> None:
    """From get_db, on the event loop, before commit: raise DeadlineExceeded if it is too late."""
    deadline = _current.get()
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
                    cancel_scope.shield = True
                await send(message)

            token = _current.set(_Deadline(cancel_scope))
            try:
                await self.app(scope, receive, tracking_send)
            except DeadlineExceeded:
                expired = True
            finally:
                _current.reset(token)
        if (expired or cancel_scope.cancelled_caught) and not started:
            detail = f"The request did not complete within {self.seconds:g} seconds."
            await problem(504, detail, instance=scope["path"])(scope, receive, send)
