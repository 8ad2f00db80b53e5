"""The workflows on a user's second factors: enrol a TOTP authenticator and confirm it, add and
remove passkeys, make new recovery codes, remove the authenticator, an admin's (or the
operator's) reset of every factor; and the admins rule, USERBASE_REQUIRE_MFA_FOR_ADMINS.

A second factor is a confirmed TOTP authenticator or any passkey (passkeys.py); recovery codes
stand in for either, and go with the last of them.

Each checks its rules, writes the change, records the audit event and queues the mail in the
caller's unit of work. `actor` is the signed-in account acting, or None for the operator at
the command line (context audit.CLI).
"""

from dataclasses import dataclass

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from userbase import audit, credentials, mail, users
from userbase.audit import EventKind, RequestContext
from userbase.config import get_settings
from userbase.mfa import challenges, passkeys, recovery_codes, totp
from userbase.models import MfaFactor, Passkey, utcnow
from userbase.permissions import ensure_admin
from userbase.refusals import Refusal
from userbase.users import Account


class AlreadyEnrolled(Exception):
    def __init__(self) -> None:
        super().__init__("An authenticator is active already: remove it first to enrol another.")


class NoEnrolment(Exception):
    def __init__(self) -> None:
        super().__init__("No enrolment is waiting: start one with POST /users/me/mfa/totp.")


class NoSecondFactor(Exception):
    def __init__(self) -> None:
        super().__init__("This account has no active authenticator.")


class WrongCode(Refusal):
    """The code that should confirm an enrolment is not the authenticator's (audited)."""

    def __init__(self) -> None:
        super().__init__(
            "The code is not correct: check that the authenticator's clock is right, and "
            "send the code it shows now."
        )


