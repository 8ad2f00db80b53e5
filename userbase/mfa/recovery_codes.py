"""Recovery codes: ten single-use codes for a user who lost their authenticator.

Shown once, when made; only their SHA-256 is stored. 16 characters of a 32-letter alphabet are
80 random bits, beyond an offline search of the digests, and they are typed rarely enough that
their length costs little. A new set replaces the old one whole.
"""

import re
import secrets
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from userbase.models import RecoveryCode
from userbase.security import token_digest

COUNT = 10
# Crockford's base32 alphabet in lower case: no i, l, o or u, so no letter is read for another
# (or a digit); 32 letters, 5 bits each.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_LENGTH = 16
_GROUP = 4
_SHAPE = re.compile(f"^[{_ALPHABET}]{{{_LENGTH}}}$")


def _normalized(code: str) -> str:
    """As typed: any letter case, with or without the dashes and spaces between groups."""
    return code.replace("-", "").replace(" ", "").lower()


def _new_code() -> str:
    plain = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
    return "-".join(plain[i : i + _GROUP] for i in range(0, _LENGTH, _GROUP))


def new_set(session: Session, user_id: int, now: datetime) -> list[str]:
    """Ten new codes for the user; every code of theirs before is gone."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [_new_code() for _ in range(COUNT)]
    session.execute(
        insert(RecoveryCode),
        [
            {"user_id": user_id, "code_hash": token_digest(_normalized(code)), "created_at": now}
            for code in codes
        ],
    )
    return codes


def redeem(session: Session, user_id: int, code: str, now: datetime) -> bool:
    """Spend one of the user's unused codes; False if `code` is none of them. One UPDATE
    decides between concurrent uses of a code: at most one finds it unused."""
    plain = _normalized(code)
    if not _SHAPE.match(plain):
        return False
    spent = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == token_digest(plain),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(spent.rowcount == 1)  # type: ignore[attr-defined]


def remaining(session: Session, user_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def delete_all(session: Session, user_id: int) -> None:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
