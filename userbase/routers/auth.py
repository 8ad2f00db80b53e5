"""/auth/: sign in and out, verify an address, reset a forgotten password."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from starlette.responses import Response

from userbase import auth, mail_links, users
from userbase.database import SessionDep
from userbase.errors import PROBLEM_RESPONSE as PROBLEM
from userbase.errors import problem_response
from userbase.hashing_turns import HASHING_TURN
from userbase.responses import JSONBytes
from userbase.routers.dependencies import PrincipalDep, RequestContextDep
from userbase.schemas import ActionTokenIn, ForgotPassword, PasswordReset, TokenOut

router = APIRouter(prefix="/auth", tags=["auth"])

PasswordForm = Annotated[OAuth2PasswordRequestForm, Depends()]

# One answer whether or not the address has an account.
_RESET_REQUESTED = {"detail": "If an account has this address, a reset link is on its way."}


@router.post(
    "/token",
    response_model=TokenOut,
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM, 429: PROBLEM, 503: PROBLEM},
    summary="Sign in: exchange a username (or email) and password for a bearer token",
    dependencies=[HASHING_TURN],
)
def sign_in(
    form: PasswordForm, request: Request, db: SessionDep, context: RequestContextDep
) -> Response:
    """OAuth2 password flow; works with the Authorize button of /docs."""
    outcome = auth.sign_in(db, login=form.username.strip(), password=form.password, context=context)
    if isinstance(outcome, auth.SignInRefused):
        # Returned, not raised: the failure count and the audit record must be committed.
        return problem_response(request, outcome)
    return JSONBytes(
        {"access_token": outcome.token, "token_type": "bearer", "expires_in": outcome.expires_in},
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/logout",
    status_code=204,
    responses={401: PROBLEM},
    summary="Revoke the token sent with this request",
)
def sign_out(principal: PrincipalDep, db: SessionDep, context: RequestContextDep) -> Response:
    auth.sign_out(db, principal, context)
    return Response(status_code=204)


@router.post(
    "/verify",
    responses={400: PROBLEM, 422: PROBLEM},
    summary="Mark an email address verified with the token mailed to it",
)
def verify_email(body: ActionTokenIn, db: SessionDep, context: RequestContextDep) -> Response:
    user = mail_links.verify_email(db, body.token, context)
    return JSONBytes({"email": user.email, "email_verified": True})


@router.post(
    "/verify/resend",
    status_code=202,
    responses={401: PROBLEM, 409: PROBLEM, 429: PROBLEM},
    summary="Mail a new verification link to the signed-in user",
)
def resend_verification(principal: PrincipalDep, db: SessionDep) -> Response:
    mail_links.resend_verification(db, users.lock_user(db, principal.user.id))
    return JSONBytes({"detail": "A new verification link is on its way."}, status_code=202)


@router.post(
    "/forgot-password",
    status_code=202,
    responses={422: PROBLEM, 429: PROBLEM},
    summary="Mail a password reset link, if an account has this address",
)
def forgot_password(body: ForgotPassword, db: SessionDep, context: RequestContextDep) -> Response:
    """Always the same 202 answer, so it cannot tell who has an account."""
    mail_links.request_password_reset(db, body.email, context)
    return JSONBytes(_RESET_REQUESTED, status_code=202)


@router.post(
    "/reset-password",
    status_code=204,
    responses={400: PROBLEM, 422: PROBLEM, 503: PROBLEM},
    summary="Set a new password with the token of a reset mail",
    dependencies=[HASHING_TURN],
)
def reset_password(body: PasswordReset, db: SessionDep, context: RequestContextDep) -> Response:
    """Every bearer token of the user is revoked and the reset link is burnt."""
    mail_links.reset_password(db, body.token, body.new_password, context)
    return Response(status_code=204)
