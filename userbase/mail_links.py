"""Links we mail: verify an address, reset a forgotten password, undo a change of address, and
the notices that go with them. No HTTP here.

Each flow checks its rules, writes its change, records its audit event and queues its mail in
the caller's unit of work.
"""

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from userbase import audit, auth, mail, users
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings
from userbase.models import ActionToken, User, table_of, utcnow
from userbase.security import new_token, token_digest
from userbase.throttle import Limit
from userbase.throttle_store import get_throttle

# A user may ask for a new verification mail 3 times an hour; one client may ask for 20 resets
# an hour, whatever the addresses; an address gets at most USERBASE_MAILS_PER_RECIPIENT_LIMIT
# mails an hour of any kind (recipient_has_room).
RESEND_LIMIT = (3, timedelta(hours=1))
RESET_REQUESTS_PER_CLIENT = (20, timedelta(hours=1))
# The old address may undo a change of address for a week: long enough to notice the mail.
UNDO_EMAIL_CHANGE_TTL = timedelta(days=7)
MAIL_WINDOW = timedelta(hours=1)


class TokenKind(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    UNDO_EMAIL_CHANGE = "undo_email_change"


class InvalidActionToken(Exception):
    """Unknown, used, expired, or of another kind: one answer for all."""

    def __init__(self) -> None:
        super().__init__("This link is invalid, was already used, or has expired.")


class AlreadyVerified(Exception):
    def __init__(self) -> None:
        super().__init__("This email address is already verified.")


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many requests of this kind; try again later.")
        self.retry_after = retry_after


class Addressee(Protocol):
    """Whom a link is mailed to: an ORM User or an Account."""

    @property
    def id(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def email(self) -> str: ...


def _issue(
    session: Session, user: Addressee, kind: TokenKind, ttl: timedelta, *, email: str | None = None
) -> str:
    token, digest = new_token()
    now = utcnow()
    # A Core INSERT: the row is only read back when the link is used, by another request.
    session.connection().execute(
        _INSERT_ACTION_TOKEN,
        {
            "user_id": user.id,
            "kind": kind.value,
            "token_hash": digest,
            "email": user.email if kind is TokenKind.VERIFY_EMAIL else email,
            "created_at": now,
            "expires_at": now + ttl,
        },
    )
    return token


_INSERT_ACTION_TOKEN = insert(table_of(ActionToken))


def _redeem(session: Session, token: str, kind: TokenKind) -> tuple[ActionToken, User]:
    """The live token of this kind and its user, locked; burnt (used) from now on."""
    now = utcnow()
    row = session.execute(
        select(ActionToken, User)
        .join(User, User.id == ActionToken.user_id)
        .where(
            ActionToken.token_hash == token_digest(token),
            ActionToken.kind == kind.value,
            ActionToken.used_at.is_(None),
            ActionToken.expires_at > now,
        )
        .with_for_update()
    ).first()
    if row is None:
        raise InvalidActionToken
    action, user = row
    # Compare-and-set, so two concurrent uses of one token cannot both succeed.
    burnt = session.execute(
        update(ActionToken)
        .where(ActionToken.id == action.id, ActionToken.used_at.is_(None))
        .values(used_at=now)
    )
    if burnt.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidActionToken
    return action, user


def recipient_has_room(session: Session, recipient: str, now: datetime) -> bool:
    """Count a mail a request sends to `recipient`; False (send nothing) past the hourly limit.

    However a request reaches an address (a sign-up, a change of address, a reset), one
    inbox gets at most USERBASE_MAILS_PER_RECIPIENT_LIMIT such mails an hour: userbase
    cannot be used to flood someone's inbox. Silent, so it tells nobody who has an account.
    """
    digest = hashlib.sha256(recipient.strip().lower().encode()).hexdigest()
    limits = [Limit(f"mail-to:{digest}", get_settings().mails_per_recipient_limit, MAIL_WINDOW)]
    throttle = get_throttle()
    if throttle.retry_after(session, limits, now) is not None:
        return False
    throttle.record(session, limits, now)
    return True


def mail_verification_link(session: Session, user: Addressee) -> None:
    """Mail a link that verifies the user's current address (a new one starts unverified)."""
    if not recipient_has_room(session, user.email, utcnow()):
        return
    settings = get_settings()
    ttl = timedelta(seconds=settings.verify_token_ttl_seconds)
    token = _issue(session, user, TokenKind.VERIFY_EMAIL, ttl)
    mail.enqueue(
        session,
        user.email,
        "verify_email",
        username=user.username,
        email=user.email,
        # In the fragment: browsers do not send it to servers, proxies or Referer headers.
        link=f"{settings.public_url.rstrip('/')}/verify-email#token={token}",
        hours=str(int(ttl.total_seconds() // 3600)),
    )


def resend_verification(session: Session, user: User) -> None:
    if user.email_verified:
        raise AlreadyVerified
    events, window = RESEND_LIMIT
    limits = [Limit(f"verify-mail:{user.id}", events, window)]
    throttle = get_throttle()
    retry_after = throttle.retry_after(session, limits, utcnow())
    if retry_after is not None:
        raise RateLimited(retry_after)
    throttle.record(session, limits, utcnow())
    mail_verification_link(session, user)


def verify_email(session: Session, token: str, context: RequestContext) -> User:
    """Mark the address the token was sent to as verified (once)."""
    action, user = _redeem(session, token, TokenKind.VERIFY_EMAIL)
    if action.email != user.email:
        raise InvalidActionToken  # the address changed since: this link verified the old one
    user.email_verified = True
    session.flush()
    audit.record(session, EventKind.EMAIL_VERIFIED, context, user_id=user.id)
    return user


def request_password_reset(session: Session, email: str, context: RequestContext) -> None:
    """Mail a reset link when an active account has this address; the caller answers the same
    either way."""
    settings = get_settings()
    throttle = get_throttle()
    now = utcnow()
    client_address = context.client_address or "-"
    client_limit = [Limit(f"reset-client:{client_address}", *RESET_REQUESTS_PER_CLIENT)]
    retry_after = throttle.retry_after(session, client_limit, now)
    if retry_after is not None:
        raise RateLimited(retry_after)
    throttle.record(session, client_limit, now)

    user = users.find_by_email(session, email)
    if user is None or not user.is_active:
        # The same work as for an account (a count, a mail, an event), so neither the answer
        # nor its time tells whether the address has one; the mail says there is none.
        if recipient_has_room(session, email, now):
            mail.enqueue(
                session,
                email,
                "reset_no_account",
                email=email,
                link=f"{settings.public_url.rstrip('/')}/",
            )
            audit.record(
                session,
                EventKind.PASSWORD_RESET_REQUESTED,
                context,
                user_id=user.id if user else None,
                detail="no_active_account",
            )
        return
    if not recipient_has_room(session, user.email, now):
        return  # silently: a 429 here would tell who has an account
    mail_reset_link(session, user)
    audit.record(session, EventKind.PASSWORD_RESET_REQUESTED, context, user_id=user.id)


def mail_reset_link(session: Session, user: Addressee) -> None:
    """Mail the user a link that sets a new password (its rules and audit are the caller's)."""
    settings = get_settings()
    ttl = timedelta(seconds=settings.reset_token_ttl_seconds)
    token = _issue(session, user, TokenKind.RESET_PASSWORD, ttl)
    mail.enqueue(
        session,
        user.email,
        "reset_password",
        username=user.username,
        link=f"{settings.public_url.rstrip('/')}/reset-password#token={token}",
        minutes=str(int(ttl.total_seconds() // 60)),
    )


def reset_password(
    session: Session, token: str, new_password: str, context: RequestContext
) -> User:
    """Set the password, revoke every bearer token, and burn every reset link of the user."""
    _, user = _redeem(session, token, TokenKind.RESET_PASSWORD)
    burn_reset_links(session, user.id)
    auth.replace_password(session, user, new_password)
    audit.record(session, EventKind.PASSWORD_RESET, context, user_id=user.id)
    return user


def burn_reset_links(session: Session, user_id: int) -> None:
    """Make every outstanding reset link of the user useless."""
    session.execute(
        update(ActionToken)
        .where(
            ActionToken.user_id == user_id,
            ActionToken.kind == TokenKind.RESET_PASSWORD.value,
            ActionToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )


def mail_email_changed(session: Session, user: User, old_email: str) -> None:
    """Tell the old address that the account's address changed, with a link that undoes it."""
    if not recipient_has_room(session, old_email, utcnow()):
        return
    settings = get_settings()
    token = _issue(
        session, user, TokenKind.UNDO_EMAIL_CHANGE, UNDO_EMAIL_CHANGE_TTL, email=old_email
    )
    mail.enqueue(
        session,
        old_email,
        "email_changed",
        username=user.username,
        old_email=old_email,
        new_email=user.email,
        link=f"{settings.public_url.rstrip('/')}/undo-email-change#token={token}",
        days=str(UNDO_EMAIL_CHANGE_TTL.days),
    )


def undo_email_change(session: Session, token: str, context: RequestContext) -> User:
    """Put back the address a change replaced (verified: its owner opened the link), end every
    sign-in and reset link, so whoever changed it is out."""
    action, user = _redeem(session, token, TokenKind.UNDO_EMAIL_CHANGE)
    if action.email is None:  # every undo token is issued with the old address
        raise InvalidActionToken
    users.apply_changes(session, user, {"email": action.email, "email_verified": True})
    burn_reset_links(session, user.id)
    auth.revoke_tokens_for(session, user.id)
    audit.record(session, EventKind.EMAIL_CHANGED, context, user_id=user.id, detail="undone")
    return user


def mail_sign_up_attempt(session: Session, owner: User) -> None:
    """Someone tried to sign up with an address that has an account: tell its owner, instead of
    telling the one who tried (USERBASE_REQUIRE_VERIFIED_EMAIL answers them as a success)."""
    if not recipient_has_room(session, owner.email, utcnow()):
        return
    settings = get_settings()
    mail.enqueue(
        session,
        owner.email,
        "sign_up_attempt",
        username=owner.username,
        link=f"{settings.public_url.rstrip('/')}/",
    )
