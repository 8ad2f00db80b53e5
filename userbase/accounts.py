"""Account workflows: one function per action on an account, whoever asks for it.

Each checks the rules, writes the change, records the audit event and queues the mail, in the
caller's unit of work (never a commit). The API's routers, the `userbase` command and the bulk
tools call these; none of them records an audit event or builds a mail itself. `actor` is the
signed-in account acting, or None for the operator at the command line (context audit.CLI).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from userbase import audit, auth, mail_links, sign_ins, users
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings
from userbase.models import User, utcnow
from userbase.permissions import ensure_admin, ensure_can_manage, ensure_may_change
from userbase.refusals import Refusal
from userbase.security import hash_password, hash_passwords
from userbase.throttle import Limit
from userbase.throttle_store import get_throttle
from userbase.users import Account

SIGN_UP_WINDOW = timedelta(hours=1)


class EmailMismatch(Exception):
    """create-admin named an existing username whose account has another address."""

    def __init__(self, user: User) -> None:
        super().__init__(
            f"A user named {user.username} already exists (id {user.id}) with another address, "
            f"{user.email}. It was not promoted. To make that account an admin, check whose it "
            f"is, then run: userbase promote-admin --id {user.id}"
        )
        self.user_id = user.id


class AccountInactive(Exception):
    """The action needs an active account (activate it first)."""

    def __init__(self) -> None:
        super().__init__("This account is deactivated: activate it first.")


class SignUpRefused(users.UserExists, Refusal):
    """A sign-up with a taken username or address: a 409 that keeps its unit of work (the
    client's sign-up count, so doomed sign-ups are bounded like the others)."""


def register(
    session: Session,
    *,
    username: str,
    email: str,
    password: str,
    display_name: str | None,
    context: RequestContext,
) -> User | None:
    """Sign up: create the user, mail a link that verifies the address, record the event.

    A client address may sign up USERBASE_SIGNUP_ADDRESS_LIMIT times an hour (RateLimited).
    Taken names are refused before the password is hashed (usernames are public; an address
    is refused only when the refusal tells nothing new, see below). With
    USERBASE_REQUIRE_VERIFIED_EMAIL on, a taken address is not refused: its owner is mailed
    instead, and the caller answers as for a new account (returns None).
    """
    settings = get_settings()
    password_hash = None
    if session.get_bind().dialect.name == "sqlite":
        # SQLite: the count below takes the database's only write lock, which must not be
        # held while hashing (~40 ms: every other writer would wait). There the hash comes
        # first; a doomed sign-up costs one, and the per-address limit bounds how many.
        password_hash = hash_password(password)
    _count_sign_up(session, context)
    taken = users.taken_field(session, username=username, email=email)
    if taken == "username" or (taken == "email" and not settings.require_verified_email):
        raise SignUpRefused(taken)
    if taken == "email":
        owner = users.find_by_email(session, email)
        if owner is not None:
            mail_links.mail_sign_up_attempt(session, owner)
            audit.record(session, EventKind.SIGN_UP_WITH_TAKEN_EMAIL, context, user_id=owner.id)
        return None
    if password_hash is None:
        password_hash = hash_password(password)
    try:
        user = users.insert_user(
            session,
            username=username,
            email=email,
            password_hash=password_hash,
            display_name=display_name,
        )
    except users.UserExists as exc:  # a concurrent sign-up took it meanwhile
        raise SignUpRefused(exc.field) from exc
    mail_links.mail_verification_link(session, user)
    audit.record(session, EventKind.USER_CREATED, context, user_id=user.id)
    return user


def _count_sign_up(session: Session, context: RequestContext) -> None:
    if context.client_address is None:  # the operator's own command
        return
    limits = [
        Limit(
            f"sign-up:{context.client_address}",
            get_settings().signup_address_limit,
            SIGN_UP_WINDOW,
        )
    ]
    throttle, now = get_throttle(), utcnow()
    retry_after = throttle.retry_after(session, limits, now)
    if retry_after is not None:
        raise mail_links.RateLimited(retry_after)
    throttle.record(session, limits, now)


@dataclass(frozen=True, slots=True)
class NewUser:
    """One user of a batch: a password to hash, or a hash brought from another system."""

    username: str
    email: str
    display_name: str | None
    password: str | None = None
    password_hash: str | None = None


def register_many(
    session: Session, new_users: Sequence[NewUser], *, actor: Account, context: RequestContext
) -> list[User | users.UserExists]:
    """Create each user in a savepoint of its own: a clash fails that user alone.

    Passwords are hashed as many at once as there are hashing threads. The caller's unit of
    work commits every created user at once or, if it fails, none.
    """
    hashes = hash_passwords([new.password for new in new_users if new.password is not None])
    results: list[User | users.UserExists] = []
    for new in new_users:
        password_hash = next(hashes) if new.password is not None else new.password_hash
        if password_hash is None:
            raise ValueError(f"user {new.username!r} has neither a password nor a hash")
        try:
            user = users.insert_user(
                session,
                username=new.username,
                email=new.email,
                password_hash=password_hash,
                display_name=new.display_name,
            )
        except users.UserExists as exc:
            results.append(exc)
            continue
        audit.record(session, EventKind.USER_CREATED, context, user_id=user.id, actor_id=actor.id)
        results.append(user)
    return results


_CHANGE_EVENTS = {
    "email": EventKind.EMAIL_CHANGED,
    "is_admin": EventKind.ROLE_CHANGED,
    "is_active": EventKind.ACTIVATION_CHANGED,
}


def change_account(
    session: Session,
    actor: Account | None,
    user_id: int,
    changes: dict[str, Any],
    *,
    versions: Iterable[int] | None,
    context: RequestContext,
    current_password: str | None = None,
    current_token_id: int | None = None,
) -> User:
    """Change display name, email, activation or role, as `actor` may.

    The owner changes the address only with the current password (a stolen token is not
    enough). A new address is unverified until the link mailed to it is used; the old address
    is told, with a link that undoes the change; the owner's other sign-ins and every reset
    link end. A deactivated user's sign-ins end; the last active admin cannot be demoted or
    deactivated (LastAdmin). `versions`: the versions the caller read (If-Match), or None.
    """
    if actor is not None:
        ensure_can_manage(actor, user_id)
        ensure_may_change(actor, changes)
    user = users.lock_user(session, user_id)
    users.ensure_version(user, versions)
    old_email = user.email
    email_changed = "email" in changes and changes["email"] != old_email
    if email_changed and actor is not None and actor.id == user_id:
        if current_password is None:
            raise auth.PasswordConfirmationRequired
        auth.confirm_password(session, user, current_password, context=context)
    before = {field: getattr(user, field) for field in changes}
    users.apply_changes(
        session, user, {**changes, "email_verified": False} if email_changed else changes
    )
    if before.get("is_active") is True and user.is_active is False:
        auth.revoke_tokens_for(session, user.id)
    actor_id = actor.id if actor else None
    for field, kind in _CHANGE_EVENTS.items():
        if field in before and before[field] != getattr(user, field):
            # The new address is mailed a link; flags are recorded with their value.
            detail = None if field == "email" else f"{field}={getattr(user, field)}"
            audit.record(session, kind, context, user_id=user.id, actor_id=actor_id, detail=detail)
    if email_changed:
        mail_links.burn_reset_links(session, user.id)
        keep = current_token_id if actor is not None and actor.id == user_id else None
        sign_ins.revoke_other_sign_ins(session, user.id, keep)
        mail_links.mail_verification_link(session, user)
        mail_links.mail_email_changed(session, user, old_email)
    return user


def change_password(
    session: Session, actor: Account, *, current: str, new: str, context: RequestContext
) -> None:
    """The signed-in user sets a new password, confirming the current one (under the sign-in
    throttle); every sign-in of theirs ends and every reset link dies."""
    user = users.lock_user(session, actor.id)
    auth.confirm_password(session, user, current, context=context)
    mail_links.burn_reset_links(session, user.id)
    auth.replace_password(session, user, new)
    audit.record(session, EventKind.PASSWORD_CHANGED, context, user_id=user.id)


def set_password(session: Session, user: User, password: str, *, context: RequestContext) -> None:
    """The operator sets a user's password; every sign-in of theirs ends."""
    auth.replace_password(session, user, password)
    audit.record(session, EventKind.PASSWORD_CHANGED, context, user_id=user.id)


def delete_account(
    session: Session,
    actor: Account | None,
    user_id: int,
    *,
    versions: Iterable[int] | None,
    context: RequestContext,
    current_password: str | None = None,
) -> None:
    """Delete the user and their sign-ins; never the last active admin (LastAdmin).

    With `current_password` (the /account/ page's confirmation), only if it is the user's,
    under the sign-in throttle (auth.confirm_password)."""
    if actor is not None:
        ensure_can_manage(actor, user_id)
    user = users.lock_user(session, user_id)
    users.ensure_version(user, versions)
    if current_password is not None:
        auth.confirm_password(session, user, current_password, context=context)
    if user.is_admin and user.is_active:
        users.ensure_another_active_admin(session, user)
    auth.revoke_tokens_for(session, user.id)
    session.delete(user)
    session.flush()
    audit.record(
        session,
        EventKind.USER_DELETED,
        context,
        user_id=user_id,
        actor_id=actor.id if actor else None,
    )


def create_admin(
    session: Session, *, username: str, email: str, password: str, context: RequestContext
) -> tuple[User, bool]:
    """The operator's first admin: a new active admin, or, when the username exists with the
    same address (in any letter case), that account made an active admin with this password.

    An existing username with another address is refused (EmailMismatch): whoever registered
    the name first must not become an admin by the operator's mistake (promote_admin names an
    account by id instead). Returns the user and whether it was created.
    """
    password_hash = hash_password(password)
    existing = users.find_by_username(session, username)
    if existing is None:
        user = users.insert_user(
            session,
            username=username,
            email=email,
            password_hash=password_hash,
            display_name=None,
            is_admin=True,
        )
        audit.record(session, EventKind.USER_CREATED, context, user_id=user.id)
        audit.record(
            session, EventKind.ROLE_CHANGED, context, user_id=user.id, detail="is_admin=True"
        )
        return user, True
    if not users.same_email(session, existing, email):
        raise EmailMismatch(existing)
    _make_active_admin(session, existing, context)
    existing.password_hash = password_hash
    session.flush()
    auth.revoke_tokens_for(session, existing.id)  # a new password ends old sign-ins
    audit.record(session, EventKind.PASSWORD_CHANGED, context, user_id=existing.id)
    return existing, False


def promote_admin(session: Session, user_id: int, *, context: RequestContext) -> User:
    """The operator makes the account with this id an active admin."""
    user = users.lock_user(session, user_id)
    _make_active_admin(session, user, context)
    return user


def _make_active_admin(session: Session, user: User, context: RequestContext) -> None:
    changes = {"is_admin": True, "is_active": True}
    before = {field: getattr(user, field) for field in changes}
    users.apply_changes(session, user, changes)
    for field, kind in (
        ("is_admin", EventKind.ROLE_CHANGED),
        ("is_active", EventKind.ACTIVATION_CHANGED),
    ):
        if before[field] is not True:
            audit.record(session, kind, context, user_id=user.id, detail=f"{field}=True")


def unlock(
    session: Session, actor: Account | None, user_id: int, *, context: RequestContext
) -> None:
    """Lift a sign-in lockout now (admins, the operator)."""
    if actor is not None:
        ensure_admin(actor)
    users.get_user(session, user_id)
    auth.reset_lockout(session, user_id)
    audit.record(
        session,
        EventKind.ACCOUNT_UNLOCKED,
        context,
        user_id=user_id,
        actor_id=actor.id if actor else None,
    )


def send_reset_link(
    session: Session, actor: Account, user_id: int, *, context: RequestContext
) -> None:
    """An admin mails a user the link of a forgotten password (the user asked for help): the
    same link and mail, the same event with the admin as its actor. Not to a deactivated
    account; past the address's hourly mails, RateLimited (an admin may know that much)."""
    ensure_admin(actor)
    user = users.get_user(session, user_id)
    if not user.is_active:
        raise AccountInactive
    if not mail_links.recipient_has_room(session, user.email, utcnow()):
        raise mail_links.RateLimited(int(mail_links.MAIL_WINDOW.total_seconds()))
    mail_links.mail_reset_link(session, user)
    audit.record(
        session,
        EventKind.PASSWORD_RESET_REQUESTED,
        context,
        user_id=user.id,
        actor_id=actor.id,
        detail="sent by an admin",
    )


def end_sign_in(
    session: Session,
    actor: Account,
    user_id: int,
    token_id: int,
    *,
    context: RequestContext,
) -> None:
    """End one sign-in (token) of a user: the user themself or an admin."""
    ensure_can_manage(actor, user_id)
    sign_ins.revoke_sign_in(session, user_id, token_id)
    audit.record(
        session,
        EventKind.SESSION_REVOKED,
        context,
        user_id=user_id,
        actor_id=actor.id,
        detail=f"session={token_id}",
    )


def end_other_sign_ins(
    session: Session,
    actor: Account,
    user_id: int,
    *,
    keep_token_id: int | None,
    context: RequestContext,
) -> None:
    """End every sign-in of a user but the caller's own (`keep_token_id`), if they act on
    themself; an admin acting on someone else ends them all."""
    ensure_can_manage(actor, user_id)
    users.get_user(session, user_id)
    keep = keep_token_id if actor.id == user_id else None
    sign_ins.revoke_other_sign_ins(session, user_id, keep)
    audit.record(
        session,
        EventKind.SESSION_REVOKED,
        context,
        user_id=user_id,
        actor_id=actor.id,
        detail="all others" if keep else "all",
    )
