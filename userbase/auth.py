"""Signing in and bearer tokens: credentials, issuing, resolving and revoking. No HTTP here."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from userbase.config import get_settings
from userbase.db_errors import is_database_unavailable
from userbase.models import Token, User, table_of, utcnow
from userbase.security import TOKEN_PATTERN, new_token, token_digest, verify_password_or_dummy
from userbase.throttle import account_key, address_key, get_throttle, login_limits

# last_used_at is written at most this often per token: a read should rarely cost a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)
USER_AGENT_MAX = 200
MAX_TOKEN_ID = 2_147_483_647

_TOKEN_SHAPE = re.compile(TOKEN_PATTERN)

_users_table, _tokens_table = table_of(User), table_of(Token)
_users, _tokens = _users_table.c, _tokens_table.c
# What a sign-in needs of the user, as one Core row: an ORM User is loaded only to rehash.
_USER_BY_LOGIN = select(
    _users.id, _users.password_hash, _users.is_active, _users.email_verified
).where(
    or_(
        _users.username_key == func.lower(bindparam("login")),
        _users.email_key == func.lower(bindparam("login")),
    )
)
_TOKEN_OWNER = (
    select(
        _users.id,
        _users.username,
        _users.email,
        _users.display_name,
        _users.is_active,
        _users.is_admin,
        _users.email_verified,
        _users.created_at,
        _users.version,
        _tokens.id,
        _tokens.last_used_at,
    )
    .join_from(_tokens_table, _users_table, _tokens.user_id == _users.id)
    .where(_tokens.token_hash == bindparam("digest"), _tokens.expires_at > bindparam("now"))
)


class SignInRefused(Exception):
    """Why a sign-in failed. `reason` and `user_id` are for the audit trail, not the client."""

    def __init__(self, message: str, *, user_id: int | None, reason: str) -> None:
        super().__init__(message)
        self.user_id = user_id
        self.reason = reason


class InvalidCredentials(SignInRefused):
    """Unknown user, wrong password or inactive account: deliberately indistinguishable."""

    def __init__(self, *, user_id: int | None = None, reason: str = "invalid") -> None:
        super().__init__("Incorrect username or password.", user_id=user_id, reason=reason)


class LoginThrottled(SignInRefused):
    """Too many failed sign-ins for this account or client address."""

    def __init__(self, retry_after: int, *, user_id: int | None = None) -> None:
        super().__init__(
            "Too many failed sign-ins; try again later.", user_id=user_id, reason="throttled"
        )
        self.retry_after = retry_after


class EmailNotVerified(SignInRefused):
    """The right password, but USERBASE_REQUIRE_VERIFIED_EMAIL is on and the address is not."""

    def __init__(self, *, user_id: int) -> None:
        super().__init__(
            "Verify your email address before signing in.",
            user_id=user_id,
            reason="email_not_verified",
        )


class NotAuthenticated(Exception):
    """No bearer token, or one that is unknown, expired, revoked or malformed."""

    def __init__(
        self, detail: str = "Sign in and send the token as 'Authorization: Bearer'."
    ) -> None:
        super().__init__(detail)


class SessionNotFound(Exception):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"No live session with id {token_id}.")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Account:
    """The signed-in user's account as read with their token: plain values, no ORM object.

    Every request with a token reads it, so it is one Core row; a route that changes the
    account locks and loads the ORM User itself (users.lock_user).
    """

    id: int
    username: str
    email: str
    display_name: str | None
    is_active: bool
    is_admin: bool
    email_verified: bool
    created_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user of a request, and the token they presented."""

    user: Account
    token_id: int


def sign_in(
    session: Session,
    *,
    login: str,
    password: str,
    client_address: str,
    user_agent: str | None,
) -> IssuedToken | SignInRefused:
    """Check the credentials and issue a token, or return why not.

    While a limit is reached the answer is LoginThrottled, before the password is even looked
    at: the right password does not help then. Refusals are returned, not raised, so that the
    request's unit of work commits the failure count and the audit record.
    """
    throttle = get_throttle()
    now = utcnow()
    # No username or address holds a control character; and PostgreSQL cannot even be sent one.
    user = (
        session.connection().execute(_USER_BY_LOGIN, {"login": login}).first()
        if login.isprintable()
        else None
    )
    user_id = user.id if user else None
    account = account_key(user_id, login)
    limits = login_limits(account, address_key(client_address))
    seen: dict[str, int] = {}
    retry_after = throttle.retry_after(session, limits, now, seen)
    if retry_after is not None:
        return LoginThrottled(retry_after, user_id=user_id)

    matches, new_hash = verify_password_or_dummy(password, user.password_hash if user else None)
    if user is None or not matches or not user.is_active:
        throttle.record(session, limits, now)
        reason = "unknown_user" if user is None else "wrong_password" if not matches else "inactive"
        return InvalidCredentials(user_id=user_id, reason=reason)
    if get_settings().require_verified_email and not user.email_verified:
        return EmailNotVerified(user_id=user.id)

    if seen.get(account, 1):  # no failure counted in the window: nothing worth a DELETE
        throttle.reset(session, account)
    if new_hash is not None:  # parameters were raised since this hash was made
        _load_user(session, user.id).password_hash = new_hash
    return issue_token(session, user.id, client_address=client_address, user_agent=user_agent)


