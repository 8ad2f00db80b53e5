"""HTTP for tokens: the token, revocation and introspection endpoints (OAuth's form bodies and
error shape), the published keys, and the client registry for admins."""

import base64
import binascii
from contextlib import asynccontextmanager, nullcontext
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.orm import Session
from starlette.responses import Response

from userbase.admission import hashing_turn
from userbase.config import get_settings
from userbase.database import SessionDep, request_session
from userbase.oidc import server as oidc_server
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import AdminDep, RequestContextDep, request_context
from userbase.tokens import clients, grants, keys
from userbase.tokens.oauth_errors import InvalidClient, InvalidRequest, UnsupportedGrantType

router = APIRouter(tags=["tokens"])
admin_router = APIRouter(prefix="/admin/clients", tags=["admin"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM_TYPE = "application/x-www-form-urlencoded"
_FORM_FIELDS_MAX = 32


class OAuthForm(BaseModel):
    """The parameters every OAuth endpoint takes: client_secret_post's (RFC 6749 2.3.1)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    client_id: str | None = None
    client_secret: str | None = None


class TokenForm(OAuthForm):
    grant_type: str | None = Field(
        default=None,
        description="authorization_code, refresh_token, client_credentials, password or "
        f"{grants.MFA_GRANT}",
    )
    refresh_token: str | None = None
    scope: str | None = None
    username: str | None = None
    password: str | None = None
    mfa_token: str | None = None
    otp: str | None = None
    recovery_code: str | None = None
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None


class TokenActionForm(OAuthForm):
    """Revocation's and introspection's (RFC 7009 section 2.1, RFC 7662 section 2.1)."""

    token: str | None = None
    token_type_hint: str | None = None


F = TypeVar("F", bound=OAuthForm)
_hashing_turn = asynccontextmanager(hashing_turn)


def _form_body(form: type[OAuthForm]) -> dict[str, Any]:
    """The OpenAPI request body of an OAuth endpoint, from its form's model."""
    schema = {"schema": form.model_json_schema()}
    return {"requestBody": {"required": True, "content": {_FORM_TYPE: schema}}}


async def _oauth_form(request: Request, form: type[F]) -> F:
    """The request's parameters (RFC 6749 section 3.2: form-encoded, in the body).

    The OAuth endpoints read their form themselves instead of declaring Form() parameters,
    and make one thread hop: introspection 1.63x -> 1.43x, a refresh 3.43x -> 2.77x the CPU of
    GET /users/me (`python -m bench.tokens_in_process --ratios`-style pairs, 2026-12-03).
    A parameter sent without a value is as if omitted (RFC 6749 section 3.1); one sent twice
    is refused (section 3.1, "MUST NOT be included more than once").
    """
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != _FORM_TYPE:
        raise InvalidRequest(f"The parameters go in an {_FORM_TYPE} body.")
    try:
        pairs = parse_qsl(
            (await request.body()).decode(),
            max_num_fields=_FORM_FIELDS_MAX,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("The form body cannot be read.") from exc
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InvalidRequest("A parameter is sent more than once.")
    return form.model_validate(fields)


def _client_credentials(request: Request, form: OAuthForm) -> tuple[str | None, str | None]:
    """client_secret_basic (RFC 6749 section 2.3.1: form-encoded, then Basic) or
    client_secret_post or none; more than one way at once is refused."""
    authorization = request.headers.get("authorization")
    if authorization is None or not authorization.lower().startswith("basic "):
        return form.client_id, form.client_secret
    if form.client_secret is not None:
        raise InvalidRequest("Authenticate the client one way only.")
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient from exc
    basic_id, separator, basic_secret = decoded.partition(":")
    basic_id, basic_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
    if not separator or (form.client_id is not None and form.client_id != basic_id):
        raise InvalidClient
    return basic_id, basic_secret


def _authenticated_client(request: Request, db: Session, form: OAuthForm) -> clients.ClientRow:
    return clients.authenticate(db, *_client_credentials(request, form))


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
    openapi_extra=_form_body(TokenForm),
)
async def token(request: Request) -> Response:
    """Access tokens are JWTs (RFC 9068) that other services check with the keys of
    /.well-known/jwks.json; refresh tokens rotate on every use (docs/tokens.md). The
    authorization_code grant answers an ID token too (docs/oidc.md)."""
    form = await _oauth_form(request, TokenForm)
    if form.grant_type is None:
        raise InvalidRequest("grant_type is missing.")
    # Only the password grant hashes: it alone waits for a hashing turn (admission.py), before
    # it takes a database slot, as the other hashing routes do.
    hashes = form.grant_type == grants.PASSWORD_GRANT
    async with _hashing_turn() if hashes else nullcontext(), request_session(request) as db:
        return await run_in_threadpool(_grant, request, db, form)


def _grant(request: Request, db: Session, form: TokenForm) -> Response:
    client = _authenticated_client(request, db, form)
    context = request_context(request)
    if form.grant_type == "authorization_code":
        fields = {"code": form.code, "redirect_uri": form.redirect_uri}
        fields["code_verifier"] = form.code_verifier
        pairs = [("grant_type", form.grant_type), ("client_id", client.client_id)]
        pairs += [(name, value) for name, value in fields.items() if value is not None]
        # Authlib answers this grant: its errors are RFC 6749's JSON too, never raised.
        status, answer = oidc_server.exchange_code(db, client, pairs, context)
        return JSONBytes(answer, status_code=status, headers=_NO_STORE)
    if form.grant_type == "refresh_token":
        if not form.refresh_token:
            raise InvalidRequest("refresh_token is missing.")
        issued = grants.refresh(
            db, client, refresh_token=form.refresh_token, scope=form.scope, context=context
        )
    elif form.grant_type == "client_credentials":
        issued = grants.client_credentials(db, client, scope=form.scope)
    elif form.grant_type == grants.PASSWORD_GRANT:
        if form.username is None or form.password is None:
            raise InvalidRequest("username and password are needed.")
        issued = grants.password_grant(
            db,
            client,
            username=form.username.strip(),
            password=form.password,
            scope=form.scope,
            context=context,
        )
    elif form.grant_type == grants.MFA_GRANT:
        if not form.mfa_token:
            raise InvalidRequest("mfa_token is missing.")
        issued = grants.mfa_grant(
            db,
            client,
            mfa_token=form.mfa_token,
            otp=form.otp,
            recovery_code=form.recovery_code,
            scope=form.scope,
            context=context,
        )
    else:
        raise UnsupportedGrantType(f"grant_type {form.grant_type!r} is not supported.")
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
    openapi_extra=_form_body(TokenActionForm),
)
async def revoke(request: Request) -> Response:
    form = await _oauth_form(request, TokenActionForm)
    if not form.token:
        raise InvalidRequest("token is missing.")
    async with request_session(request) as db:
        await run_in_threadpool(_revoke, request, db, form.token, form)
    return JSONBytes({}, headers=_NO_STORE)  # the body means nothing (RFC 7009 section 2.2)


def _revoke(request: Request, db: Session, token: str, form: TokenActionForm) -> None:
    client = _authenticated_client(request, db, form)
    grants.revoke(db, client, token=token, context=request_context(request))


@router.post(
    "/oauth/introspect",
    response_model=IntrospectionOut,
    responses=_OAUTH_RESPONSES,
    summary="Whether a token is live, and its claims (RFC 7662; confidential clients)",
    openapi_extra=_form_body(TokenActionForm),
)
async def introspect(request: Request) -> Response:
    form = await _oauth_form(request, TokenActionForm)
    if not form.token:
        raise InvalidRequest("token is missing.")
    async with request_session(request, writes=False) as db:
        answer = await run_in_threadpool(_introspect, request, db, form.token, form)
    return JSONBytes(answer, headers=_NO_STORE)


def _introspect(request: Request, db: Session, token: str, form: TokenActionForm) -> Any:
    return grants.introspect(db, *_client_credentials(request, form), token=token)


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
