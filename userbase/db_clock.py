"""The database's clock as a SQL expression, so instances whose clocks disagree agree on times.

A lease or a back-off computed from each host's clock lets a host a minute ahead take over
another's lease early; computed in the statement, every instance reads the one clock the rows
are compared against.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, type_coerce

from userbase.models import UTCDateTime


def database_now(dialect: str, offset: timedelta = timedelta()) -> ColumnElement[datetime]:
    """The database's time now (plus `offset`), typed like the models' UTCDateTime columns.

    Each engine's value has the form its UTCDateTime columns store, so comparisons and
    assignments need no conversion: PostgreSQL a timestamptz; MariaDB a UTC DATETIME(6);
    SQLite the 'YYYY-MM-DD HH:MM:SS.ffffff' text SQLAlchemy writes (SQLite's own clock has
    milliseconds: the last three digits are zeros).
    """
    microseconds = offset // timedelta(microseconds=1)
    if dialect == "postgresql":
        # statement_timestamp(), not now(): the time of this statement, as on the other engines,
        # rather than the start of its transaction.
        expression: ColumnElement[Any] = func.statement_timestamp() + offset
    elif dialect in ("mysql", "mariadb"):
        expression = func.timestampadd(
            literal_column("MICROSECOND"), microseconds, func.utc_timestamp(6)
        )
    else:
        expression = func.strftime(
            "%Y-%m-%d %H:%M:%f", "now", f"{microseconds / 1e6:+.6f} seconds"
        ).concat("000")
    return type_coerce(expression, UTCDateTime())
