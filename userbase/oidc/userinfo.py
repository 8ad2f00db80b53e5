"""The UserInfo endpoint's answer (Core 1.0 section 5.3): the claims an access token's scope
releases, for a token whose sign-in is still live."""

from typing import Any

from sqlalchemy.orm import Session

from userbase import auth
from userbase.oidc.scopes import user_claims
from userbase.tokens import access_tokens, grants


class InvalidToken(Exception):
    """No access token, or one that is not ours, expired, or whose sign-in ended (RFC 6750)."""


class InsufficientScope(Exception):
    """An access token without `openid`: it was not given for OpenID Connect."""


def userinfo(session: Session, token: str | None) -> dict[str, Any]:
    if not token or not access_tokens.looks_like_jwt(token):
        raise InvalidToken("Send an access token of this server.")
    try:
        principal = grants.resolve_access_token(session, token)
        scope = str(access_tokens.verify(token).get("scope", ""))
    except (auth.NotAuthenticated, access_tokens.InvalidAccessToken) as exc:
        raise InvalidToken(str(exc)) from exc
    if "openid" not in scope.split():
        raise InsufficientScope("The access token was not given the openid scope.")
    return user_claims(principal.user, scope)
