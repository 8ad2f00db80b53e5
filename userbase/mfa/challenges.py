"""A sign-in waiting for its second factor: the `mfa_token` that names it, and its redemption.

The token is 32 random bytes (only the SHA-256 is stored), good for one sign-in of one user,
for 5 minutes, and for nothing else: it is no bearer token. Five wrong codes spend it; each
one also counts in the sign-in throttle of the account (or of the trusted device the password
step counted on, devices.py), so a stolen password buys no more guesses by asking for new
tokens: the account's throttle answers 429 first.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from userbase import credentials
from userbase.audit import EventKind, RequestContext
from userbase.mfa import passkeys, recovery_codes, totp
from userbase.models import MfaChallenge, MfaFactor, User, utcnow
from userbase.refusals import Refusal
from userbase.security import TOKEN_PATTERN, new_token, token_digest
from userbase.throttle_store import get_throttle

MFA_TOKEN_TTL = timedelta(minutes=5)
MAX_FAILURES = 5

_TOKEN_SHAPE = re.compile(TOKEN_PATTERN)


class SecondFactorRequired(Refusal):
    """The password was right and the account has a second factor: the sign-in waits for a
    code, sent with `mfa_token` (auth.complete_sign_in). A Refusal: the waiting sign-in is
    committed, and no token is issued."""

    def __init__(self, mfa_token: str, *, expires_in: int, user_id: int) -> None:
        super().__init__(
            "A second factor is required: send the mfa_token with a code from your "
            "authenticator app, a passkey's answer or a recovery code to POST /auth/token/mfa."
        )
        self.mfa_token = mfa_token
        self.expires_in = expires_in
        self.user_id = user_id


class InvalidMfaToken(Refusal):
    """Unknown, expired, used, spent by wrong codes, or of another client: one answer."""

    def __init__(self) -> None:
        super().__init__("The mfa_token is invalid, was used, or has expired: sign in again.")


class WrongSecondFactor(Refusal):
    """The code (or recovery code) is not right. A Refusal: the failure is counted."""

    def __init__(self, *, attempts_left: int, user_id: int) -> None:
        super().__init__(
            "The code is not correct."
            + (f" {attempts_left} attempts left." if attempts_left else " Sign in again.")
        )
        self.attempts_left = attempts_left
        self.user_id = user_id  # whose sign-in waits: the page asks again for their factors


@dataclass(frozen=True, slots=True)
class Passed:
    """A second factor checked: whose sign-in, through which client, how."""

    user_id: int
    client_id: int | None
    device_id: int | None
    method: str


def begin(
    session: Session, user_id: int, *, client_id: int | None, device_id: int | None, now: datetime
) -> SecondFactorRequired:
    """A sign-in waiting for the user's second factor (added to the unit of work)."""
    token, digest = new_token()
    session.add(
        MfaChallenge(
            user_id=user_id,
            token_hash=digest,
            created_at=now,
            expires_at=now + MFA_TOKEN_TTL,
            failures=0,
            client_id=client_id,
            device_id=device_id,
        )
    )
    return SecondFactorRequired(
        token, expires_in=int(MFA_TOKEN_TTL.total_seconds()), user_id=user_id
    )


def _live_challenge(
    session: Session, mfa_token: str, client_id: int | None, now: datetime
) -> MfaChallenge:
    if not _TOKEN_SHAPE.match(mfa_token):
        raise InvalidMfaToken
    # Locked: attempts on one token take turns, so its failures are counted exactly and it
    # is spent once (SQLite's writers take turns anyway; it ignores FOR UPDATE).
    challenge = session.scalars(
        select(MfaChallenge)
        .where(MfaChallenge.token_hash == token_digest(mfa_token))
        .with_for_update()
    ).first()
    if (
        challenge is None
        or challenge.used_at is not None
        or challenge.expires_at <= now
        or challenge.failures >= MAX_FAILURES
        or challenge.client_id != client_id  # a client finishes only its own sign-ins
    ):
        raise InvalidMfaToken
    return challenge


def passkey_options(session: Session, mfa_token: str, *, client_id: int | None) -> str:
    """The options (JSON) of navigator.credentials.get() for the second factor of the sign-in
    `mfa_token` names: one of its user's passkeys, over a challenge bound to the token."""
    now = utcnow()
    challenge = _live_challenge(session, mfa_token, client_id, now)
    return passkeys.authentication_options(
        session,
        purpose=passkeys.SECOND_FACTOR,
        user_id=challenge.user_id,
        binding=challenge.token_hash,
        now=now,
    )


def redeem(
    session: Session,
    mfa_token: str,
    *,
    code: str | None,
    recovery_code: str | None,
    client_id: int | None,
    context: RequestContext,
    passkey: passkeys.Credential | None = None,
) -> Passed:
    """Check the second factor of the sign-in `mfa_token` names (a TOTP code, a passkey's
    answer to passkey_options, or a recovery code); spend the token when right.

    Raises InvalidMfaToken, LoginThrottled (the account's sign-in throttle, before any code is
    looked at) or WrongSecondFactor (counted and audited; the fifth spends the token).
    """
    now = utcnow()
    challenge = _live_challenge(session, mfa_token, client_id, now)
    user_id = challenge.user_id
    device_key = f"device:{challenge.device_id}" if challenge.device_id else None
    limits = credentials.account_limits(user_id, context, key=device_key)
    credentials.ensure_not_throttled(session, user_id, limits, context, detail="second_factor")
    user = session.get(User, user_id)
    if user is None or not user.is_active:  # deactivated since
        raise InvalidMfaToken
    method, detail = "recovery_code", "recovery_code"
    if code is not None:
        method = detail = totp.KIND
        factor = session.scalars(
            select(MfaFactor).where(
                MfaFactor.user_id == user_id,
                MfaFactor.kind == totp.KIND,
                MfaFactor.confirmed_at.is_not(None),
            )
        ).first()
        passed = factor is not None and totp.accept(session, factor, code, now)
    elif passkey is not None:
        method = passkeys.KIND
        try:
            passkeys.verify_assertion(
                session,
                passkey,
                purpose=passkeys.SECOND_FACTOR,
                user_id=user_id,
                binding=challenge.token_hash,
                now=now,
            )
            passed = True
        except passkeys.PasskeyRejected as rejected:
            passed, detail = False, f"{passkeys.KIND}: {rejected.reason}"
    else:
        passed = recovery_code is not None and recovery_codes.redeem(
            session, user_id, recovery_code, now
        )
    if not passed:
        challenge.failures += 1
        credentials.count_failure(
            session, user_id, limits, context, kind=EventKind.MFA_FAILED, detail=detail
        )
        raise WrongSecondFactor(
            attempts_left=MAX_FAILURES - challenge.failures, user_id=challenge.user_id
        )
    challenge.used_at = now
    get_throttle().reset(session, limits[0].key)
    return Passed(user_id, challenge.client_id, challenge.device_id, method)


def end_all(session: Session, user_id: int) -> None:
    """Every waiting sign-in of the user ends (their factors changed)."""
    session.execute(delete(MfaChallenge).where(MfaChallenge.user_id == user_id))


def purge_expired(session: Session, *, batch_size: int = 1000) -> int:
    """Delete up to batch_size expired waiting sign-ins; how many. Callers commit per batch."""
    ids = session.scalars(
        select(MfaChallenge.id).where(MfaChallenge.expires_at <= utcnow()).limit(batch_size)
    ).all()
    if ids:
        session.execute(delete(MfaChallenge).where(MfaChallenge.id.in_(ids)))
    return len(ids)
