"""Which database errors mean "unavailable, try again" (503) rather than a bug (500)."""

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# PostgreSQL SQLSTATE classes: 08 connection exception, 40 transaction rollback (serialization
# failure, deadlock), 53 insufficient resources (too many connections), 57 operator
# intervention (admin shutdown, statement timeout). https://www.postgresql.org/docs/current/errcodes-appendix.html
_POSTGRES_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
# MariaDB client and server error numbers: 1040 too many connections, 1053 server shutdown,
# 1205 lock wait timeout, 1213 deadlock, 1927 connection killed, 1969 max_statement_time
# exceeded, 2002/2003 cannot connect, 2006 server gone away, 2013 lost connection, 4031 idle
# client disconnected. https://mariadb.com/kb/en/mariadb-error-code-reference/
_MARIADB_TRANSIENT_ERRNOS = frozenset(
    {1040, 1053, 1205, 1213, 1927, 1969, 2002, 2003, 2006, 2013, 4031}
)
# "database or disk is full" (SQLITE_FULL): writes fail until space is freed, then work again
# by themselves; reads go on meanwhile.
_SQLITE_TRANSIENT_MESSAGES = (
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
)


def is_database_unavailable(exc: BaseException) -> bool:
    """True for a lost or refused connection, an exhausted pool, a timeout, a lock conflict or
    (SQLite) a full disk."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    module = type(orig).__module__
    if module.startswith("psycopg"):
        if sqlstate is None:
            # No SQLSTATE: the client failed. A lost socket is an OperationalError, and so is
            # a connection attempt that timed out (its subclass ConnectionTimeout: a server
            # that accepts but does not answer); a value it refused to send (a NUL in a
            # string, say) is a DataError, and a bug of ours.
            return any(cls.__name__ == "OperationalError" for cls in type(orig).__mro__)
        return sqlstate[:2] in _POSTGRES_TRANSIENT_CLASSES
    if module.startswith("pymysql"):
        errno = orig.args[0] if orig is not None and orig.args else None
        return errno in _MARIADB_TRANSIENT_ERRNOS
    if module.startswith("sqlite3"):
        return any(message in str(orig).lower() for message in _SQLITE_TRANSIENT_MESSAGES)
    return False
