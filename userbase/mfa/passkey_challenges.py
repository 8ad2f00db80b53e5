"""The challenges handed out for passkeys (passkeys.py): 64 random bytes each (py_webauthn's
generate_challenge), of which only the SHA-256 is stored. Each is single use, lives
CHALLENGE_TTL, serves one purpose (a registration, a sign-in, a second step) and is bound to
what asked for it: the user, and a `binding` (the SHA-256 of the browser's CSRF cookie or of
the waiting sign-in's mfa_token). No HTTP here.
"""

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from webauthn.helpers import generate_challenge

from userbase.models import PasskeyChallenge, utcnow

# WebAuthn Level 3 section 15.1: 5 to 10 minutes for a ceremony with user verification (a
# person may type a PIN); the options' `timeout` (TIMEOUT_MS) tells the browser the same.
CHALLENGE_TTL = timedelta(minutes=5)
TIMEOUT_MS = int(CHALLENGE_TTL.total_seconds() * 1000)


def issue(
    session: Session, purpose: str, user_id: int | None, binding: str | None, now: datetime
) -> bytes:
    """A fresh challenge for `purpose`, stored (its SHA-256) until used or expired."""
    challenge_bytes = generate_challenge()
    session.add(
        PasskeyChallenge(
            challenge_hash=hashlib.sha256(challenge_bytes).hexdigest(),
            purpose=purpose,
            user_id=user_id,
            binding=binding,
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    return challenge_bytes


def take(
    session: Session,
    challenge: bytes,
    purpose: str,
    user_id: int | None,
    binding: str | None,
    now: datetime,
) -> bool:
    """Spend the live challenge of this purpose handed to this user and binding: one DELETE
    decides, so a challenge (and so an answer signed over it) serves once."""
    user_match = (
        PasskeyChallenge.user_id.is_(None)
        if user_id is None
        else (PasskeyChallenge.user_id == user_id)
    )
    binding_match = (
        PasskeyChallenge.binding.is_(None)
        if binding is None
        else (PasskeyChallenge.binding == binding)
    )
    spent = session.execute(
        delete(PasskeyChallenge)
        .where(
            PasskeyChallenge.challenge_hash == hashlib.sha256(challenge).hexdigest(),
            PasskeyChallenge.purpose == purpose,
            PasskeyChallenge.expires_at > now,
            user_match,
            binding_match,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(spent.rowcount == 1)  # type: ignore[attr-defined]


def delete_all(session: Session, user_id: int) -> None:
    session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.user_id == user_id))


def purge_expired(session: Session, *, batch_size: int = 1000) -> int:
    """Delete up to batch_size expired challenges; how many. Callers commit per batch."""
    ids = session.scalars(
        select(PasskeyChallenge.id).where(PasskeyChallenge.expires_at <= utcnow()).limit(batch_size)
    ).all()
    if ids:
        session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.id.in_(ids)))
    return len(ids)