class EnrolmentRequired(Exception):
    """USERBASE_REQUIRE_MFA_FOR_ADMINS: an admin without a second factor may only enrol one."""

    def __init__(self) -> None:
        super().__init__(
            "Admins must have a second factor: enrol one (POST /users/me/mfa/totp, then "
            "/users/me/mfa/totp/confirm; or a passkey, POST /users/me/mfa/passkeys/registration "
            "then /users/me/mfa/passkeys) before anything else."
        )


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the user adds to their authenticator app; shown once."""

    secret: str
    otpauth_uri: str


@dataclass(frozen=True, slots=True)
class Status:
    totp: bool
    passkeys: int
    recovery_codes_left: int


def _has_totp(session: Session, user_id: int) -> bool:
    active = exists().where(
        MfaFactor.user_id == user_id,
        MfaFactor.kind == totp.KIND,
        MfaFactor.confirmed_at.is_not(None),
    )
    return bool(session.scalar(select(active)))


def has_second_factor(session: Session, user_id: int) -> bool:
    """Whether the user has an active second factor: a confirmed TOTP authenticator or a
    passkey."""
    return _has_totp(session, user_id) or bool(
        session.scalar(select(exists().where(Passkey.user_id == user_id)))
    )


def status(session: Session, user_id: int) -> Status:
    has_totp, keys = _has_totp(session, user_id), passkeys.count(session, user_id)
    left = recovery_codes.remaining(session, user_id) if has_totp or keys else 0
    return Status(totp=has_totp, passkeys=keys, recovery_codes_left=left)


def ensure_enrolled_if_required(session: Session, account: Account) -> None:
    """EnrolmentRequired for an admin without a second factor while the setting is on."""
    if (
        account.is_admin
        and get_settings().require_mfa_for_admins
        and not has_second_factor(session, account.id)
    ):
        raise EnrolmentRequired


def _totp_of(session: Session, user_id: int) -> MfaFactor | None:
    return session.scalars(
        select(MfaFactor)
        .where(MfaFactor.user_id == user_id, MfaFactor.kind == totp.KIND)
        .with_for_update()
    ).first()


def begin_totp(
    session: Session, actor: Account, *, current_password: str, context: RequestContext
) -> Enrolment:
    """A new TOTP secret for the user, not active until confirmed with a code (confirm_totp);
    an enrolment already waiting is replaced."""
    user = users.lock_user(session, actor.id)
    credentials.confirm_password(session, user, current_password, context=context)
    factor = _totp_of(session, user.id)
    if factor is not None and factor.confirmed_at is not None:
        raise AlreadyEnrolled
    secret, sealed = totp.new_secret()
    now = utcnow()
    if factor is None:
        session.add(MfaFactor(user_id=user.id, kind=totp.KIND, secret=sealed, created_at=now))
    else:
        factor.secret, factor.created_at, factor.last_used_step = sealed, now, None
    audit.record(session, EventKind.MFA_ENROLMENT_STARTED, context, user_id=user.id)
    return Enrolment(secret, totp.provisioning_uri(secret, user.username))


def confirm_totp(
    session: Session, actor: Account, *, code: str, context: RequestContext
) -> list[str]:
    """Activate the waiting enrolment with a code from the app; its first recovery codes."""
    user = users.lock_user(session, actor.id)
    factor = _totp_of(session, user.id)
    if factor is None:
        raise NoEnrolment
    if factor.confirmed_at is not None:
        raise AlreadyEnrolled
    now = utcnow()
    if not totp.accept(session, factor, code, now):
        audit.record(session, EventKind.MFA_FAILED, context, user_id=user.id, detail="enrolment")
        raise WrongCode
    factor.confirmed_at = now
    codes = recovery_codes.new_set(session, user.id, now)
    audit.record(session, EventKind.MFA_ENABLED, context, user_id=user.id, detail=totp.KIND)
    return codes


def regenerate_recovery_codes(
    session: Session, actor: Account, *, current_password: str, context: RequestContext
) -> list[str]:
    """A new set of recovery codes: the old set dies. With the password: codes are a second
    factor, which a stolen bearer token alone must not read."""
    user = users.lock_user(session, actor.id)
    credentials.confirm_password(session, user, current_password, context=context)
    if not has_second_factor(session, user.id):
        raise NoSecondFactor
    codes = recovery_codes.new_set(session, user.id, utcnow())
    audit.record(session, EventKind.RECOVERY_CODES_REGENERATED, context, user_id=user.id)
    return codes


def _remove_every_factor(session: Session, user_id: int) -> bool:
    removed = session.execute(delete(MfaFactor).where(MfaFactor.user_id == user_id))
    removed_passkeys = passkeys.delete_all(session, user_id)
    recovery_codes.delete_all(session, user_id)
    challenges.end_all(session, user_id)
    return bool(removed.rowcount) or removed_passkeys  # type: ignore[attr-defined]


def _after_removal(session: Session, user_id: int) -> None:
    """Waiting sign-ins end (their factors changed); with the last factor, the recovery
    codes go too."""
    if not has_second_factor(session, user_id):
        recovery_codes.delete_all(session, user_id)
    challenges.end_all(session, user_id)


def remove_totp(
    session: Session, actor: Account, *, current_password: str, context: RequestContext
) -> None:
    """The user removes their authenticator (and their recovery codes, unless a passkey
    stays)."""
    user = users.lock_user(session, actor.id)
    credentials.confirm_password(session, user, current_password, context=context)
    if not _has_totp(session, user.id):
        raise NoSecondFactor
    session.execute(delete(MfaFactor).where(MfaFactor.user_id == user.id))
    _after_removal(session, user.id)
    audit.record(session, EventKind.MFA_REMOVED, context, user_id=user.id, detail=totp.KIND)


def begin_passkey(
    session: Session,
    actor: Account,
    *,
    current_password: str,
    binding: str | None,
    context: RequestContext,
) -> str:
    """The options (JSON) for navigator.credentials.create(): a new passkey, confirmed with
    the password (a passkey signs in alone: a stolen bearer token must not add one)."""
    user = users.lock_user(session, actor.id)
    credentials.confirm_password(session, user, current_password, context=context)
    options = passkeys.registration_options(session, actor, binding=binding, now=utcnow())
    audit.record(
        session, EventKind.MFA_ENROLMENT_STARTED, context, user_id=user.id, detail=passkeys.KIND
    )
    return options


def add_passkey(
    session: Session,
    actor: Account,
    credential: passkeys.Credential,
    *,
    name: str,
    binding: str | None,
    context: RequestContext,
) -> passkeys.PasskeyView:
    """Keep the passkey the authenticator made for begin_passkey's options (audited)."""
    users.lock_user(session, actor.id)
    return passkeys.register(
        session, actor, credential, name=name, binding=binding, context=context, now=utcnow()
    )


def remove_passkey(
    session: Session,
    actor: Account,
    passkey_id: int,
    *,
    current_password: str,
    context: RequestContext,
) -> None:
    """The user removes one of their passkeys, confirmed with the password."""
    user = users.lock_user(session, actor.id)
    credentials.confirm_password(session, user, current_password, context=context)
    if not passkeys.delete_one(session, user.id, passkey_id):
        raise passkeys.PasskeyNotFound
    _after_removal(session, user.id)
    audit.record(
        session,
        EventKind.MFA_REMOVED,
        context,
        user_id=user.id,
        detail=f"{passkeys.KIND} {passkey_id}",
    )


def reset(
    session: Session, actor: Account | None, user_id: int, *, context: RequestContext
) -> bool:
    """An admin (or the operator) removes every factor of a user who lost their device, and
    the user is mailed; whether there was any. Audited either way."""
    if actor is not None:
        ensure_admin(actor)
    user = users.lock_user(session, user_id)
    removed = _remove_every_factor(session, user.id)
    audit.record(
        session,
        EventKind.MFA_RESET,
        context,
        user_id=user.id,
        actor_id=actor.id if actor else None,
        detail="removed" if removed else "none",
    )
    if removed:
        mail.enqueue(session, user.email, "mfa_reset", username=user.username)
    return removed
