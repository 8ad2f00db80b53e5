"""Users: the queries and rules of the users resource. No HTTP here, and never a commit."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from userbase.models import User

# Larger than any character, so [prefix, prefix + _AFTER_ALL) holds exactly the keys that start
# with prefix under a byte-wise collation: an index range scan on every engine, no LIKE escaping.
_AFTER_ALL = "\U0010ffff"

PUBLIC_COLUMNS = (User.id, User.username, User.display_name, User.created_at)
PublicRow = Row[int, str, str | None, datetime]

# Built once: the statements and their compiled-SQL cache keys are reused by every request.
_SELECT_PUBLIC = select(*PUBLIC_COLUMNS).where(User.id == bindparam("user_id"))
_PAGE = (
    select(*PUBLIC_COLUMNS)
    .where(User.id > bindparam("after"))
    .order_by(User.id)
    .limit(bindparam("limit"))
)
_PAGE_WITH_PREFIX = _PAGE.where(
    User.username_key >= bindparam("low"), User.username_key < bindparam("high")
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


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[PublicRow]
    next_after: int | None


def create_user(
    session: Session,
    *,
    username: str,
    email: str,
    password_hash: str,
    display_name: str | None,
) -> User:
    """Add a user and flush, so a taken username or email surfaces here as UserExists."""
    user = User(
        username=username, email=email, password_hash=password_hash, display_name=display_name
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        raise UserExists(_clashing_field(exc)) from exc
    return user


def _clashing_field(exc: IntegrityError) -> str:
    # Every engine names the violated constraint (or its column) in the message; the naming
    # convention in models.py makes the names predictable.
    return "email" if "email_key" in str(exc.orig) else "username"


def get_public_user(session: Session, user_id: int) -> PublicRow:
    """The public columns of one user, or UserNotFound."""
    row = session.execute(_SELECT_PUBLIC, {"user_id": user_id}).first()
    if row is None:
        raise UserNotFound(user_id)
    return row


def list_public_users(
    session: Session, *, after: int, limit: int, username_prefix: str | None
) -> Page:
    """One keyset page ordered by id: rows with id > after; next_after is set when more exist."""
    params: dict[str, Any] = {"after": after, "limit": limit + 1}
    statement = _PAGE
    if username_prefix:
        low = username_prefix.lower()
        params.update(low=low, high=low + _AFTER_ALL)
        statement = _PAGE_WITH_PREFIX
    rows = session.execute(statement, params).all()
    if len(rows) > limit:
        return Page(rows=rows[:limit], next_after=rows[limit - 1].id)
    return Page(rows=rows, next_after=None)
