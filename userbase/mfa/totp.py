"""TOTP (RFC 6238) through pyotp: a secret, its otpauth:// URI, and a code accepted at most once.

The secret is stored only sealed (sealing.py) and never logged; it is shown once, when the
user enrols.
"""

from datetime import datetime

import pyotp
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from userbase.config import get_settings
from userbase.models import MfaFactor
from userbase.sealing import seal, unseal

KIND = "totp"
# RFC 6238 section 5.2: accept a code of the step before or after the server's, for the
# drift between its clock and the authenticator's (and the time a person takes to type).
DRIFT_STEPS = 1
CODE_PATTERN = r"^[0-9]{6}$"


def new_secret() -> tuple[str, str]:
    """A fresh secret (160 bits, RFC 4226 section 4's recommended length) and its sealed form."""
    secret = pyotp.random_base32()
    return secret, seal(secret.encode())


def provisioning_uri(secret: str, account_name: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code) to add the account."""
    return pyotp.TOTP(secret).provisioning_uri(
        name=account_name, issuer_name=get_settings().mfa_issuer
    )


def matching_step(sealed_secret: str, code: str, now: datetime) -> int | None:
    """The time step (within the drift) whose code `code` is, or None."""
    totp = pyotp.TOTP(unseal(sealed_secret).decode())
    try:
        return totp.verify_and_get_timecode(code, for_time=now, valid_window=DRIFT_STEPS)
    except pyotp.exceptions.OTPVerificationError:
        return None


def accept(session: Session, factor: MfaFactor, code: str, now: datetime) -> bool:
    """True when `code` is the factor's for a time step later than the last one accepted,
    which it then becomes: a code is accepted at most once, and no earlier one after it.

    One UPDATE decides between concurrent uses of a code (as for refresh tokens): the second
    waits for the first, then finds the step taken (PostgreSQL and MariaDB re-read the row
    they waited for; SQLite's writers take turns).
    """
    step = matching_step(factor.secret, code, now)
    if step is None:
        return False
    won = session.execute(
        update(MfaFactor)
        .where(
            MfaFactor.id == factor.id,
            or_(MfaFactor.last_used_step.is_(None), MfaFactor.last_used_step < step),
        )
        .values(last_used_step=step)
        .execution_options(synchronize_session=False)
    )
    return bool(won.rowcount == 1)  # type: ignore[attr-defined]
