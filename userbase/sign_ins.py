"""A user's sign-ins as the sessions API shows them: listed, told apart, ended one by one or all
but the caller's. Every kind is a row of `tokens` (models.Token): an opaque bearer token, a
browser's sign-in on userbase's pages (userbase/oidc/), an OAuth client's (userbase/tokens/)."""

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from userbase.models import MAX_ID, Token, utcnow
from userbase.schemas import SignInKind


class SignInNotFound(Exception):
    """The user has no live sign-in (token) with that id."""

    def __init__(self, token_id: int) -> None:
        super().__init__(f"No live session with id {token_id}.")


def list_sign_ins(session: Session, user_id: int) -> Sequence[Token]:
    """The user's live sign-ins (opaque tokens, and sign-ins through an OAuth client with
    their client), newest first (their digests are never shown)."""
    return session.scalars(
        select(Token)
        .options(joinedload(Token.client))
        .where(Token.user_id == user_id, Token.expires_at > utcnow())
        .order_by(Token.id.desc())
    ).all()


def sign_in_kind(token: Token) -> SignInKind:
    """How a sign-in was made: through an OAuth client, by a browser on userbase's pages (no
    token of its own: a cookie), or as an opaque bearer token of POST /auth/token."""
    if token.client_id is not None:
        return "oauth_client"
    return "browser" if token.token_hash is None else "bearer_token"


def revoke_sign_in(session: Session, user_id: int, token_id: int) -> None:
    """Revoke one token of this user; SignInNotFound if they have no such live token."""
    if not 1 <= token_id <= MAX_ID:
        raise SignInNotFound(token_id)
    deleted = session.execute(delete(Token).where(Token.id == token_id, Token.user_id == user_id))
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        raise SignInNotFound(token_id)


def revoke_other_sign_ins(session: Session, user_id: int, keep_token_id: int | None) -> None:
    """Revoke every token of the user but `keep_token_id` (the caller's own, if any)."""
    statement = delete(Token).where(Token.user_id == user_id)
    if keep_token_id is not None:
        statement = statement.where(Token.id != keep_token_id)
    session.execute(statement)
