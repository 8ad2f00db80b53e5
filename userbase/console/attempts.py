"""A page's action, tried in a savepoint of the request's unit of work.

Over the API a refused action raises, and get_db rolls its writes back (or, for a Refusal,
commits them: refusals.py). A page answers a refusal itself, with the form again and the error
at its field, and get_db then commits whatever the request did. So the console's pages run each
action here: when it fails, what it wrote is undone (a change half made, a flush PostgreSQL
would not let the transaction go past), but a Refusal's writes (the failure the sign-in throttle
counted, its audit event) are kept, exactly as over the API.
"""

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from userbase.refusals import Refusal

T = TypeVar("T")


def attempt(session: Session, action: Callable[[], T]) -> T:
    """`action()`'s result; its exception re-raised once its writes are undone (or, for a
    Refusal, kept)."""
    savepoint = session.begin_nested()
    try:
        result = action()
    except Refusal:
        savepoint.commit()
        raise
    except BaseException:
        savepoint.rollback()
        raise
    savepoint.commit()
    return result
