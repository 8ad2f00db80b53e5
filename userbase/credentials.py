"""What a sign-in refuses, and the checks of a signed-in user's credentials that count in the
sign-in throttle (the current password that confirms a change, a second factor's code).

Apart from auth.py so that the second factors (userbase/mfa/), which auth.sign_in calls, can
raise and count the same refusals: auth re-exports them as its own, the sign-in's interface.
"""

from sqlalchemy.orm import Session

from userbase import audit
from userbase.audit import EventKind, RequestContext
from userbase.metrics import LOGIN_FAILURES, LOGIN_THROTTLED
from userbase.models import User, utcnow
from userbase.refusals import Refusal
from userbase.security import verify_password
from userbase.throttle import Limit, account_key, address_key, login_limits
from userbase.throttle_store import get_throttle


class SignInRefused(Refusal):
    """Why a sign-in failed. `reason` and `user_id` are for the audit trail, not the client.

    A Refusal: get_db commits the failure count and the audit event before answering."""

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


class WrongPassword(Refusal):
    """The current password given to confirm a change is not the user's."""

    def __init__(self) -> None:
        super().__init__("The current password is not correct.")


class PasswordConfirmationRequired(Exception):
    """A change of address by the account's owner needs the current password."""

    def __init__(self) -> None:
        super().__init__("Confirm a change of email address with current_password.")


def account_limits(user_id: int, context: RequestContext, key: str | None = None) -> list[Limit]:
    """The sign-in throttle's limits for a signed-in user's check: the account's (or `key`, a
    trusted device's, devices.py) and the client address's."""
    return login_limits(key or account_key(user_id, ""), address_key(context.client_address or "-"))


def ensure_not_throttled(
    session: Session, user_id: int, limits: list[Limit], context: RequestContext, *, detail: str
) -> None:
    """LoginThrottled (audited) while a limit is reached: the right answer does not help then."""
    retry_after = get_throttle().retry_after(session, limits, utcnow())
    if retry_after is not None:
        LOGIN_THROTTLED.inc()
        audit.record(session, EventKind.LOGIN_THROTTLED, context, user_id=user_id, detail=detail)
        raise LoginThrottled(retry_after, user_id=user_id)


def count_failure(
    session: Session,
    user_id: int,
    limits: list[Limit],
    context: RequestContext,
    *,
    kind: EventKind,
    detail: str,
) -> None:
    """Count a failed check in the sign-in throttle and record it (the caller raises)."""
    get_throttle().record(session, limits, utcnow())
    LOGIN_FAILURES.inc()
    audit.record(session, kind, context, user_id=user_id, detail=detail)


def confirm_password(
    session: Session, user: User, password: str, *, context: RequestContext
) -> None:
    """Check the current password that confirms a change, under the sign-in throttle: with a
    stolen token, guessing the password is no easier than at sign-in. Raises WrongPassword
    or LoginThrottled (Refusals: the failure count and the event are committed)."""
    limits = account_limits(user.id, context)
    ensure_not_throttled(session, user.id, limits, context, detail="confirmation")
    matches, _ = verify_password(password, user.password_hash)
    if not matches:
        count_failure(
            session,
            user.id,
            limits,
            context,
            kind=EventKind.LOGIN_FAILED,
            detail="wrong_current_password",
        )
        raise WrongPassword
