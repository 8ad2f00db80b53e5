"""/auth/: sign in for a bearer token, sign out."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from starlette.responses import Response

from userbase import auth
from userbase.database import SessionDep
from userbase.errors import PROBLEM_RESPONSE, problem_response
from userbase.responses import JSONBytes
from userbase.routers.dependencies import ClientAddress, PrincipalDep
from userbase.schemas import TokenOut

router = APIRouter(prefix="/auth", tags=["auth"])

PasswordForm = Annotated[OAuth2PasswordRequestForm, Depends()]


@router.post(
    "/token",
    response_model=TokenOut,
    responses={401: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE, 429: PROBLEM_RESPONSE},
    summary="Sign in: exchange a username (or email) and password for a bearer token",
)
def sign_in(
    form: PasswordForm, request: Request, db: SessionDep, address: ClientAddress
) -> Response:
    """OAuth2 password flow; works with the Authorize button of /docs."""
    outcome = auth.sign_in(
        db,
        login=form.username.strip(),
        password=form.password,
        client_address=address,
        user_agent=request.headers.get("user-agent"),
    )
    if isinstance(outcome, auth.InvalidCredentials):
        # Returned, not raised: the failed attempt must be committed for the throttle to count.
        return problem_response(request, outcome)
    return JSONBytes(
        {"access_token": outcome.token, "token_type": "bearer", "expires_in": outcome.expires_in},
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/logout",
    status_code=204,
    responses={401: PROBLEM_RESPONSE},
    summary="Revoke the token sent with this request",
)
def sign_out(principal: PrincipalDep, db: SessionDep) -> Response:
    auth.revoke_token(db, principal.token_id)
    return Response(status_code=204)
