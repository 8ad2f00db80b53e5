"""Routes that hash a password take a turn before their session, so a burst of them cannot hold
every session while it waits for the hashing threads.

A sign-in or sign-up spends most of its time in argon2 (~17-40 ms a hash, on
USERBASE_HASH_CONCURRENCY threads). Its session slot (session_slots.py) is taken when the
request starts, so without turns 64 concurrent sign-ins on one hashing thread held all 15
sessions for the second they queued, and every other request, a one-row read too, waited behind
them for a slot (after pool_timeout: 503). With turns, at most `hashing_turns()` such requests
hold a session at once, the others wait here without one (async: no thread either), and the
rest of the sessions stay free for everything else.
"""

from collections.abc import AsyncIterator

from fastapi import Depends

from userbase.config import Settings, get_settings
from userbase.turns import Turns


class HashingBusy(Exception):
    """No hashing turn came free within pool_timeout: the service is busy hashing passwords."""


def hashing_turns(settings: Settings) -> int:
    """Two requests per hashing thread keep the threads busy while one of them talks to the
    database; at most half the sessions, so the others are never all taken by hashing."""
    return min(2 * settings.hash_concurrency, max(1, settings.max_sessions // 2))


_TURNS = Turns(
    "userbase_hashing_turns",
    size=lambda: hashing_turns(get_settings()),
    timed_out=lambda timeout: HashingBusy(f"no hashing turn free within {timeout:g} s"),
)


async def hashing_turn() -> AsyncIterator[None]:
    """Hold a turn for the life of the request."""
    async with _TURNS.held():
        yield


# For a route's `dependencies=[...]`: FastAPI solves those before the route's parameters (so
# before get_db takes a session slot) and ends them after (once get_db has committed).
HASHING_TURN = Depends(hashing_turn, scope="function")
