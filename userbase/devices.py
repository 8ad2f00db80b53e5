"""Device cookies (OWASP's "Slow brute force / device cookies"): a client that signed in to an
account before keeps its own count of failures, so failures from elsewhere never lock it out.

A device token is 32 random bytes, stored as SHA-256 in action_tokens (kind "device"), bound to
one account, living USERBASE_DEVICE_COOKIE_DAYS; routers/auth.py carries it in a cookie.
"""

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from userbase.config import get_settings
from userbase.models import ActionToken
from userbase.security import TOKEN_PATTERN, new_token, token_digest

TOKEN_SHAPE = re.compile(TOKEN_PATTERN)

# OWASP's "Slow brute force / device cookies": a client that signed in successfully gets a
# cookie; with it, failures count per device instead of per account.
DEVICE_KIND = "device"


def trusted_device(
    session: Session, user_id: int | None, device_token: str | None, now: datetime
) -> int | None:
    """The id of the device token, when it is a live one of this user's, else None."""
    if user_id is None or device_token is None or not TOKEN_SHAPE.match(device_token):
        return None
    return session.scalar(
        select(ActionToken.id).where(
            ActionToken.token_hash == token_digest(device_token),
            ActionToken.kind == DEVICE_KIND,
            ActionToken.user_id == user_id,
            ActionToken.expires_at > now,
        )
    )


def issue_device_token(session: Session, user_id: int, now: datetime) -> str:
    token, digest = new_token()
    session.add(
        ActionToken(
            user_id=user_id,
            kind=DEVICE_KIND,
            token_hash=digest,
            created_at=now,
            expires_at=now + timedelta(days=get_settings().device_cookie_days),
        )
    )
    return token
