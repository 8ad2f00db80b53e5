"""The audit trail of security events: record, list (keyset-paged) and purge. No HTTP here."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from userbase.models import SecurityEvent, table_of, utcnow

USER_AGENT_MAX = 200
MAX_ID = 2_147_483_647


class EventKind(StrEnum):
    USER_CREATED = "user_created"
    SIGN_UP_WITH_TAKEN_EMAIL = "sign_up_with_taken_email"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_THROTTLED = "login_throttled"
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_RESET = "password_reset"
    EMAIL_CHANGED = "email_changed"
    EMAIL_VERIFIED = "email_verified"
    ROLE_CHANGED = "role_changed"
    ACTIVATION_CHANGED = "activation_changed"
    USER_DELETED = "user_deleted"
    SESSION_REVOKED = "session_revoked"
    ACCOUNT_UNLOCKED = "account_unlocked"
    # Tokens other services check (userbase/tokens/).
    CLIENT_CREATED = "client_created"
    CLIENT_DELETED = "client_deleted"
    CLIENT_SECRET_ROTATED = "client_secret_rotated"
    SIGNING_KEYS_ROTATED = "signing_keys_rotated"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    TOKEN_REVOKED = "token_revoked"
    # The OpenID Connect provider (userbase/oidc/).
    CONSENT_GRANTED = "consent_granted"
    CONSENT_REVOKED = "consent_revoked"
    AUTHORIZATION_CODE_REUSED = "authorization_code_reused"
    # Second factors (userbase/mfa/).
    MFA_REQUIRED = "mfa_required"
    MFA_FAILED = "mfa_failed"
    MFA_ENROLMENT_STARTED = "mfa_enrolment_started"
    MFA_ENABLED = "mfa_enabled"
    MFA_REMOVED = "mfa_removed"
    MFA_RESET = "mfa_reset"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where an action came from, as the audit trail records it: an HTTP request (its client
    address, user agent and request id) or an operator's command (channel "cli")."""

    client_address: str | None
    user_agent: str | None
    request_id: str | None
    channel: str = "api"


# What the `userbase` command's account actions are recorded with.
CLI = RequestContext(client_address=None, user_agent=None, request_id=None, channel="cli")


@dataclass(frozen=True, slots=True)
class EventPage:
    events: Sequence[SecurityEvent]
    next_after: int | None


def record(
    session: Session,
    kind: EventKind,
    context: RequestContext | None,
    *,
    user_id: int | None,
    actor_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Add an event to the caller's unit of work. `detail` is for admins, never a secret."""
    # A Core INSERT in the caller's transaction: nothing reads the event back, so the ORM's
    # unit of work (and its RETURNING of the id) would be work for nothing on every sign-in.
    session.connection().execute(
        _INSERT_EVENT,
        {
            "kind": kind.value,
            "user_id": user_id,
            "actor_id": actor_id,
            "client_address": context.client_address if context else None,
            "user_agent": (context.user_agent or "")[:USER_AGENT_MAX] or None if context else None,
            "request_id": context.request_id if context else None,
            "channel": context.channel if context else "api",
            "detail": detail,
            "created_at": utcnow(),
        },
    )


_INSERT_EVENT = insert(table_of(SecurityEvent))


def list_events(
    session: Session,
    *,
    user_id: int | None,
    kind: str | None,
    after: int,
    limit: int,
) -> EventPage:
    # Ids are 32-bit integers; PostgreSQL refuses to compare the column with a larger bind.
    statement = select(SecurityEvent).where(SecurityEvent.id > min(after, MAX_ID))
    if user_id is not None:
        statement = statement.where(SecurityEvent.user_id == user_id)
    if kind is not None:
        statement = statement.where(SecurityEvent.kind == kind)
    events = session.scalars(statement.order_by(SecurityEvent.id).limit(limit + 1)).all()
    if len(events) > limit:
        return EventPage(events=events[:limit], next_after=events[limit - 1].id)
    return EventPage(events=events, next_after=None)


def latest_events(session: Session, *, user_id: int, limit: int) -> Sequence[SecurityEvent]:
    """A user's newest events, newest first (the index on user_id, id)."""
    return session.scalars(
        select(SecurityEvent)
        .where(SecurityEvent.user_id == user_id)
        .order_by(SecurityEvent.id.desc())
        .limit(limit)
    ).all()


def purge_events(session: Session, *, older_than: datetime, batch_size: int = 1000) -> int:
    """Delete up to batch_size events older than `older_than`; callers commit per batch."""
    ids = session.scalars(
        select(SecurityEvent.id).where(SecurityEvent.created_at < older_than).limit(batch_size)
    ).all()
    if ids:
        session.execute(delete(SecurityEvent).where(SecurityEvent.id.in_(ids)))
    return len(ids)


def retention_cutoff(days: int) -> datetime:
    return utcnow() - timedelta(days=days)
