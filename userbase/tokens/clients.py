"""The client registry: applications that get tokens, and how they prove who they are.

A confidential client has a secret (256 random bits, shown once, stored as its SHA-256); a
public one (a browser or mobile app) has none and authenticates with `none`. Redirect URIs are
compared exactly, character for character (RFC 9700 section 2.1: no patterns, no prefixes).
"""

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.orm import Session

from userbase import audit
from userbase.audit import EventKind, RequestContext
from userbase.models import OAuthClient, table_of, utcnow
from userbase.security import new_token, token_digest
from userbase.tokens.oauth_errors import (
    ClientNotFound,
    InvalidClient,
    InvalidClientSettings,
    PublicClientHasNoSecret,
)

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", "password")
# A public client cannot keep a secret, so it cannot act as itself (RFC 6749 section 4.4).
CONFIDENTIAL_ONLY = frozenset({"client_credentials"})
NAME_MAX = 100
SCOPE_TOKEN_CHARS = frozenset(
    chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\'
)  # RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A client as its registration answers: the secret is here once, and never again."""

    client: OAuthClient
    client_secret: str | None


def _check_redirect_uri(uri: str) -> str:
    parts = urlsplit(uri)
    # Custom schemes are allowed: native apps receive their redirects that way (RFC 8252).
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
        raise InvalidClientSettings(f"redirect URI {uri!r} is not absolute")
    if parts.fragment or "#" in uri:
        raise InvalidClientSettings(f"redirect URI {uri!r} has a fragment (RFC 6749 3.1.2)")
    if any(c.isspace() for c in uri) or len(uri) > 2000:
        raise InvalidClientSettings(f"redirect URI {uri!r} has spaces or is too long")
    return uri


def check_scope(scope: str) -> list[str]:
    """The scope tokens of a space-separated scope, checked; duplicates dropped, order kept."""
    tokens = [token for token in scope.split(" ") if token]
    for token in tokens:
        if not set(token) <= SCOPE_TOKEN_CHARS:
            raise InvalidClientSettings(f"scope {token!r} has characters RFC 6749 forbids")
    return list(dict.fromkeys(tokens))


def create_client(
    session: Session,
    *,
    name: str,
    redirect_uris: Sequence[str],
    public: bool,
    first_party: bool,
    grant_types: Sequence[str] | None,
    scope: str,
    actor_id: int | None,
    context: RequestContext,
    post_logout_redirect_uris: Sequence[str] = (),
) -> RegisteredClient:
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise InvalidClientSettings(f"a name is 1-{NAME_MAX} printable characters")
    uris = list(dict.fromkeys(_check_redirect_uri(uri) for uri in redirect_uris))
    logout_uris = list(dict.fromkeys(_check_redirect_uri(u) for u in post_logout_redirect_uris))
    grants = list(dict.fromkeys(grant_types or ("authorization_code", "refresh_token")))
    unknown = [grant for grant in grants if grant not in GRANT_TYPES]
    if unknown:
        raise InvalidClientSettings(
            f"unknown grant {unknown[0]!r}; one of {', '.join(GRANT_TYPES)}"
        )
    if public and CONFIDENTIAL_ONLY & set(grants):
        raise InvalidClientSettings("a public client cannot use client_credentials")
    if "password" in grants and not first_party:
        # RFC 9700 section 2.4: never hand a user's password to a third party's client.
        raise InvalidClientSettings("only a first-party client may use the password grant")
    scopes = " ".join(check_scope(scope))
    if len(scopes) > 500:
        raise InvalidClientSettings("the scope is longer than 500 characters")
    secret, digest = (None, None) if public else new_token()
    client = OAuthClient(
        client_id=secrets.token_urlsafe(18),
        name=name,
        secret_hash=digest,
        is_public=public,
        first_party=first_party,
        redirect_uris=" ".join(uris),
        post_logout_redirect_uris=" ".join(logout_uris) or None,
        grant_types=" ".join(grants),
        scope=scopes,
        created_at=utcnow(),
    )
    session.add(client)
    session.flush()
    audit.record(
        session,
        EventKind.CLIENT_CREATED,
        context,
        user_id=None,
        actor_id=actor_id,
        detail=f"client={client.client_id}",
    )
    return RegisteredClient(client, secret)


def list_clients(session: Session) -> Sequence[OAuthClient]:
    return session.scalars(select(OAuthClient).order_by(OAuthClient.id)).all()


def get_client(session: Session, client_id: str) -> OAuthClient:
    client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()
    if client is None:
        raise ClientNotFound(client_id)
    return client


def delete_client(
    session: Session, client_id: str, *, actor_id: int | None, context: RequestContext
) -> None:
    """Delete the client; its sign-ins and their refresh tokens go with it (foreign keys)."""
    client = get_client(session, client_id)
    session.delete(client)
    session.flush()
    audit.record(
        session,
        EventKind.CLIENT_DELETED,
        context,
        user_id=None,
        actor_id=actor_id,
        detail=f"client={client_id}",
    )


