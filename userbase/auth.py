"""Signing in and bearer tokens: credentials, issuing, resolving and revoking. No HTTP here.

A token is one sign-in: the API calls the list of a user's live tokens their "sessions" (the
paths /users/{id}/sessions), the code calls them sign-ins, since a session is the database's.
A user with a second factor signs in in two steps: sign_in raises SecondFactorRequired (with
an mfa_token), complete_sign_in takes the code and issues the token (userbase/mfa/).
"""

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from userbase import audit, devices
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings

# The sign-in's refusals and the current-password check live in credentials.py (the second
# factors raise them too); they are auth's interface, as they always were.
from userbase.credentials import EmailNotVerified as EmailNotVerified
from userbase.credentials import InvalidCredentials as InvalidCredentials
from userbase.credentials import LoginThrottled as LoginThrottled
from userbase.credentials import PasswordConfirmationRequired as PasswordConfirmationRequired
from userbase.credentials import SignInRefused as SignInRefused
from userbase.credentials import WrongPassword as WrongPassword
from userbase.credentials import confirm_password as confirm_password
from userbase.metrics import LOGIN_FAILURES, LOGIN_THROTTLED
from userbase.mfa import challenges, factors, passkeys
from userbase.mfa.challenges import SecondFactorRequired as SecondFactorRequired
from userbase.models import USER_AGENT_MAX, Token, User, table_of, utcnow
from userbase.security import (
    TOKEN_PATTERN,
    hash_password,
    new_token,
    token_digest,
    verify_password_or_dummy,
)
from userbase.throttle import account_key, address_key, login_limits
from userbase.throttle_store import get_throttle
from userbase.users import ACCOUNT_COLUMNS, Account

# last_used_at is written at most this often per token: a read should rarely cost a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)

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
    select(*ACCOUNT_COLUMNS, _tokens.id, _tokens.last_used_at)
    .join_from(_tokens_table, _users_table, _tokens.user_id == _users.id)
    .where(_tokens.token_hash == bindparam("digest"), _tokens.expires_at > bindparam("now"))
)


