"""/auth/: sign in and out, verify an address, reset a forgotten password."""

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends
from fastapi.security import OAuth2PasswordRequestForm
from starlette.responses import Response

from userbase import auth, mail_links, users
from userbase.admission import HASHING_TURN
from userbase.config import get_settings
from userbase.database import SessionDep
from userbase.mfa import challenges
from userbase.problem import PROBLEM_RESPONSE as PROBLEM
from userbase.responses import JSONBytes
from userbase.routers.dependencies import (
    EnrollingPrincipalDep,
    PrincipalDep,
    RequestContextDep,
)
from userbase.schemas import (
    SECOND_FACTOR_PROBLEM,
    ActionTokenIn,
    ForgotPassword,
    MfaTokenIn,
    PasswordReset,
    SecondFactorSignIn,
    TokenOut,
)

router = APIRouter(prefix="/auth", tags=["auth"])

PasswordForm = Annotated[OAuth2PasswordRequestForm, Depends()]
DEVICE_COOKIE = "userbase_device"

# One answer whether or not the address has an account.
_RESET_REQUESTED = {"detail": "If an account has this address, a reset link is on its way."}


@router.post(
    "/token",
    response_model=TokenOut,
    responses={
        401: SECOND_FACTOR_PROBLEM,
        403: PROBLEM,
        422: PROBLEM,
        429: PROBLEM,
        503: PROBLEM,
    },
    summary="Sign in: exchange a username (or email) and password for a bearer token",
    dependencies=[HASHING_TURN],
)
def sign_in(
    form: PasswordForm,
    db: SessionDep,
    context: RequestContextDep,
    device: Annotated[str | None, Cookie(alias=DEVICE_COOKIE)] = None,
) -> Response:
    """OAuth2 password flow; works with the Authorize button of /docs.

    The answer sets a device cookie: a client that sends it back is not locked out by
    failures from elsewhere (docs/security.md). For an account with a second factor the right
    password answers 401 with `mfa_required` and an `mfa_token`: see POST /auth/token/mfa.
    """
    issued = auth.sign_in(
        db,
        login=form.username.strip(),
        password=form.password,
        context=context,
        device_token=device,
    )
    return _signed_in(issued)


@router.post(
    "/token/mfa",
    response_model=TokenOut,
    responses={401: SECOND_FACTOR_PROBLEM, 422: PROBLEM, 429: PROBLEM},
    summary="Sign in, second step: the mfa_token and a code (or a recovery code)",
)
def sign_in_second_factor(
    body: SecondFactorSignIn,
    db: SessionDep,
    context: RequestContextDep,
    device: Annotated[str | None, Cookie(alias=DEVICE_COOKIE)] = None,
) -> Response:
    """Answers as POST /auth/token does. A code is accepted once; five wrong codes spend the
    mfa_token, and each counts in the account's sign-in throttle (docs/mfa.md)."""
    issued = auth.complete_sign_in(
        db,
        mfa_token=body.mfa_token,
        code=body.code,
        recovery_code=body.recovery_code,
        passkey=body.passkey,
        context=context,
        device_token=device,
    )
    return _signed_in(issued)


@router.post(
    "/token/mfa/passkey",
    responses={
        200: {
            "description": "PublicKeyCredentialRequestOptionsJSON for navigator.credentials.get()",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        401: PROBLEM,
        422: PROBLEM,
    },
    summary="Sign in, second step with a passkey: the options for navigator.credentials.get()",
)
def passkey_second_factor_options(body: MfaTokenIn, db: SessionDep) -> Response:
    """The answer goes to POST /auth/token/mfa as `passkey`, with the same mfa_token; the
    options' challenge serves once, for that sign-in only."""
    options = challenges.passkey_options(db, body.mfa_token, client_id=None)
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


def _signed_in(issued: auth.IssuedToken) -> Response:
    response = JSONBytes(
        {"access_token": issued.token, "token_type": "bearer", "expires_in": issued.expires_in},
        headers={"Cache-Control": "no-store"},
    )
    if issued.device_token is not None:
        settings = get_settings()
        response.set_cookie(
            DEVICE_COOKIE,
            issued.device_token,
            max_age=settings.device_cookie_days * 86400,
            path="/auth/token",
            secure=settings.public_url.startswith("https://"),
            httponly=True,
            samesite="strict",
        )
    return response


@router.post(
    "/logout",
    status_code=204,
    responses={401: PROBLEM},
    summary="Revoke the token sent with this request",
)
def sign_out(
    principal: EnrollingPrincipalDep, db: SessionDep, context: RequestContextDep
) -> Response:
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


@router.post(
    "/undo-email-change",
    responses={400: PROBLEM, 409: PROBLEM, 422: PROBLEM},
    summary="Put back the address a change replaced, with the token mailed to it",
)
def undo_email_change(body: ActionTokenIn, db: SessionDep, context: RequestContextDep) -> Response:
    """Every session of the user ends and every reset link dies: choose a new password next."""
    user = mail_links.undo_email_change(db, body.token, context)
    return JSONBytes({"email": user.email, "email_verified": True})