def rotate_secret(
    session: Session, client_id: str, *, actor_id: int | None, context: RequestContext
) -> str:
    """A new secret for a confidential client (the old one stops working); returned once."""
    client = get_client(session, client_id)
    if client.is_public:
        raise PublicClientHasNoSecret(client_id)
    secret, digest = new_token()
    client.secret_hash = digest
    client.secret_rotated_at = utcnow()
    session.flush()
    audit.record(
        session,
        EventKind.CLIENT_SECRET_ROTATED,
        context,
        user_id=None,
        actor_id=actor_id,
        detail=f"client={client_id}",
    )
    return secret


@dataclass(frozen=True, slots=True)
class ClientRow:
    """A registered client as the token and authorization endpoints read it: one Core row.

    Not an ORM object: loading one cost ~10 % of an introspection's CPU and of a refresh's
    (a refresh 2.34x -> 2.10x, an introspection 1.43x -> 1.32x the CPU of GET /users/me,
    `python -m bench.tokens_in_process --ratios`, 2026-12-03). Changes go through OAuthClient.
    """

    id: int
    client_id: str
    name: str
    is_public: bool
    first_party: bool
    scope: str
    grant_types: str
    redirect_uris: str


_clients = table_of(OAuthClient).c
_WIDTH = len(fields(ClientRow))
# The statement that reads a client by `client_id`: the columns of ClientRow, then the secret's
# digest. Built once (a statement built per call costs its cache key on every token request;
# see grants.py); a caller may add columns and joins after them (see authenticate_by).
CLIENT_ROW = select(
    *(_clients[field.name] for field in fields(ClientRow)), _clients.secret_hash
).where(_clients.client_id == bindparam("client_id"))


def _read_client(
    session: Session, statement: Select[Any], params: dict[str, Any], client_id: str | None
) -> tuple[ClientRow, Row[Any]] | None:
    """The client `statement` (CLIENT_ROW or built on it) reads, and its whole row; None for a
    client id of no possible shape or of no client."""
    if client_id is None or not 0 < len(client_id) <= 64 or not client_id.isprintable():
        return None
    row = session.connection().execute(statement, {**params, "client_id": client_id}).first()
    return None if row is None else (ClientRow(*row[:_WIDTH]), row)


def find_client(session: Session, client_id: str) -> ClientRow | None:
    """The client registered as `client_id`, unauthenticated (the authorization endpoint's)."""
    found = _read_client(session, CLIENT_ROW, {}, client_id)
    return None if found is None else found[0]


def redirect_uri_allowed(client: ClientRow, uri: str) -> bool:
    """Exact match against a registered URI (the authorization endpoint's check)."""
    return uri in client.redirect_uris.split(" ")


def grants_of(client: ClientRow) -> set[str]:
    return set(client.grant_types.split(" "))


def authenticate(session: Session, client_id: str | None, client_secret: str | None) -> ClientRow:
    """The client these credentials prove, or InvalidClient.

    A confidential client must send its secret (client_secret_basic or client_secret_post); a
    public client sends none (`none`), and one that sends a secret anyway is refused.
    """
    return authenticate_by(session, CLIENT_ROW, {}, client_id, client_secret)[0]


def authenticate_by(
    session: Session,
    statement: Select[Any],
    params: dict[str, Any],
    client_id: str | None,
    client_secret: str | None,
) -> tuple[ClientRow, Row[Any]]:
    """authenticate, the client read by `statement` (CLIENT_ROW with more columns) in the same
    round trip: the client, and the whole row for the caller's columns."""
    found = _read_client(session, statement, params, client_id)
    if found is None:
        raise InvalidClient
    client, row = found
    secret_hash = row[_WIDTH]
    if client.is_public:
        if client_secret:
            raise InvalidClient
        return found
    if client_secret is None or secret_hash is None:
        raise InvalidClient
    if not hmac.compare_digest(token_digest(client_secret), secret_hash):
        raise InvalidClient
    return found


def client_view(client: OAuthClient, secret: str | None = None) -> dict[str, Any]:
    """A client as admins see it (the API's ClientOut, `userbase clients list`); its secret
    only when it was just made."""
    view: dict[str, Any] = {
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "first_party": client.first_party,
        "redirect_uris": client.redirect_uris.split(),
        "post_logout_redirect_uris": (client.post_logout_redirect_uris or "").split(),
        "grant_types": client.grant_types.split(),
        "scope": client.scope,
        "created_at": client.created_at,
        "secret_rotated_at": client.secret_rotated_at,
    }
    if secret is not None:
        view["client_secret"] = secret
    return view
