"""The grants of the token endpoint, revocation and introspection. No HTTP here.

A user's sign-in through a client is a row of `tokens` without an opaque token (auth.py); its
refresh tokens (RefreshToken) are its family, and its JWT access tokens name it as `sid`.
Ending the sign-in (sign-out, revocation, a reused refresh token, a new password) deletes the
row: the family goes with it, and userbase's own API refuses its access tokens at once.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, insert, select, update
from sqlalchemy.orm import Session

from userbase import audit, auth
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings
from userbase.mfa import challenges
from userbase.models import OAuthClient, RefreshToken, Token, User, table_of, utcnow
from userbase.security import TOKEN_PATTERN, new_token, token_digest
from userbase.tokens import access_tokens, clients
from userbase.tokens.clients import ClientRow, check_scope, grants_of
from userbase.tokens.oauth_errors import (
    InvalidClientSettings,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    MfaRequired,
    UnauthorizedClient,
    UnsupportedTokenType,
)
from userbase.users import ACCOUNT_COLUMNS, Account

# The password grant (RFC 6749 section 4.3) is for the service's own apps only: a client
# registered --first-party with this grant. Third parties get authorization_code (next issue).
PASSWORD_GRANT = "password"
# Its second step for a user with a second factor (an extension grant, RFC 6749 section 4.5):
# the mfa_token of the mfa_required error and a code. Clients of the password grant use it.
MFA_GRANT = "urn:userbase:params:oauth:grant-type:mfa"

_TOKEN_SHAPE = re.compile(TOKEN_PATTERN)
_users, _tokens = table_of(User).c, table_of(Token).c
_refresh_tokens, _clients = table_of(RefreshToken).c, table_of(OAuthClient).c
# The statements of the hot paths are built once, with bound parameters, as auth.py's
# _TOKEN_OWNER: a statement built per call costs SQLAlchemy its cache key each time (~80 µs
# of CPU for this one, /users/me with a JWT; `python -m bench.tokens_in_process`).
# A refresh token, its sign-in, the sign-in's client and user, as one Core row: each statement
# and each ORM object a refresh makes is a measurable part of it (bench.tokens_in_process).
_REFRESH_ROW = (
    select(
        _refresh_tokens.id,
        _refresh_tokens.scope,
        _refresh_tokens.created_at,
        _refresh_tokens.expires_at,
        _refresh_tokens.used_at,
        _tokens.id.label("sign_in_id"),
        _tokens.user_id,
        _tokens.expires_at.label("sign_in_expires_at"),
        _tokens.client_id.label("client_row_id"),
        _clients.client_id,
        _users.is_active,
    )
    .join_from(table_of(RefreshToken), table_of(Token), _refresh_tokens.sign_in_id == _tokens.id)
    .join(table_of(OAuthClient), _tokens.client_id == _clients.id)
    .join(table_of(User), _tokens.user_id == _users.id)
    .where(_refresh_tokens.token_hash == bindparam("digest"))
)
# A refresh stamps its sign-in's last use before it spends the token, and that UPDATE by
# primary key locks the sign-in's row: concurrent uses of one refresh token queue there, and
# the second one ends the sign-in alone. Without a lock, two late uses each deleted the
# sign-in, the cascade of each reaching a row the other had locked: PostgreSQL found a
# deadlock (a 503) in the test of four concurrent uses (test_oauth_grants). The refresh token's
# own row is not the one locked: on MariaDB a use waiting for it (on its unique index)
# deadlocked the first use's INSERT of the next token into that index.
_STAMP_SIGN_IN = (
    update(table_of(Token))
    .where(_tokens.id == bindparam("sign_in_id"))
    .values(last_used_at=bindparam("now"))
)
# The first use wins: one UPDATE decides (see refresh).
_SPEND = (
    update(table_of(RefreshToken))
    .where(_refresh_tokens.id == bindparam("refresh_id"), _refresh_tokens.used_at.is_(None))
    .values(used_at=bindparam("now"))
)
# Core writes in the caller's transaction, as audit.record's: nothing reads these rows back,
# so the ORM's unit of work (a flush, RETURNING the new id) would be work for nothing on every
# refresh.
_INSERT_REFRESH_TOKEN = insert(table_of(RefreshToken))
_Row = Row[*tuple[Any, ...]]  # a row of _REFRESH_ROW, read by its column names
# A sign-in that is live now: its row (by id), not yet expired.
_LIVE = and_(_tokens.id == bindparam("sign_in_id"), _tokens.expires_at > bindparam("now"))
_LIVE_SIGN_IN_OWNER = (
    select(*ACCOUNT_COLUMNS)
    .join_from(table_of(Token), table_of(User), _tokens.user_id == _users.id)
    .where(_LIVE)
)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None


def _granted_scope(allowed: str, requested: str | None) -> str:
    """The scope asked for (all of `allowed` when none is), or InvalidScope past it."""
    if requested is None:
        return allowed
    try:
        asked = check_scope(requested)
    except InvalidClientSettings as exc:
        raise InvalidScope(str(exc)) from exc
    if not set(asked) <= set(allowed.split()):
        raise InvalidScope("The scope asked for is more than the client (or grant) has.")
    return " ".join(asked)


def issue_tokens(
    session: Session,
    client: ClientRow,
    sign_in: "SignIn",
    scope: str,
    now: datetime,
    *,
    refresh_scope: str | None = None,
) -> IssuedTokens:
    """An access token with `scope`, and a refresh token (if the client has the grant) with
    `refresh_scope`: a refresh that narrows the scope keeps the refresh token's as it was
    (RFC 6749 section 6)."""
    access = access_tokens.mint(
        subject=str(sign_in.user_id),
        client_id=client.client_id,
        scope=scope,
        sign_in_id=sign_in.id,
    )
    refresh = None
    if "refresh_token" in grants_of(client):
        refresh, digest = new_token()
        idle = timedelta(seconds=get_settings().refresh_token_idle_seconds)
        session.connection().execute(
            _INSERT_REFRESH_TOKEN,
            {
                "sign_in_id": sign_in.id,
                "token_hash": digest,
                "scope": scope if refresh_scope is None else refresh_scope,
                "created_at": now,
                "expires_at": min(now + idle, sign_in.expires_at),
                "used_at": None,
            },
        )
    return IssuedTokens(access.token, access.expires_in, scope, refresh)


@dataclass(frozen=True, slots=True)
class SignIn:
    """What issuing tokens needs of a client's sign-in (a Token row)."""

    id: int
    user_id: int
    expires_at: datetime

    @classmethod
    def of(cls, row: Token) -> "SignIn":
        return cls(row.id, row.user_id, row.expires_at)


