"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the end_session endpoint's
rules. A client sends the browser with the ID token it holds (`id_token_hint`) and may ask
to have it sent back to a `post_logout_redirect_uri` it registered, exactly.

With a valid hint for the user the browser is signed in as, the browser is signed out at
once; without one, the page asks the person first (a logout link on another site cannot
sign anyone out by itself).
"""

from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from joserfc import jws, jwt
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.orm import Session

from userbase.audit import RequestContext
from userbase.models import MAX_ID, BrowserSignIn, OAuthClient, Token
from userbase.oidc import browser as browsers
from userbase.oidc.browser import BrowserUser
from userbase.oidc.server import ID_TOKEN_ALGORITHM
from userbase.tokens import access_tokens
from userbase.tokens.keys import RING


class LogoutRefused(ValueError):
    """A logout request that names a client or a return address it may not: an error page."""


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    client: OAuthClient | None
    # The registered address to go back to, with `state`; None: userbase's own page.
    return_to: str | None
    # The hint's claims, when it is a valid ID token of ours.
    hint: dict[str, Any] | None

    def confirmed_for(self, signed_in: BrowserUser | None) -> bool:
        """Whether the hint speaks for the browser's user (no question needed)."""
        if self.hint is None:
            return False
        return signed_in is None or str(signed_in.user.id) == self.hint.get("sub")


def _hint_claims(id_token_hint: str) -> dict[str, Any]:
    """The claims of an ID token we signed; expired is fine (it only names who to sign out)."""
    try:
        header = jws.extract_compact(id_token_hint.encode()).headers()
        decoded = jwt.decode(
            id_token_hint, RING.verifying_keys(header.get("kid")), algorithms=[ID_TOKEN_ALGORITHM]
        )
    except (JoseError, ValueError, UnicodeError) as exc:
        raise LogoutRefused("The id_token_hint is not an ID token of this server.") from exc
    if decoded.header.get("typ", "JWT") != "JWT" or decoded.claims.get("iss") != (
        access_tokens.issuer()
    ):
        raise LogoutRefused("The id_token_hint is not an ID token of this server.")
    return dict(decoded.claims)


def check(session: Session, pairs: list[tuple[str, str]]) -> LogoutRequest:
    """The logout request's client, hint and return address, or LogoutRefused."""
    data = dict(reversed(pairs))  # the first of each name
    hint = _hint_claims(data["id_token_hint"]) if data.get("id_token_hint") else None
    client_id = data.get("client_id")
    if hint is not None:
        audience = hint.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if client_id is not None and client_id not in audiences:
            raise LogoutRefused("client_id is not the audience of the id_token_hint.")
        client_id = client_id or (audiences[0] if audiences else None)
    client = None
    if client_id and (len(client_id) > 64 or not client_id.isprintable()):
        raise LogoutRefused("The client is not registered here.")
    if client_id:
        client = session.scalars(
            select(OAuthClient).where(OAuthClient.client_id == client_id)
        ).first()
        if client is None:
            raise LogoutRefused("The client is not registered here.")
    return_to = None
    uri = data.get("post_logout_redirect_uri")
    if uri:
        if client is None:
            raise LogoutRefused("Name the client (id_token_hint or client_id) to be sent back.")
        if uri not in (client.post_logout_redirect_uris or "").split():
            raise LogoutRefused("That address is not registered for the client to come back to.")
        state = data.get("state")
        return_to = add_params_to_uri(uri, [("state", state)]) if state else uri
    return LogoutRequest(client, return_to, hint)


def log_out(
    session: Session,
    request: LogoutRequest,
    signed_in: BrowserUser | None,
    context: RequestContext,
) -> None:
    """End the browser's sign-in, and the one the hint names if it is another of its user's
    (the browser may have lost its cookie); with them, their clients' sign-ins."""
    if signed_in is not None:
        browsers.end(session, signed_in.sign_in_id, signed_in.user.id, context)
    sid = str(request.hint.get("sid", "")) if request.hint is not None else ""
    if not sid.isdigit() or int(sid) > MAX_ID or request.hint is None:
        return
    named = session.execute(
        select(Token.id, Token.user_id)
        .join(BrowserSignIn, BrowserSignIn.sign_in_id == Token.id)
        .where(Token.id == int(sid))
    ).first()
    if named is None or str(named.user_id) != request.hint.get("sub"):
        return
    if signed_in is None or named.id != signed_in.sign_in_id:
        browsers.end(session, named.id, named.user_id, context)
