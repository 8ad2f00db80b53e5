"""Users: the queries and rules of the users table. No HTTP here, and never a commit.

The workflows that change an account (register, change, delete, promote...) are in accounts.py;
they use these queries and add the audit event and the mail.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from userbase.models import MAX_ID, User, table_of, utcnow

# Larger than any character, so [prefix, prefix + _AFTER_ALL) holds exactly the keys that start
# with prefix under a byte-wise collation: an index range scan on every engine, no LIKE escaping.
_AFTER_ALL = "\U0010ffff"

# The table's own columns, not the mapped attributes: statements of them run as plain Core
# (rows straight from the cursor, no ORM compile and loading steps) on the hot read paths.
_users = table_of(User).c
PUBLIC_COLUMNS = (_users.id, _users.username, _users.display_name, _users.created_at)
PublicRow = Row[int, str, str | None, datetime]
# Fields a user may change on their own account; admins may also change the ADMIN_ONLY ones.
SELF_SERVICE_FIELDS = frozenset({"display_name", "email"})
ADMIN_ONLY_FIELDS = frozenset({"is_active", "is_admin"})


def folded(value: str | ColumnElement[str]) -> ColumnElement[str]:
    """`value` folded to lower case the way the database computes the *_key columns.

    The one case folding of usernames and emails: lower() in SQL, as the unique constraints
    see them (SQLite folds ASCII letters only, PostgreSQL and MariaDB all of Unicode), never
    Python's str.lower(), which would find on SQLite what the constraint does not.
    """
    return func.lower(value)


# Built once: the statements and their compiled-SQL cache keys are reused by every request.
_SELECT_PUBLIC = select(*PUBLIC_COLUMNS, _users.version).where(_users.id == bindparam("user_id"))
_SELECT_FOR_UPDATE = (
    select(User)
    .where(User.id == bindparam("user_id"))
    .with_for_update()
    # The row may already be in the session (it is the signed-in user): read it afresh, locked.
    .execution_options(populate_existing=True)
)
_OTHER_ACTIVE_ADMIN = (
    select(User.id)
    .where(User.is_admin, User.is_active, User.id != bindparam("user_id"))
    .limit(1)
    .with_for_update()
)
_PAGE = (
    select(*PUBLIC_COLUMNS)
    .where(_users.id > bindparam("after"))
    .order_by(_users.id)
    .limit(bindparam("limit"))
)
_PAGE_WITH_PREFIX = _PAGE.where(
    _users.username_key >= folded(bindparam("low")),
    _users.username_key < folded(bindparam("high")),
)


class UserExists(Exception):
    """The username or email is already taken, in some letter case."""

    def __init__(self, field: str) -> None:
        super().__init__(f"A user with this {field} already exists.")
        self.field = field


class UserNotFound(Exception):
    """No user has that id."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"No user with id {user_id}.")
        self.user_id = user_id


class LastAdmin(Exception):
    """The change would leave the service without an active admin."""

    def __init__(self) -> None:
        super().__init__("This is the last active admin: promote another user first.")


class StaleVersion(Exception):
    """The caller named a version of the user (If-Match) that is no longer current."""

    def __init__(self) -> None:
        super().__init__("The user was changed since you read it: fetch it again and retry.")


@dataclass(frozen=True, slots=True)
class Account:
    """A user's account as plain values: what the signed-in user and admins see of it
    (schemas.UserAccount's fields) and its version. Read with a token on every request, so
    it is built from one Core row; workflows that change an account lock the ORM User."""

    id: int
    username: str
    email: str
    display_name: str | None
    is_active: bool
    is_admin: bool
    email_verified: bool
    created_at: datetime
    version: int

    @classmethod
    def of(cls, user: User) -> "Account":
        return cls(
            user.id,
            user.username,
            user.email,
            user.display_name,
            user.is_active,
            user.is_admin,
            user.email_verified,
            user.created_at,
            user.version,
        )


ACCOUNT_COLUMNS = (
    _users.id,
    _users.username,
    _users.email,
    _users.display_name,
    _users.is_active,
    _users.is_admin,
    _users.email_verified,
    _users.created_at,
    _users.version,
)


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[PublicRow]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class AdminFilters:
    """Filters only admins may use on the user list; every one is backed by an index."""

    email: str | None = None
    email_prefix: str | None = None
    is_active: bool | None = None
    is_admin: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def any(self) -> bool:
        return any(value is not None for value in (getattr(self, f) for f in self.__slots__))


@dataclass(frozen=True, slots=True)
class AccountPage:
    users: Sequence[User]
    next_after: int | None


def insert_user(
    session: Session,
    *,
    username: str,
    email: str,
    password_hash: str,
    display_name: str | None,
    is_admin: bool = False,
) -> User:
    """Insert a user; a taken username or email (in any letter case) raises UserExists."""
    user = User(
        username=username,
        email=email,
        password_hash=password_hash,
        display_name=display_name,
        is_admin=is_admin,
        created_at=utcnow(),
    )
    try:
        # In a savepoint: a clash undoes this insert alone, and the caller's unit of work
        # (its throttle counts, a batch's other users) goes on.
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError as exc:
        raise UserExists(_clashing_field(exc)) from exc
    return user