def password_grant(
    session: Session,
    client: ClientRow,
    *,
    username: str,
    password: str,
    scope: str | None,
    context: RequestContext,
) -> IssuedTokens:
    """A first-party client signs its user in: a sign-in of the client, its first tokens."""
    if not client.first_party or PASSWORD_GRANT not in grants_of(client):
        raise UnauthorizedClient("Only first-party clients registered for it use this grant.")
    granted = _granted_scope(client.scope, scope)
    try:
        issued = auth.sign_in(
            session, login=username, password=password, context=context, client_id=client.id
        )
    except (auth.InvalidCredentials, auth.EmailNotVerified) as exc:
        raise InvalidGrant(str(exc)) from exc
    except auth.SecondFactorRequired as exc:
        raise MfaRequired(exc.mfa_token, exc.expires_in) from exc
    return issue_tokens(session, client, _sign_in_of(session, issued), granted, utcnow())


def mfa_grant(
    session: Session,
    client: ClientRow,
    *,
    mfa_token: str,
    otp: str | None,
    recovery_code: str | None,
    scope: str | None,
    context: RequestContext,
) -> IssuedTokens:
    """The second step of a password grant that answered mfa_required: the client's own
    mfa_token and a code (or a recovery code); the tokens the password grant would have."""
    if not client.first_party or PASSWORD_GRANT not in grants_of(client):
        raise UnauthorizedClient("Only first-party clients registered for it use this grant.")
    if (otp is None) == (recovery_code is None):
        raise InvalidRequest("Send otp or recovery_code (one of them).")
    granted = _granted_scope(client.scope, scope)
    try:
        issued = auth.complete_sign_in(
            session,
            mfa_token=mfa_token,
            code=otp,
            recovery_code=recovery_code,
            context=context,
            client_id=client.id,
        )
    except (challenges.InvalidMfaToken, challenges.WrongSecondFactor) as exc:
        raise InvalidGrant(str(exc)) from exc
    return issue_tokens(session, client, _sign_in_of(session, issued), granted, utcnow())


