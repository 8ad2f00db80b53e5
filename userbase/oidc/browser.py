"""The browser sign-in: what the sign-in page makes and the cookie that gives single sign-on.

A browser sign-in is a row of `tokens` (listed by the sessions API like every sign-in, ended
from there too) and a BrowserSignIn with the SHA-256 of its cookie. The sign-ins of clients
made through it hang off it (Token.browser_sign_in_id): ending it ends them.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from userbase import audit, auth
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings
from userbase.mfa import passkeys
from userbase.models import BrowserSignIn, Token, User, table_of, utcnow
from userbase.security import TOKEN_PATTERN, new_token, token_digest
from userbase.users import ACCOUNT_COLUMNS, Account

COOKIE = "userbase_sso"
PASSWORD = "pwd"  # RFC 8176's amr value for a password
MULTI_FACTOR = "mfa"  # RFC 8176: more than one factor
# The ID token's `acr` (Core 1.0 section 2): a sign-in with two factors, or with one. Names of
# our own (Core leaves them to the provider); discovery lists them in acr_values_supported.
ACR_MULTI_FACTOR = "urn:userbase:acr:mfa"
ACR_SINGLE_FACTOR = "urn:userbase:acr:pwd"
ACR_VALUES = (ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR)
# What each second factor adds to `pwd` in amr (RFC 8176).
_SECOND_FACTOR_AMR = {"totp": "otp", passkeys.KIND: passkeys.AMR[0]}
_COOKIE_SHAPE = re.compile(TOKEN_PATTERN)

_users, _tokens, _browser = (
    table_of(User).c,
    table_of(Token).c,
    table_of(BrowserSignIn).c,
)
# Built once with bound parameters, as auth._TOKEN_OWNER is: a statement built on each call
# costs SQLAlchemy its cache key every time (docs/performance.md), and every page of the
# console and the hosted pages asks this first.
_BY_COOKIE = (
    select(*ACCOUNT_COLUMNS, _tokens.id, _browser.authenticated_at, _browser.methods)
    .join_from(table_of(BrowserSignIn), table_of(Token), _browser.sign_in_id == _tokens.id)
    .join(table_of(User), _tokens.user_id == _users.id)
    .where(_browser.cookie_hash == bindparam("digest"), _tokens.expires_at > bindparam("now"))
)


@dataclass(frozen=True, slots=True)
class BrowserUser:
    """Who the browser is signed in as, since when and how."""

    sign_in_id: int
    user: Account
    authenticated_at: datetime
    methods: str

    @property
    def multi_factor(self) -> bool:
        return MULTI_FACTOR in self.methods.split()


def acr_of(methods: str) -> str:
    """The `acr` of a sign-in whose amr values are `methods` (space-separated)."""
    return ACR_MULTI_FACTOR if MULTI_FACTOR in methods.split() else ACR_SINGLE_FACTOR


@dataclass(frozen=True, slots=True)
class NewBrowserSignIn:
    """A sign-in the page just made: the cookie to set (shown once), and a device cookie."""

    signed_in: BrowserUser
    cookie: str
    max_age: int
    device_token: str | None


def current(session: Session, cookie: str | None) -> BrowserUser | None:
    """The live browser sign-in of an active user this cookie names, else None."""
    if not cookie or not _COOKIE_SHAPE.match(cookie):
        return None
    params = {"digest": token_digest(cookie), "now": utcnow()}
    row = session.connection().execute(_BY_COOKIE, params).first()
    if row is None:
        return None
    *account, sign_in_id, authenticated_at, methods = row
    user = Account(*account)
    return BrowserUser(sign_in_id, user, authenticated_at, methods) if user.is_active else None


def sign_in_with_password(
    session: Session,
    *,
    login: str,
    password: str,
    context: RequestContext,
    device_token: str | None,
    previous: BrowserUser | None,
) -> NewBrowserSignIn:
    """The sign-in page's password step: auth.sign_in's throttle, errors and audit, then a
    browser sign-in with a new cookie (a new id at every sign-in: a cookie planted before is
    worth nothing after, RFC 6819 4.4.1.13's session fixation).

    For an account with a second factor, auth.SecondFactorRequired: the page asks for it, and
    sign_in_with_second_factor finishes the sign-in.
    """
    issued = auth.sign_in(
        session,
        login=login,
        password=password,
        context=context,
        device_token=device_token,
        browser=True,
    )
    return _open(session, issued, PASSWORD, previous)


def sign_in_with_second_factor(
    session: Session,
    *,
    mfa_token: str,
    code: str | None,
    recovery_code: str | None,
    context: RequestContext,
    device_token: str | None,
    previous: BrowserUser | None,
    passkey: passkeys.Credential | None = None,
) -> NewBrowserSignIn:
    """The sign-in page's second step: auth.complete_sign_in (its throttle, five-failures
    rule and audit), then the browser sign-in, its `methods` saying how (RFC 8176: `otp` for
    the authenticator's code, `swk` for a passkey, `mfa` for any second factor, a recovery
    code included)."""
    issued = auth.complete_sign_in(
        session,
        mfa_token=mfa_token,
        code=code,
        recovery_code=recovery_code,
        passkey=passkey,
        context=context,
        device_token=device_token,
        browser=True,
    )
    added = _SECOND_FACTOR_AMR.get(issued.second_factor or "")
    methods = " ".join(m for m in (PASSWORD, added, MULTI_FACTOR) if m)
    return _open(session, issued, methods, previous)


def sign_in_with_passkey(
    session: Session,
    *,
    credential: passkeys.Credential,
    binding: str,
    context: RequestContext,
    device_token: str | None,
    previous: BrowserUser | None,
) -> NewBrowserSignIn:
    """The sign-in page's "Sign in with a passkey": auth.sign_in_with_passkey, then the
    browser sign-in (amr `swk mfa`: a user-verified passkey is two factors, passkeys.py)."""
    issued = auth.sign_in_with_passkey(
        session,
        credential=credential,
        binding=binding,
        context=context,
        device_token=device_token,
        browser=True,
    )
    return _open(session, issued, " ".join(passkeys.AMR), previous)


def _open(
    session: Session, issued: auth.IssuedToken, methods: str, previous: BrowserUser | None
) -> NewBrowserSignIn:
    """The browser sign-in of a sign-in that passed: its cookie, and the applications of the
    browser's previous sign-in (the same user signing in again) moved over to it."""
    if issued.token_id is None:  # browser=True always flushes the row
        raise LookupError("the browser sign-in has no id")
    now = utcnow()
    cookie, digest = new_token()
    session.add(
        BrowserSignIn(
            sign_in_id=issued.token_id,
            cookie_hash=digest,
            authenticated_at=now,
            methods=methods,
        )
    )
    session.flush()
    if previous is not None:
        if previous.user.id == issued.user_id:
            # Signing in again (max_age, prompt=login): the applications signed in through
            # the old browser sign-in stay signed in, through the new one.
            session.execute(
                update(Token)
                .where(Token.browser_sign_in_id == previous.sign_in_id)
                .values(browser_sign_in_id=issued.token_id)
            )
        auth.revoke_token(session, previous.sign_in_id)
    account = current(session, cookie)
    if account is None:  # made a moment ago in this unit of work
        raise LookupError("the new browser sign-in vanished")
    return NewBrowserSignIn(
        account, cookie, get_settings().browser_sign_in_seconds, issued.device_token
    )


def end(session: Session, sign_in_id: int, user_id: int, context: RequestContext) -> None:
    """Sign a browser out: its sign-in, the client sign-ins made through it and their
    refresh tokens, and its pending authorization codes end (foreign keys)."""
    auth.revoke_token(session, sign_in_id)
    audit.record(session, EventKind.LOGOUT, context, user_id=user_id, detail="browser sign-in")