def _load_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:  # read a moment ago in this transaction, and users are never re-keyed
        raise LookupError(f"user {user_id} vanished during its sign-in")
    return user


def issue_token(
    session: Session, user_id: int, *, client_address: str | None, user_agent: str | None
) -> IssuedToken:
    ttl = get_settings().token_ttl_seconds
    token, digest = new_token()
    now = utcnow()
    # A Core INSERT: the token's row is never read back in this request.
    session.connection().execute(
        _INSERT_TOKEN,
        {
            "user_id": user_id,
            "token_hash": digest,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl),
            "client_address": client_address,
            "user_agent": user_agent[:USER_AGENT_MAX] if user_agent else None,
        },
    )
    return IssuedToken(token=token, expires_in=ttl, user_id=user_id)


_INSERT_TOKEN = insert(_tokens_table)


def resolve_token(session: Session, token: str) -> Principal:
    """The active user owning this live token, or NotAuthenticated."""
    if not _TOKEN_SHAPE.match(token):
        raise NotAuthenticated("The bearer token is malformed.")
    now = utcnow()
    params = {"digest": token_digest(token), "now": now}
    row = session.connection().execute(_TOKEN_OWNER, params).first()
    if row is None:
        raise NotAuthenticated("The bearer token is unknown, expired or revoked.")
    *account, token_id, last_used_at = row
    user = Account(*account)
    if not user.is_active:
        raise NotAuthenticated("The bearer token is unknown, expired or revoked.")
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        _touch(session, token_id, now)
    return Principal(user=user, token_id=token_id)


def _touch(session: Session, token_id: int, now: datetime) -> None:
    # Best effort: a busy SQLite writer must not fail a read because of a bookkeeping column.
    statement = update(Token).where(Token.id == token_id).values(last_used_at=now)
    try:
        if session.connection().get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            # A read-only request on PostgreSQL (database.read_engine): no transaction to
            # protect with a savepoint, and the single UPDATE commits on its own.
            session.execute(statement)
        else:
            with session.begin_nested():
                session.execute(statement)
    except DBAPIError as exc:
        if not is_database_unavailable(exc):
            raise


def revoke_token(session: Session, token_id: int) -> None:
    session.execute(delete(Token).where(Token.id == token_id))


def revoke_tokens_for(session: Session, user_id: int) -> None:
    session.execute(delete(Token).where(Token.user_id == user_id))


def purge_expired_tokens(session: Session, *, batch_size: int = 1000) -> int:
    """Delete up to batch_size expired tokens; returns how many. Callers commit per batch."""
    ids = session.scalars(
        select(Token.id).where(Token.expires_at <= utcnow()).limit(batch_size)
    ).all()
    if ids:
        session.execute(delete(Token).where(Token.id.in_(ids)))
    return len(ids)


def list_sessions(session: Session, user_id: int) -> Sequence[Token]:
    """The user's live tokens, newest first (their digests are never shown)."""
    return session.scalars(
        select(Token)
        .where(Token.user_id == user_id, Token.expires_at > utcnow())
        .order_by(Token.id.desc())
    ).all()


def revoke_session(session: Session, user_id: int, token_id: int) -> None:
    """Revoke one token of this user; SessionNotFound if they have no such live token."""
    if not 1 <= token_id <= MAX_TOKEN_ID:
        raise SessionNotFound(token_id)
    deleted = session.execute(delete(Token).where(Token.id == token_id, Token.user_id == user_id))
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        raise SessionNotFound(token_id)


def revoke_other_sessions(session: Session, user_id: int, keep_token_id: int | None) -> None:
    statement = delete(Token).where(Token.user_id == user_id)
    if keep_token_id is not None:
        statement = statement.where(Token.id != keep_token_id)
    session.execute(statement)


def lockout(session: Session, user_id: int) -> int | None:
    """Seconds the account stays locked by the sign-in throttle, or None if it is not."""
    account = account_key(user_id, "")
    limits = login_limits(account, address_key("-"))[:1]
    return get_throttle().retry_after(session, limits, utcnow())


def unlock(session: Session, user_id: int) -> None:
    """Forget the account's failed sign-ins (client-address counts are left alone)."""
    get_throttle().reset(session, account_key(user_id, ""))