def _sign_in_of(session: Session, issued: auth.IssuedToken) -> SignIn:
    sign_in = session.get(Token, issued.token_id)
    if sign_in is None:  # flushed by sign_in a moment ago
        raise LookupError("the new sign-in vanished")
    return SignIn.of(sign_in)


def _usable(row: _Row, now: datetime) -> bool:
    """An unspent refresh token's row: it, its sign-in and its user are live."""
    return (
        row.used_at is None
        and row.expires_at > now
        and row.sign_in_expires_at > now
        and bool(row.is_active)
    )


def refresh(
    session: Session,
    client: ClientRow,
    *,
    refresh_token: str,
    scope: str | None,
    context: RequestContext,
) -> IssuedTokens:
    """Spend a refresh token for new tokens (the refresh token rotates on every use).

    A refresh token used twice, whoever comes second (RFC 9700 section 4.14), ends its sign-in:
    every refresh token of the family dies, and userbase's API refuses its access tokens.
    """
    if "refresh_token" not in grants_of(client):
        raise UnauthorizedClient("This client is not registered for refresh tokens.")
    row = _refresh_row(session, refresh_token)
    if row is None:
        raise InvalidGrant("The refresh token is unknown, expired or revoked.")
    if row.client_row_id != client.id:  # RFC 6749 section 6: bound to its client
        raise InvalidGrant("The refresh token was issued to another client.")
    # Before the token is spent: a wrong scope must not cost the client its sign-in.
    granted = _granted_scope(row.scope, scope)
    now = utcnow()
    if row.used_at is None and not _usable(row, now):  # a spent one is a reuse, below
        raise InvalidGrant("The refresh token is unknown, expired or revoked.")
    connection = session.connection()
    params = {"sign_in_id": row.sign_in_id, "now": now}
    if connection.execute(_STAMP_SIGN_IN, params).rowcount != 1:
        raise InvalidGrant("The refresh token is unknown, expired or revoked.")  # just ended
    # One UPDATE decides which use is the first: a concurrent one waited for the sign-in's
    # lock above and finds the token used (SQLite's writers take turns instead).
    if connection.execute(_SPEND, {"refresh_id": row.id, "now": now}).rowcount != 1:
        auth.revoke_token(session, row.sign_in_id)
        audit.record(
            session,
            EventKind.REFRESH_TOKEN_REUSED,
            context,
            user_id=row.user_id,
            detail=f"client={client.client_id} session={row.sign_in_id}",
        )
        raise InvalidGrant("The refresh token was used already: its sign-in is ended.")
    sign_in = SignIn(row.sign_in_id, row.user_id, row.sign_in_expires_at)
    return issue_tokens(session, client, sign_in, granted, now, refresh_scope=row.scope)


def client_credentials(session: Session, client: ClientRow, *, scope: str | None) -> IssuedTokens:
    """A confidential client acting as itself (a service account): an access token whose
    `sub` is the client; no refresh token (RFC 6749 section 4.4.3), no sign-in."""
    if client.is_public or "client_credentials" not in grants_of(client):
        raise UnauthorizedClient("This client is not registered for client_credentials.")
    granted = _granted_scope(client.scope, scope)
    access = access_tokens.mint(
        subject=client.client_id, client_id=client.client_id, scope=granted, sign_in_id=None
    )
    return IssuedTokens(access.token, access.expires_in, granted)


def _refresh_row(session: Session, token: str) -> _Row | None:
    """The refresh token's row (_REFRESH_ROW), or None for a token of no known shape or row."""
    if not _TOKEN_SHAPE.match(token):
        return None
    return session.connection().execute(_REFRESH_ROW, {"digest": token_digest(token)}).first()


def _verified(token: str) -> dict[str, Any] | None:
    if not access_tokens.looks_like_jwt(token):
        return None
    try:
        return access_tokens.verify(token)
    except access_tokens.InvalidAccessToken:
        return None


