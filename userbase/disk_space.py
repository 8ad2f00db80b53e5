"""Room left for an SQLite database: on a full disk every write fails, while reads still work."""

import os

from sqlalchemy import Engine

# Below this much free space the database's disk counts as full. A create writes a few pages to
# the WAL (4 KiB each, ~10 for a user, its indexes and its audit row), and a checkpoint copies up
# to 1,000 pages (SQLite's default wal_autocheckpoint: 4 MiB) back into the database file, whose
# growth needs room too: 1 MiB is "writes may fail any moment", not a comfortable margin.
ROOM_NEEDED_BYTES = 1 << 20


class DiskFull(Exception):
    """The filesystem holding the SQLite database has (almost) no room left."""


def check_room_for_writes(engine: Engine) -> None:
    """Raise DiskFull when `engine` is SQLite on a file whose filesystem has less than
    ROOM_NEEDED_BYTES free for an unprivileged process. Other engines: nothing to check here
    (their server reports its own disk)."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return
    stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    free = stats.f_bavail * stats.f_frsize
    if free < ROOM_NEEDED_BYTES:
        raise DiskFull(f"{free} bytes free on the database's filesystem")
