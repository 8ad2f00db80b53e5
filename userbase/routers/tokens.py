"""HTTP for tokens: the token, revocation and introspection endpoints (OAuth's form bodies and
error shape), the published keys, and the client registry for admins."""

import base64
import binascii
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Form, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import Response

from userbase.admission import hashing_turn
from userbase.config import get_settings
from userbase.database import SessionDep
from userbase.models import OAuthClient
from userbase.oidc import server as oidc_server
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import AdminDep, RequestContextDep
from userbase.tokens import clients, grants, keys
from userbase.tokens.oauth_errors import InvalidClient, InvalidRequest, UnsupportedGrantType

router = APIRouter(tags=["tokens"])
admin_router = APIRouter(prefix="/admin/clients", tags=["admin"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
OptionalForm = Annotated[str | None, Form()]


def _client_credentials(
    request: Request, client_id: str | None, client_secret: str | None
) -> tuple[str | None, str | None]:
    """client_secret_basic (RFC 6749 section 2.3.1: form-encoded, then Basic) or
    client_secret_post or none; more than one way at once is refused."""
    authorization = request.headers.get("authorization")
    if authorization is None or not authorization.lower().startswith("basic "):
        return client_id, client_secret
    if client_secret is not None:
        raise InvalidRequest("Authenticate the client one way only.")
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient from exc
    basic_id, separator, basic_secret = decoded.partition(":")
    basic_id, basic_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
    if not separator or (client_id is not None and client_id != basic_id):
        raise InvalidClient
    return basic_id, basic_secret


def _authenticated_client(
    request: Request, db: SessionDep, client_id: str | None, client_secret: str | None
) -> OAuthClient:
    return clients.authenticate(db, *_client_credentials(request, client_id, client_secret))


@asynccontextmanager
async def _no_turn() -> Any:
    yield


async def _hashing_turn_for_passwords(grant_type: OptionalForm = None) -> Any:
    """Only the password grant hashes: it alone waits for a hashing turn (admission.py)."""
    turn = asynccontextmanager(hashing_turn)() if grant_type == "password" else _no_turn()
    async with turn:
        yield


class OAuthErrorOut(BaseModel):
    """An OAuth error (RFC 6749 section 5.2), what OAuth client libraries parse."""

    error: str = Field(examples=["invalid_grant"])
    error_description: str | None = None


class TokenOut(BaseModel):
    access_token: str = Field(description="A JWT (RFC 9068): check it with the JWKS.")
    token_type: str = Field(examples=["Bearer"])
    expires_in: int = Field(examples=[300])
    scope: str | None = None
    refresh_token: str | None = Field(
        default=None, description="Single use: each refresh answers a new one."
    )
    id_token: str | None = Field(
        default=None, description="authorization_code with openid: the ID token (docs/oidc.md)."
    )


class IntrospectionOut(BaseModel):
    """RFC 7662: `active`, and the token's claims when it is."""

    model_config = ConfigDict(extra="allow")

    active: bool


class JWKSOut(BaseModel):
    keys: list[dict[str, Any]]


_OAUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorOut, "description": "An OAuth error (RFC 6749 section 5.2)"},
    401: {"model": OAuthErrorOut, "description": "Client authentication failed"},
}


class MfaRequiredOut(OAuthErrorOut):
    """The password grant for a user with a second factor: finish with the mfa grant."""

    mfa_token: str
    expires_in: int


@router.post(
    "/oauth/token",
    response_model=TokenOut,
    responses={
        **_OAUTH_RESPONSES,
        403: {"model": MfaRequiredOut, "description": "mfa_required: a second factor is due"},
        429: PROBLEM,
        503: PROBLEM,
    },
    summary="OAuth token endpoint: authorization_code, refresh_token, client_credentials, "
    "password (first party)",
    dependencies=[Depends(_hashing_turn_for_passwords, scope="function")],
)
def token(
    request: Request,
    db: SessionDep,
    context: RequestContextDep,
    grant_type: OptionalForm = None,
    refresh_token: OptionalForm = None,
    scope: OptionalForm = None,
    username: OptionalForm = None,
    password: OptionalForm = None,
    mfa_token: OptionalForm = None,
    otp: OptionalForm = None,
    recovery_code: OptionalForm = None,
    client_id: OptionalForm = None,
    client_secret: OptionalForm = None,
    code: OptionalForm = None,
    redirect_uri: OptionalForm = None,
    code_verifier: OptionalForm = None,
) -> Response:
    """Access tokens are JWTs (RFC 9068) that other services check with the keys of
    /.well-known/jwks.json; refresh tokens rotate on every use (docs/tokens.md). The
    authorization_code grant answers an ID token too (docs/oidc.md)."""
    if grant_type is None:
        raise InvalidRequest("grant_type is missing.")
    client = _authenticated_client(request, db, client_id, client_secret)
    if grant_type == "authorization_code":
        fields = {"code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier}
        pairs = [("grant_type", grant_type), ("client_id", client.client_id)]
        pairs += [(name, value) for name, value in fields.items() if value is not None]
        # Authlib answers this grant: its errors are RFC 6749's JSON too, never raised.
        status, answer = oidc_server.exchange_code(db, client, pairs, context)
        return JSONBytes(answer, status_code=status, headers=_NO_STORE)
    if grant_type == "refresh_token":
        if not refresh_token:
            raise InvalidRequest("refresh_token is missing.")
        issued = grants.refresh(
            db, client, refresh_token=refresh_token, scope=scope, context=context
        )
    elif grant_type == "client_credentials":
        issued = grants.client_credentials(db, client, scope=scope)
    elif grant_type == grants.PASSWORD_GRANT:
        if username is None or password is None:
            raise InvalidRequest("username and password are needed.")
        issued = grants.password_grant(
            db,
            client,
            username=username.strip(),
            password=password,
            scope=scope,
            context=context,
        )
    elif grant_type == grants.MFA_GRANT:
        if not mfa_token:
            raise InvalidRequest("mfa_token is missing.")
        issued = grants.mfa_grant(
            db,
            client,
            mfa_token=mfa_token,
            otp=otp,
            recovery_code=recovery_code,
            scope=scope,
            context=context,
        )
    else:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported.")
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }
    if issued.scope:
        body["scope"] = issued.scope
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return JSONBytes(body, headers=_NO_STORE)