def revoke(session: Session, client: ClientRow, *, token: str, context: RequestContext) -> None:
    """RFC 7009: end the sign-in a refresh or access token of this client belongs to.

    An unknown, invalid or expired token is no error (section 2.2). An access token of
    client_credentials belongs to no sign-in: it cannot be revoked, only left to expire.
    """
    claims = _verified(token)
    if claims is not None:
        if claims["client_id"] != client.client_id:
            raise UnauthorizedClient("The token was issued to another client.")
        if "sid" not in claims:
            raise UnsupportedTokenType(
                "An access token of client_credentials cannot be revoked; it expires soon."
            )
        sign_in = session.get(Token, int(claims["sid"]))
        if sign_in is None:
            return
        sign_in_id, user_id = sign_in.id, sign_in.user_id
    else:
        row = _refresh_row(session, token)
        if row is None:
            return
        if row.client_row_id != client.id:
            raise UnauthorizedClient("The token was issued to another client.")
        sign_in_id, user_id = row.sign_in_id, row.user_id
    auth.revoke_token(session, sign_in_id)
    audit.record(
        session,
        EventKind.TOKEN_REVOKED,
        context,
        user_id=user_id,
        detail=f"client={client.client_id} session={sign_in_id}",
    )


_INACTIVE: dict[str, Any] = {"active": False}


# Introspecting an access token asks the database two things: who the client is, and whether
# the token's sign-in is live. One statement answers both: the client's row with its sign-in's
# user joined when live (NULL when not). A statement of its own cost introspection ~10 % of its
# CPU (python -m bench.tokens_in_process, 2026-12-03).
_CLIENT_AND_SIGN_IN = clients.CLIENT_ROW.add_columns(
    _users.is_active.label("sign_in_live")
).select_from(
    table_of(OAuthClient).outerjoin(
        table_of(Token).join(table_of(User), _tokens.user_id == _users.id), _LIVE
    )
)


def introspect(
    session: Session, client_id: str | None, client_secret: str | None, *, token: str
) -> dict[str, Any]:
    """RFC 7662: whether the token is live now, and its claims, for the client these
    credentials prove. For confidential clients (the resource servers that ask); a public
    client cannot keep the answer to itself."""
    now = utcnow()
    claims = _verified(token)
    if claims is not None and "sid" in claims:
        params = {"sign_in_id": int(claims["sid"]), "now": now}
        client, read = clients.authenticate_by(
            session, _CLIENT_AND_SIGN_IN, params, client_id, client_secret
        )
        _may_introspect(client)
        if not read.sign_in_live:
            return _INACTIVE
        return {"active": True, "token_type": "access_token", **claims}
    _may_introspect(clients.authenticate(session, client_id, client_secret))
    if claims is not None:  # client_credentials: no sign-in, live until it expires
        return {"active": True, "token_type": "access_token", **claims}
    row = _refresh_row(session, token)
    if row is None or not _usable(row, now):
        return _INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "sub": str(row.user_id),
        "client_id": row.client_id,
        "scope": row.scope,
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.created_at.timestamp()),
        "iss": access_tokens.issuer(),
        "sid": str(row.sign_in_id),
    }


def _may_introspect(client: ClientRow) -> None:
    if client.is_public:
        raise UnauthorizedClient("Public clients cannot introspect tokens.")


def live_sign_in_owner(session: Session, sign_in_id: int, now: datetime) -> Account | None:
    """The active user whose sign-in this is, while it is live; else None."""
    params = {"sign_in_id": sign_in_id, "now": now}
    row = session.connection().execute(_LIVE_SIGN_IN_OWNER, params).first()
    if row is None:
        return None
    account = Account(*row)
    return account if account.is_active else None


def resolve_access_token(session: Session, token: str) -> auth.Principal:
    """The signed-in user of a JWT access token, for userbase's own API: the signature, the
    expiry, issuer and audience, and that its sign-in is still live (so a sign-out or a
    revocation is refused here at once, not when the token expires)."""
    try:
        claims = access_tokens.verify(token)
    except access_tokens.InvalidAccessToken as exc:
        raise auth.NotAuthenticated(str(exc)) from exc
    sid = claims.get("sid")
    if not isinstance(sid, str) or not sid.isdigit():
        raise auth.NotAuthenticated("This access token names no signed-in user.")
    user = live_sign_in_owner(session, int(sid), utcnow())
    if user is None or str(user.id) != claims["sub"]:
        raise auth.NotAuthenticated("The bearer token is unknown, expired or revoked.")
    return auth.Principal(user=user, token_id=int(sid))