def _clashing_field(exc: IntegrityError) -> str:
    # Every engine names the violated constraint (or its column) in the message; the naming
    # convention in models.py makes the names predictable.
    return "email" if "email_key" in str(exc.orig) else "username"


def taken_field(session: Session, *, username: str, email: str) -> str | None:
    """ "username" or "email" when one is taken already (in any letter case), else None.

    A read before the work of a sign-up (the hash): the unique constraints still decide a race.
    """
    found = session.execute(
        select(_users.username_key == folded(username)).where(
            (_users.username_key == folded(username)) | (_users.email_key == folded(email))
        )
    ).first()
    if found is None:
        return None
    return "username" if found[0] else "email"


def get_public_user(session: Session, user_id: int) -> Row[int, str, str | None, datetime, int]:
    """The public columns of one user and its version, or UserNotFound."""
    _ensure_possible(user_id)
    row = session.connection().execute(_SELECT_PUBLIC, {"user_id": user_id}).first()
    if row is None:
        raise UserNotFound(user_id)
    return row


def find_by_email(session: Session, email: str) -> User | None:
    """The user with this address, compared the way the unique constraint compares them."""
    return session.scalars(select(User).where(User.email_key == folded(email))).first()


def find_by_username(session: Session, username: str) -> User | None:
    """The user with this username in any letter case, locked for the caller's unit of work."""
    return session.scalars(
        select(User).where(User.username_key == folded(username)).with_for_update()
    ).first()


def same_email(session: Session, user: User, email: str) -> bool:
    """Whether `email` is the user's address, compared as the unique constraint compares."""
    return bool(session.scalar(select(folded(bindparam("email", email)) == user.email_key)))


def _ensure_possible(user_id: int) -> None:
    if not 1 <= user_id <= MAX_ID:
        raise UserNotFound(user_id)


def get_user(session: Session, user_id: int) -> User:
    _ensure_possible(user_id)
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound(user_id)
    return user


def lock_user(session: Session, user_id: int) -> User:
    """The user's row, locked until the unit of work ends (concurrent changes queue behind it)."""
    _ensure_possible(user_id)
    user = session.scalars(_SELECT_FOR_UPDATE, {"user_id": user_id}).first()
    if user is None:
        raise UserNotFound(user_id)
    return user


def ensure_version(user: User, versions: Iterable[int] | None) -> None:
    """StaleVersion unless `versions` is None (any version will do) or holds the current one."""
    if versions is not None and user.version not in versions:
        raise StaleVersion


def apply_changes(session: Session, user: User, changes: dict[str, Any]) -> None:
    """Write already-authorised changes; the version column makes the UPDATE compare-and-set."""
    if (
        user.is_admin
        and user.is_active
        and (changes.get("is_admin") is False or changes.get("is_active") is False)
    ):
        ensure_another_active_admin(session, user)
    for field, value in changes.items():
        setattr(user, field, value)
    try:
        session.flush()
    except IntegrityError as exc:
        raise UserExists(_clashing_field(exc)) from exc


def ensure_another_active_admin(session: Session, user: User) -> None:
    # Locks the other admins' rows too, so two admins demoting each other cannot both succeed.
    if session.execute(_OTHER_ACTIVE_ADMIN, {"user_id": user.id}).first() is None:
        raise LastAdmin


def list_public_users(
    session: Session, *, after: int, limit: int, username_prefix: str | None
) -> Page:
    """One keyset page ordered by id: rows with id > after; next_after is set when more exist."""
    params: dict[str, Any] = {"after": min(after, MAX_ID), "limit": limit + 1}
    statement = _PAGE
    if username_prefix:
        params.update(low=username_prefix, high=username_prefix + _AFTER_ALL)
        statement = _PAGE_WITH_PREFIX
    rows = session.connection().execute(statement, params).all()
    if len(rows) > limit:
        return Page(rows=rows[:limit], next_after=rows[limit - 1].id)
    return Page(rows=rows, next_after=None)


def _starts_with(key: Any, prefix: str) -> list[ColumnElement[bool]]:
    return [key >= folded(prefix), key < folded(prefix + _AFTER_ALL)]


def search_users(
    session: Session,
    *,
    after: int,
    limit: int,
    username_prefix: str | None,
    filters: AdminFilters,
) -> AccountPage:
    """The admin's view of the user list: whole accounts, filtered, keyset-paged by id."""
    statement = select(User).where(User.id > min(after, MAX_ID))
    if username_prefix:
        statement = statement.where(*_starts_with(User.username_key, username_prefix))
    if filters.email is not None:
        statement = statement.where(User.email_key == folded(filters.email))
    if filters.email_prefix:
        statement = statement.where(*_starts_with(User.email_key, filters.email_prefix))
    if filters.is_active is not None:
        statement = statement.where(User.is_active == filters.is_active)
    if filters.is_admin is not None:
        statement = statement.where(User.is_admin == filters.is_admin)
    if filters.created_after is not None:
        statement = statement.where(User.created_at > filters.created_after)
    if filters.created_before is not None:
        statement = statement.where(User.created_at < filters.created_before)
    found = session.scalars(statement.order_by(User.id).limit(limit + 1)).all()
    if len(found) > limit:
        return AccountPage(users=found[:limit], next_after=found[limit - 1].id)
    return AccountPage(users=found, next_after=None)
