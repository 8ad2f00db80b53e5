"""One clock for every instance: the database's.

Expiry of links and tokens, throttle windows, purges and leases compare times. Each instance
reading its own host's clock would disagree with the others by however far their clocks
drift: a link valid on one host is expired on another, and a purge on a host running ahead
deletes live tokens. So userbase keeps time by the database server's clock: at start-up (and
every minute) it reads it once and keeps the offset, and `utcnow()` is the host's time plus that
offset: no round trip per request, and every instance agrees within the milliseconds a reading
takes. On SQLite the database runs on this host, so the offset is zero by definition.
"""

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

# Past this, start-up and `userbase check` warn: the host needs NTP (userbase itself is fine).
WARN_ABOVE_SECONDS = 1.0
# How often a server reads the database's clock again (a drifting host stays in step).
RESYNC_SECONDS = 60.0

_DATABASE_NOW = {
    # clock_timestamp(), not now(): now() is the time the transaction started.
    "postgresql": "SELECT clock_timestamp()",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "mariadb": "SELECT UTC_TIMESTAMP(6)",
}


class Clock:
    """The host's time corrected by the offset of the database's clock last measured."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def synchronize(self, engine: Engine) -> timedelta:
        """Read the database's clock and keep its offset from this host's; returns the offset."""
        self.offset = measure_offset(engine)
        return self.offset


def measure_offset(engine: Engine) -> timedelta:
    """How far the database's clock is ahead of this host's (negative: behind)."""
    query = _DATABASE_NOW.get(engine.dialect.name)
    if query is None:  # SQLite: the database's clock is this host's
        return timedelta(0)
    with engine.connect() as connection:
        before = time.time()
        database_now: datetime = connection.execute(text(query)).scalar_one()
        after = time.time()
    if database_now.tzinfo is None:  # MariaDB's UTC_TIMESTAMP is naive UTC
        database_now = database_now.replace(tzinfo=UTC)
    # The reading was taken somewhere within the round trip: its middle is the best guess.
    host_then = datetime.fromtimestamp((before + after) / 2, UTC)
    return database_now - host_then


CLOCK = Clock()


def utcnow() -> datetime:
    """Now, by the database's clock (see above)."""
    return CLOCK.now()