class NotAuthenticated(Exception):
    """No bearer token, or one that is unknown, expired, revoked or malformed."""

    def __init__(
        self, detail: str = "Sign in and send the token as 'Authorization: Bearer'."
    ) -> None:
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    # None for a sign-in through an OAuth client: it gets refresh and JWT access tokens instead
    # (userbase/tokens/grants.py), which name the sign-in by `token_id`.
    token: str | None
    expires_in: int
    user_id: int
    token_id: int | None = None
    # The device token of the client that signed in (see _device_limits): a cookie.
    device_token: str | None = None
    # The second factor that completed the sign-in (complete_sign_in): "totp", "passkey",
    # "recovery_code"; or "passkey" alone for a sign-in with a passkey (sign_in_with_passkey).
    second_factor: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user of a request, and the token they presented."""

    user: Account
    token_id: int
    # When the token was last used, if a use is due to be recorded (record_use), else None.
    last_used_due: datetime | None = None


_REFUSAL_EVENTS = {
    "LoginThrottled": EventKind.LOGIN_THROTTLED,
    "InvalidCredentials": EventKind.LOGIN_FAILED,
    "EmailNotVerified": EventKind.LOGIN_FAILED,
}


def sign_in(
    session: Session,
    *,
    login: str,
    password: str,
    context: RequestContext,
    device_token: str | None = None,
    client_id: int | None = None,
    browser: bool = False,
) -> IssuedToken:
    """Check the credentials and issue a token, or raise why not; audited either way.

    With `client_id` (an OAuth client's row id) the sign-in is that client's: no opaque token.
    With `browser`, it is a sign-in on userbase's own pages (userbase/oidc/): no token either.
    For a user with a second factor, the right password raises SecondFactorRequired: its
    mfa_token and a code go to complete_sign_in, which issues the token.

    While a limit is reached the answer is LoginThrottled, before the password is even looked
    at: the right password does not help then. `device_token` is the device cookie of a client
    that signed in to this account before: its failures are counted apart (_device_limits).
    """
    outcome = _check_credentials(
        session,
        login=login,
        password=password,
        context=context,
        device_token=device_token,
        client_id=client_id,
        browser=browser,
    )
    if isinstance(outcome, SecondFactorRequired):
        audit.record(session, EventKind.MFA_REQUIRED, context, user_id=outcome.user_id)
        raise outcome
    if isinstance(outcome, SignInRefused):
        kind = _REFUSAL_EVENTS[type(outcome).__name__]
        (LOGIN_THROTTLED if kind is EventKind.LOGIN_THROTTLED else LOGIN_FAILURES).inc()
        audit.record(session, kind, context, user_id=outcome.user_id, detail=outcome.reason)
        raise outcome
    audit.record(session, EventKind.LOGIN_SUCCEEDED, context, user_id=outcome.user_id)
    return outcome


def complete_sign_in(
    session: Session,
    *,
    mfa_token: str,
    code: str | None = None,
    recovery_code: str | None = None,
    passkey: passkeys.Credential | None = None,
    context: RequestContext,
    device_token: str | None = None,
    client_id: int | None = None,
    browser: bool = False,
) -> IssuedToken:
    """The second step of a sign-in SecondFactorRequired stopped: a code of the user's
    authenticator (or a recovery code) for the sign-in `mfa_token` names, then the token, as
    sign_in issues it. Raises challenges.InvalidMfaToken, WrongSecondFactor or LoginThrottled
    (Refusals: each failure is counted and audited)."""
    passed = challenges.redeem(
        session,
        mfa_token,
        code=code,
        recovery_code=recovery_code,
        passkey=passkey,
        client_id=client_id,
        context=context,
    )
    device_id = devices.trusted_device(session, passed.user_id, device_token, utcnow())
    issued = _issue_sign_in(
        session, passed.user_id, context, client_id, device_token, device_id, browser
    )
    audit.record(
        session,
        EventKind.LOGIN_SUCCEEDED,
        context,
        user_id=passed.user_id,
        detail=f"second_factor={passed.method}",
    )
    return replace(issued, second_factor=passed.method)


def passkey_sign_in_options(session: Session, *, binding: str) -> str:
    """The options (JSON) of navigator.credentials.get() for a sign-in with a passkey alone:
    any discoverable credential, over a challenge bound to `binding` (the browser's)."""
    return passkeys.authentication_options(
        session, purpose=passkeys.SIGN_IN, user_id=None, binding=binding, now=utcnow()
    )


def sign_in_with_passkey(
    session: Session,
    *,
    credential: passkeys.Credential,
    binding: str,
    context: RequestContext,
    device_token: str | None = None,
    client_id: int | None = None,
    browser: bool = False,
) -> IssuedToken:
    """A sign-in with a passkey alone (no username: the credential names its user), its
    answer to passkey_sign_in_options over `binding`. A user-verified passkey is two factors
    (passkeys.py), so no second step follows. Raises passkeys.PasskeyRejected (audited with
    why; one message whatever it is) or EmailNotVerified.

    The password's throttle is not consulted: an assertion cannot be guessed, and a user
    locked out by someone else's wrong passwords still signs in with their passkey.
    """
    try:
        passkey = passkeys.verify_assertion(
            session,
            credential,
            purpose=passkeys.SIGN_IN,
            user_id=None,
            binding=binding,
            now=utcnow(),
        )
    except passkeys.PasskeyRejected as rejected:
        _passkey_refused(session, rejected, context)
        raise
    user = session.get(User, passkey.user_id)
    if user is None or not user.is_active:
        inactive = passkeys.PasskeyRejected("inactive", user_id=passkey.user_id)
        _passkey_refused(session, inactive, context)
        raise inactive
    if get_settings().require_verified_email and not user.email_verified:
        audit.record(
            session, EventKind.LOGIN_FAILED, context, user_id=user.id, detail="email_not_verified"
        )
        raise EmailNotVerified(user_id=user.id)
    device_id = devices.trusted_device(session, user.id, device_token, utcnow())
    issued = _issue_sign_in(session, user.id, context, client_id, device_token, device_id, browser)
    audit.record(session, EventKind.LOGIN_SUCCEEDED, context, user_id=user.id, detail=passkeys.KIND)
    return replace(issued, second_factor=passkeys.KIND)


def _passkey_refused(
    session: Session, rejected: passkeys.PasskeyRejected, context: RequestContext
) -> None:
    LOGIN_FAILURES.inc()
    detail = f"{passkeys.KIND}: {rejected.reason}"
    audit.record(session, EventKind.LOGIN_FAILED, context, user_id=rejected.user_id, detail=detail)


def _check_credentials(
    session: Session,
    *,
    login: str,
    password: str,
    context: RequestContext,
    device_token: str | None,
    client_id: int | None,
    browser: bool,
) -> IssuedToken | SignInRefused | SecondFactorRequired:
    throttle = get_throttle()
    now = utcnow()
    client_address = context.client_address or "-"
    # No username or address holds a control character; and PostgreSQL cannot even be sent one.
    user = (
        session.connection().execute(_USER_BY_LOGIN, {"login": login}).first()
        if login.isprintable()
        else None
    )
    user_id = user.id if user else None
    device_id = devices.trusted_device(session, user_id, device_token, now)
    # A device that signed in to this account before counts its failures on its own key, so
    # failures from anywhere else (which lock the account key) never lock its owner out.
    account = f"device:{device_id}" if device_id else account_key(user_id, login)
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

    if new_hash is not None:  # parameters were raised since this hash was made
        _load_user(session, user.id).password_hash = new_hash
    if factors.has_second_factor(session, user.id):
        # The failure count stays: it is reset when the second factor passes, else a stolen
        # password would buy a fresh set of guesses at the code with every mfa_token.
        return challenges.begin(session, user.id, client_id=client_id, device_id=device_id, now=now)
    if seen.get(account, 1):  # no failure counted in the window: nothing worth a DELETE
        throttle.reset(session, account)
    return _issue_sign_in(session, user.id, context, client_id, device_token, device_id, browser)


def _issue_sign_in(
    session: Session,
    user_id: int,
    context: RequestContext,
    client_id: int | None,
    device_token: str | None,
    device_id: int | None,
    browser: bool = False,
) -> IssuedToken:
    """The token of a sign-in that passed, and the device token for its cookie: the one the
    client sent when it is this user's, else a new one."""
    issued = issue_token(
        session,
        user_id,
        client_address=context.client_address,
        user_agent=context.user_agent,
        client_id=client_id,
        browser=browser,
    )
    return IssuedToken(
        issued.token,
        issued.expires_in,
        issued.user_id,
        token_id=issued.token_id,
        device_token=device_token
        if device_id
        else devices.issue_device_token(session, user_id, utcnow()),
    )


def _load_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:  # read a moment ago in this transaction, and users are never re-keyed
        raise LookupError(f"user {user_id} vanished during its sign-in")
    return user


def issue_token(
    session: Session,
    user_id: int,
    *,
    client_address: str | None,
    user_agent: str | None,
    client_id: int | None = None,
    browser: bool = False,
) -> IssuedToken:
    """A new sign-in: an opaque bearer token, or (with `client_id`) a client's sign-in that
    lives as long as its refresh tokens may (USERBASE_REFRESH_TOKEN_ABSOLUTE_SECONDS), or
    (`browser`) a browser's sign-in on userbase's pages, whose cookie userbase/oidc/ keeps."""
    settings = get_settings()
    token: str | None
    if browser:
        ttl, token, digest = settings.browser_sign_in_seconds, None, None
    elif client_id is None:
        ttl = settings.token_ttl_seconds
        token, digest = new_token()
    else:
        ttl, token, digest = settings.refresh_token_absolute_seconds, None, None
    now = utcnow()
    row = Token(
        user_id=user_id,
        token_hash=digest,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
        client_address=client_address,
        user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None,
        client_id=client_id,
    )
    session.add(row)
    if token is None:
        session.flush()  # its id is the `sid` of the sign-in's tokens
    return IssuedToken(token=token, expires_in=ttl, user_id=user_id, token_id=row.id)


def resolve_token(session: Session, token: str) -> Principal:
    """The active user owning this live token, or NotAuthenticated. Never writes: a use that
    is due to be recorded is returned in `last_used_due` (see record_use)."""
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
    due = last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION
    return Principal(user=user, token_id=token_id, last_used_due=now if due else None)


def record_use(session: Session, token_id: int, used_at: datetime) -> None:
    """Stamp the token's last use, in the caller's unit of work (at most once a minute)."""
    session.execute(
        update(Token)
        .where(
            Token.id == token_id,
            (Token.last_used_at.is_(None)) | (Token.last_used_at < used_at),
        )
        .values(last_used_at=used_at)
    )


def revoke_token(session: Session, token_id: int) -> None:
    session.execute(delete(Token).where(Token.id == token_id))


def revoke_tokens_for(session: Session, user_id: int) -> None:
    session.execute(delete(Token).where(Token.user_id == user_id))


def sign_out(session: Session, principal: Principal, context: RequestContext) -> None:
    """End the sign-in whose token the request carries."""
    revoke_token(session, principal.token_id)
    audit.record(session, EventKind.LOGOUT, context, user_id=principal.user.id)


def replace_password(session: Session, user: User, password: str) -> None:
    """Store the argon2id hash of a new password and end every sign-in of the user."""
    user.password_hash = hash_password(password)
    session.flush()
    revoke_tokens_for(session, user.id)


def purge_expired_tokens(session: Session, *, batch_size: int = 1000) -> int:
    """Delete up to batch_size expired tokens; returns how many. Callers commit per batch."""
    ids = session.scalars(
        select(Token.id).where(Token.expires_at <= utcnow()).limit(batch_size)
    ).all()
    if ids:
        session.execute(delete(Token).where(Token.id.in_(ids)))
    return len(ids)


def lockout(session: Session, user_id: int) -> int | None:
    """Seconds the account stays locked by the sign-in throttle, or None if it is not."""
    account = account_key(user_id, "")
    limits = login_limits(account, address_key("-"))[:1]
    return get_throttle().retry_after(session, limits, utcnow())


def reset_lockout(session: Session, user_id: int) -> None:
    """Forget the account's failed sign-ins (client-address counts are left alone)."""
    get_throttle().reset(session, account_key(user_id, ""))
