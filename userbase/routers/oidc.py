"""The OpenID Connect provider's API side: discovery, UserInfo, and a user's consents."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.responses import Response

from userbase.database import SessionDep
from userbase.oidc import consent, discovery
from userbase.oidc.userinfo import InsufficientScope, InvalidToken, userinfo
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import BearerToken, PrincipalDep, RequestContextDep

router = APIRouter(tags=["openid connect"])


@router.get(
    "/.well-known/openid-configuration",
    response_model=dict[str, Any],
    summary="OpenID Connect discovery: the provider's endpoints and what it supports",
)
def openid_configuration() -> Response:
    return JSONBytes(discovery.document(), headers={"Cache-Control": "public, max-age=300"})


def _rfc6750_error(status: int, error: str, description: str) -> Response:
    # RFC 6750 section 3: the error in WWW-Authenticate; the body is OAuth's error JSON.
    quoted = description.replace('"', "'")
    return JSONBytes(
        {"error": error, "error_description": description},
        status_code=status,
        headers={
            "WWW-Authenticate": f'Bearer error="{error}", error_description="{quoted}"',
            "Cache-Control": "no-store",
        },
    )


async def _form_token(request: Request) -> str | None:
    """RFC 6750 section 2.2: the token may come as a form field of a POST."""
    if request.method != "POST":
        return None
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    value = (await request.form()).get("access_token")
    return value if isinstance(value, str) else None


FormToken = Annotated[str | None, Depends(_form_token)]


def _userinfo(db: SessionDep, header_token: str | None, form_token: str | None) -> Response:
    if header_token is not None and form_token is not None:
        return _rfc6750_error(400, "invalid_request", "Send the access token one way only.")
    token = header_token if header_token is not None else form_token
    try:
        return JSONBytes(userinfo(db, token))
    except InvalidToken as exc:
        return _rfc6750_error(401, "invalid_token", str(exc))
    except InsufficientScope as exc:
        return _rfc6750_error(403, "insufficient_scope", str(exc))


_USERINFO_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid access token (RFC 6750)"},
    403: {"description": "The access token lacks the openid scope"},
}


@router.get(
    "/oauth/userinfo",
    response_model=dict[str, Any],
    responses=_USERINFO_RESPONSES,
    summary="UserInfo: the signed-in user's claims, as the access token's scope allows",
)
def userinfo_get(db: SessionDep, token: BearerToken) -> Response:
    return _userinfo(db, token, None)


@router.post(
    "/oauth/userinfo",
    response_model=dict[str, Any],
    responses=_USERINFO_RESPONSES,
    summary="UserInfo by POST (the token in the header or as access_token in the form)",
)
def userinfo_post(db: SessionDep, token: BearerToken, form_token: FormToken) -> Response:
    return _userinfo(db, token, form_token)


class ConsentOut(BaseModel):
    client_id: str
    client_name: str
    scope: str
    granted_at: Any


@router.get(
    "/users/me/consents",
    response_model=list[ConsentOut],
    responses={401: PROBLEM},
    summary="The applications you allowed to use your account, and with which scopes",
)
def list_my_consents(principal: PrincipalDep, db: SessionDep) -> Response:
    return JSONBytes(
        [
            {
                "client_id": client.client_id,
                "client_name": client.name,
                "scope": given.scope,
                "granted_at": given.granted_at,
            }
            for given, client in consent.list_consents(db, principal.user.id)
        ]
    )


@router.delete(
    "/users/me/consents/{client_id}",
    status_code=204,
    responses={401: PROBLEM, 404: PROBLEM},
    summary="Take back a consent: the application's sign-ins end, and it must ask again",
)
def revoke_my_consent(
    client_id: str, principal: PrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
    consent.revoke(db, principal.user.id, client_id, context)
    return Response(status_code=204)
