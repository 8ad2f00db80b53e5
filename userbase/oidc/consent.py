"""The consent store: which scopes a user granted which third-party client, remembered and
revocable. First-party clients (registered --first-party) are never asked."""

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from userbase import audit, auth
from userbase.audit import EventKind, RequestContext
from userbase.models import Consent, OAuthClient, Token, utcnow
from userbase.tokens.clients import ClientRow


class ConsentNotFound(LookupError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"You gave no consent to a client {client_id!r}.")


def granted_scope(session: Session, user_id: int, client: ClientRow) -> set[str]:
    scope = session.scalar(
        select(Consent.scope).where(Consent.user_id == user_id, Consent.client_id == client.id)
    )
    return set(scope.split()) if scope else set()


def needs_consent(session: Session, user_id: int, client: ClientRow, scope: str) -> bool:
    if client.first_party:
        return False
    return not set(scope.split()) <= granted_scope(session, user_id, client)


def grant(
    session: Session, user_id: int, client: ClientRow, scope: str, context: RequestContext
) -> None:
    """Remember the user's yes to `scope` (added to what they granted the client before)."""
    consent = session.scalars(
        select(Consent).where(Consent.user_id == user_id, Consent.client_id == client.id)
    ).first()
    if consent is None:
        consent = Consent(user_id=user_id, client_id=client.id, scope="", granted_at=utcnow())
        session.add(consent)
    old = consent.scope.split()
    consent.scope = " ".join(dict.fromkeys([*old, *scope.split()]))
    consent.granted_at = utcnow()
    session.flush()
    audit.record(
        session,
        EventKind.CONSENT_GRANTED,
        context,
        user_id=user_id,
        detail=f"client={client.client_id} scope={scope}"[:200],
    )


def list_consents(session: Session, user_id: int) -> Sequence[tuple[Consent, OAuthClient]]:
    rows = session.execute(
        select(Consent, OAuthClient)
        .join(OAuthClient, Consent.client_id == OAuthClient.id)
        .where(Consent.user_id == user_id)
        .order_by(Consent.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def revoke(session: Session, user_id: int, client_id: str, context: RequestContext) -> None:
    """Forget the consent; the client's sign-ins of this user end with it (its refresh
    tokens die, userbase's API refuses its access tokens)."""
    if len(client_id) > 64 or not client_id.isprintable():  # PostgreSQL takes no NUL
        raise ConsentNotFound(client_id[:64])
    client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()
    if client is None:
        raise ConsentNotFound(client_id)
    deleted = session.execute(
        delete(Consent).where(Consent.user_id == user_id, Consent.client_id == client.id)
    )
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        raise ConsentNotFound(client_id)
    for sign_in_id in session.scalars(
        select(Token.id).where(Token.user_id == user_id, Token.client_id == client.id)
    ).all():
        auth.revoke_token(session, sign_in_id)
    audit.record(
        session, EventKind.CONSENT_REVOKED, context, user_id=user_id, detail=f"client={client_id}"
    )