@router.post(
    "/oauth/revoke",
    response_model=dict[str, Any],
    responses=_OAUTH_RESPONSES,
    summary="Revoke a refresh or access token (RFC 7009): its sign-in ends",
)
def revoke(
    request: Request,
    db: SessionDep,
    context: RequestContextDep,
    token: OptionalForm = None,
    token_type_hint: OptionalForm = None,
    client_id: OptionalForm = None,
    client_secret: OptionalForm = None,
) -> Response:
    if not token:
        raise InvalidRequest("token is missing.")
    client = _authenticated_client(request, db, client_id, client_secret)
    grants.revoke(db, client, token=token, context=context)
    return JSONBytes({}, headers=_NO_STORE)  # the body means nothing (RFC 7009 section 2.2)


@router.post(
    "/oauth/introspect",
    response_model=IntrospectionOut,
    responses=_OAUTH_RESPONSES,
    summary="Whether a token is live, and its claims (RFC 7662; confidential clients)",
)
def introspect(
    request: Request,
    db: SessionDep,
    token: OptionalForm = None,
    token_type_hint: OptionalForm = None,
    client_id: OptionalForm = None,
    client_secret: OptionalForm = None,
) -> Response:
    if not token:
        raise InvalidRequest("token is missing.")
    client = _authenticated_client(request, db, client_id, client_secret)
    return JSONBytes(grants.introspect(db, client, token=token), headers=_NO_STORE)


@router.get(
    "/.well-known/jwks.json",
    response_model=JWKSOut,
    summary="The public keys that sign userbase's tokens (RFC 7517)",
)
def jwks() -> Response:
    """Every key that signed a token still live: a service caches this for max-age and
    fetches it again when a token names a key it does not have."""
    max_age = get_settings().jwks_max_age_seconds
    # application/json, as Keycloak, Auth0 and Supabase serve theirs: every JWKS client takes it.
    return JSONBytes(keys.RING.jwks(), headers={"Cache-Control": f"public, max-age={max_age}"})


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=clients.NAME_MAX)
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    public: StrictBool = False
    first_party: StrictBool = False
    grant_types: list[str] | None = Field(default=None, max_length=len(clients.GRANT_TYPES) + 1)
    scope: str = Field(default="", max_length=500)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)


class ClientOut(BaseModel):
    client_id: str
    name: str
    public: bool
    first_party: bool
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    created_at: Any
    secret_rotated_at: Any
    client_secret: str | None = Field(
        default=None, description="Only in the answer that made it: it is never shown again."
    )


_ADMIN_PROBLEMS: dict[int | str, dict[str, Any]] = {401: PROBLEM, 403: PROBLEM}


@admin_router.get("", response_model=list[ClientOut], responses=_ADMIN_PROBLEMS)
def list_clients(_admin: AdminDep, db: SessionDep) -> Response:
    """Every registered client (never a secret)."""
    return JSONBytes([clients.client_view(client) for client in clients.list_clients(db)])


@admin_router.post(
    "",
    status_code=201,
    response_model=ClientOut,
    responses={**_ADMIN_PROBLEMS, 422: PROBLEM},
)
def create_client(
    body: ClientCreate, admin: AdminDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """Register a client; a confidential one's secret is in this answer and never again."""
    registered = clients.create_client(
        db,
        name=body.name,
        redirect_uris=body.redirect_uris,
        public=body.public,
        first_party=body.first_party,
        grant_types=body.grant_types,
        scope=body.scope,
        post_logout_redirect_uris=body.post_logout_redirect_uris,
        actor_id=admin.user.id,
        context=context,
    )
    return JSONBytes(
        clients.client_view(registered.client, registered.client_secret),
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@admin_router.delete("/{client_id}", status_code=204, responses={**_ADMIN_PROBLEMS, 404: PROBLEM})
def delete_client(
    client_id: str, admin: AdminDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """Delete a client: every sign-in through it ends."""
    clients.delete_client(db, client_id, actor_id=admin.user.id, context=context)
    return Response(status_code=204)


@admin_router.post(
    "/{client_id}/secret",
    response_model=ClientOut,
    responses={**_ADMIN_PROBLEMS, 404: PROBLEM, 409: PROBLEM},
)
def rotate_secret(
    client_id: str, admin: AdminDep, db: SessionDep, context: RequestContextDep
) -> Response:
    """A new secret for a confidential client; the old one stops working at once."""
    secret = clients.rotate_secret(db, client_id, actor_id=admin.user.id, context=context)
    return JSONBytes(
        clients.client_view(clients.get_client(db, client_id), secret),
        headers={"Cache-Control": "no-store"},
    )
