"""Throttles: events (failed sign-ins, mails sent on request) counted per key in a sliding window,
in the database (here) or in Redis (redis_throttle.py). Counts live outside the process, so every
instance shares them; throttle_store.py picks the store.
"""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from userbase.config import get_settings
from userbase.models import ThrottleEvent, table_of


class StoreUnavailable(Exception):
    """The throttle's store (Redis) did not answer: the request gets 503, try again shortly."""


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `events` events for `key` within `window`."""

    key: str
    events: int
    window: timedelta


def account_key(user_id: int | None, identifier: str) -> str:
    # Known accounts are counted by id, so switching between username and email gains nothing.
    # Unknown names by a digest: fixed length, and no control character reaches the store.
    if user_id is not None:
        return f"account:{user_id}"
    return f"name:{hashlib.sha256(identifier.lower().encode()).hexdigest()}"


def address_key(client_address: str) -> str:
    return f"address:{client_address}"


def login_limits(account: str, address: str) -> list[Limit]:
    settings = get_settings()
    window = timedelta(seconds=settings.login_window_seconds)
    return [
        Limit(account, settings.login_account_limit, window),
        Limit(address, settings.login_address_limit, window),
    ]


class Throttle(Protocol):
    def retry_after(
        self,
        session: Session,
        limits: Sequence[Limit],
        now: datetime,
        seen: dict[str, int] | None = None,
    ) -> int | None:
        """Seconds until another event is allowed, or None when no limit is reached.

        When given, `seen` gets the number of events counted per key, where the store counts
        them (a key left out may have some).
        """

    def record(self, session: Session, limits: Sequence[Limit], now: datetime) -> None: ...

    def reset(self, session: Session, key: str) -> None: ...


class DatabaseThrottle:
    """Counts rows of throttle_events, written in the request's own unit of work."""

    # Core, on the table's columns: every sign-in runs it once per limit, and the ORM's
    # execution path cost more than the statements (two counts: ~260 against ~180 µs).
    _events = table_of(ThrottleEvent).c
    _RECENT = (
        select(_events.occurred_at)
        .where(_events.key == bindparam("key"), _events.occurred_at > bindparam("since"))
        .order_by(_events.occurred_at.desc())
        .limit(bindparam("events"))
    )

    def retry_after(
        self,
        session: Session,
        limits: Sequence[Limit],
        now: datetime,
        seen: dict[str, int] | None = None,
    ) -> int | None:
        waits = []
        for limit in limits:
            params = {"key": limit.key, "since": now - limit.window, "events": limit.events}
            recent = session.connection().execute(self._RECENT, params).scalars().all()
            if seen is not None:
                seen[limit.key] = len(recent)
            if len(recent) >= limit.events:
                # Allowed again when the oldest of the last `events` events leaves the window.
                waits.append(seconds_until(recent[-1] + limit.window, now))
        return max(waits) if waits else None

    def record(self, session: Session, limits: Sequence[Limit], now: datetime) -> None:
        # Only an INSERT: a DELETE of the key's old rows here took InnoDB gap locks that
        # deadlocked concurrent requests counting the same key (16 sign-ups from one address:
        # 503s on MariaDB). Old rows are pruned apart (prune_throttle_events).
        session.execute(
            insert(ThrottleEvent), [{"key": limit.key, "occurred_at": now} for limit in limits]
        )

    def reset(self, session: Session, key: str) -> None:
        session.execute(delete(ThrottleEvent).where(ThrottleEvent.key == key))


# No limit counts further back than this (the longest window: an hour for sign-ups and mails,
# USERBASE_LOGIN_WINDOW_SECONDS for sign-ins, whichever is longer).
def longest_window() -> timedelta:
    return max(timedelta(hours=1), timedelta(seconds=get_settings().login_window_seconds))


def prune_throttle_events(session: Session, now: datetime, *, batch_size: int = 1000) -> int:
    """Delete up to batch_size events older than every window; the server runs it each minute."""
    ids = session.scalars(
        select(ThrottleEvent.id)
        .where(ThrottleEvent.occurred_at <= now - longest_window())
        .limit(batch_size)
    ).all()
    if ids:
        session.execute(delete(ThrottleEvent).where(ThrottleEvent.id.in_(ids)))
    return len(ids)


def seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))
